//! One suite, every backend: the same records stored in each store this
//! build has (SQLite always, PostgreSQL with the `postgres` feature) give
//! the same answers. SQLite's answers are checked against plain models in
//! the other tests; here every other backend is checked against SQLite's.
//! Built without the `postgres` feature, SQLite is the only backend: the
//! comparisons then compare nothing, and only check that SQLite gives
//! every answer.
//!
//! Identical means identical: rows, counts, sums, extremes and percentiles
//! to the bit. Averages and standard deviations are compared to 1e-12
//! relative, since the two engines add up in different orders (plus a few
//! ulps of the largest value where fractional values cancel).

mod common;

use chrono::Duration;
use common::server::{stores, TestStore};
use common::{base, task_filter_strategy, task_strategy};
use proptest::prelude::*;
use swarm_metrics::{
    AgentMetric, AggregationType, EmptyBuckets, Filter, GroupBy, Grouped, Measure, MetricBatch,
    MetricKind, MetricType, Order, Parsed, RankBy, Stored, SwarmMetric, TaskColumn, TaskMetric,
    TaskResult, TimeRange,
};

/// Each group's key, count and figure.
type GroupFigures = Vec<(Option<String>, u64, Option<f64>)>;

/// Everything a store answers about `filters`, for comparing backends.
#[derive(Debug)]
struct Answers {
    rows: Vec<Vec<TaskMetric>>,
    rates: Vec<swarm_metrics::SuccessRate>,
    /// Success rates by group, in the order they are ranked.
    grouped_rates: Vec<Vec<Grouped<swarm_metrics::SuccessRate>>>,
    /// Percentiles by group, and exact aggregates by group.
    grouped_exact: Vec<GroupFigures>,
    /// Averages and deviations by group.
    grouped_rounded: Vec<GroupFigures>,
    exact: Vec<(u64, Option<f64>)>,
    rounded: Vec<(u64, Option<f64>)>,
}

fn answers(store: &TestStore, filters: &[Filter]) -> Answers {
    let s = &store.store;
    let mut a = Answers {
        rows: Vec::new(),
        rates: Vec::new(),
        grouped_rates: Vec::new(),
        grouped_exact: Vec::new(),
        grouped_rounded: Vec::new(),
        exact: Vec::new(),
        rounded: Vec::new(),
    };
    for f in filters {
        for group_by in [GroupBy::Agent, GroupBy::Swarm, GroupBy::Result] {
            a.grouped_rates
                .push(s.success_rate_by(group_by, f).unwrap());
            for aggregation in AggregationType::ALL {
                let groups: Vec<_> = s
                    .aggregate_by(MetricKind::Task, *aggregation, group_by, f)
                    .unwrap()
                    .into_iter()
                    .map(|g| (g.key, g.value.count, g.value.value))
                    .collect();
                match aggregation {
                    AggregationType::Avg | AggregationType::Stddev => {
                        a.grouped_rounded.push(groups)
                    }
                    _ => a.grouped_exact.push(groups),
                }
            }
            let p90 = s
                .percentile_by(MetricKind::Task, 0.9, group_by, f)
                .unwrap()
                .into_iter()
                .map(|g| (g.key, g.value.count, g.value.value))
                .collect();
            a.grouped_exact.push(p90);
        }
        a.rows.push(s.get_task_metrics(f, 1_000).unwrap());
        a.rows.push(s.get_task_metrics(f, 3).unwrap());
        a.rates.push(s.success_rate(f).unwrap());
        for column in [TaskColumn::Duration, TaskColumn::Tokens, TaskColumn::Files] {
            let f = f.clone().column(column);
            for aggregation in AggregationType::ALL {
                let got = s
                    .aggregate_metrics(MetricKind::Task, *aggregation, &f)
                    .unwrap();
                let pair = (got.count, got.value);
                match aggregation {
                    AggregationType::Avg | AggregationType::Stddev => a.rounded.push(pair),
                    _ => a.exact.push(pair),
                }
            }
            for p in s
                .percentiles(MetricKind::Task, &[0.0, 0.25, 0.5, 0.9, 0.99, 1.0], &f)
                .unwrap()
            {
                a.exact.push((p.count, p.value));
            }
        }
    }
    a
}

fn assert_same(reference: &Answers, other: &Answers, backend: &str) {
    assert_eq!(reference.rows, other.rows, "{backend}: rows");
    assert_eq!(reference.rates, other.rates, "{backend}: success rates");
    assert_eq!(
        reference.grouped_rates, other.grouped_rates,
        "{backend}: rates by group"
    );
    assert_eq!(
        reference.grouped_exact, other.grouped_exact,
        "{backend}: figures by group"
    );
    assert_eq!(reference.grouped_rounded.len(), other.grouped_rounded.len());
    for (r, o) in reference.grouped_rounded.iter().zip(&other.grouped_rounded) {
        assert_eq!(r.len(), o.len(), "{backend}: groups");
        for (r, o) in r.iter().zip(o) {
            assert_eq!((&r.0, r.1), (&o.0, o.1), "{backend}: group counts");
            close(r.2, o.2, backend);
        }
    }
    assert_eq!(reference.exact, other.exact, "{backend}: exact figures");
    assert_eq!(reference.rounded.len(), other.rounded.len());
    for (r, o) in reference.rounded.iter().zip(&other.rounded) {
        assert_eq!(r.0, o.0, "{backend}: counts");
        close(r.1, o.1, backend);
    }
}

/// Equal to 1e-12 relative, or both missing.
fn close(reference: Option<f64>, other: Option<f64>, backend: &str) {
    match (reference, other) {
        (Some(x), Some(y)) => assert!(
            (x - y).abs() <= 1e-12 * x.abs().max(1.0),
            "{backend}: {x} against {y}"
        ),
        (x, y) => assert_eq!(x, y, "{backend}"),
    }
}

/// Stores `tasks` in `store` as the case says: in batches of the given
/// sizes (single stores for 1), then some of them again as retries;
/// returns what each call reported new.
fn store_all(
    store: &TestStore,
    tasks: &[TaskMetric],
    sizes: &[usize],
    retries: usize,
) -> Vec<usize> {
    let mut reported = Vec::new();
    let mut rest = tasks;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap()).clamp(1, rest.len());
        let (batch, tail) = rest.split_at(n);
        reported.push(if n == 1 {
            usize::from(store.store.store_task_metric(&batch[0]).unwrap())
        } else {
            store.store.store_task_metrics(batch).unwrap()
        });
        rest = tail;
    }
    let again = &tasks[..retries.min(tasks.len())];
    reported.push(store.store.store_task_metrics(again).unwrap());
    reported
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_backend_answers_as_sqlite(
        tasks in prop::collection::vec(task_strategy(), 0..80),
        sizes in prop::collection::vec(prop_oneof![Just(1usize), 2..15usize, 16..40usize], 1..4),
        retries in 0..20usize,
        filters in prop::collection::vec(task_filter_strategy(), 1..6),
    ) {
        let stores = stores();
        let mut filters = filters;
        filters.push(Filter::new());
        let reference_reports = store_all(&stores[0], &tasks, &sizes, retries);
        let reference = answers(&stores[0], &filters);
        for other in &stores[1..] {
            let reports = store_all(other, &tasks, &sizes, retries);
            prop_assert_eq!(&reference_reports, &reports, "{}: new counts", other.backend);
            assert_same(&reference, &answers(other, &filters), other.backend);
        }
    }
}

/// An agent (true) or swarm metric: id, type, minute, value, metadata.
type EntityCase = (bool, u8, u8, i64, f64, Option<u8>);

/// An agent or swarm metric of the case: few ids and types, coarse times,
/// values that repeat, metadata now and then; so that filters match often
/// and retries and same-instant metrics occur.
fn entity_strategy() -> impl Strategy<Value = EntityCase> {
    (
        any::<bool>(),
        0..3u8,
        0..4u8,
        0..90i64,
        prop_oneof![(0..20u32).prop_map(f64::from), 0.0..1e6f64],
        prop::option::of(0..3u8),
    )
}

const AGENT_TYPES: [MetricType; 4] = [
    MetricType::AgentDuration,
    MetricType::AgentSuccessRate,
    MetricType::AgentErrorCount,
    MetricType::AgentThroughput,
];
const SWARM_TYPES: [MetricType; 4] = [
    MetricType::SwarmHealth,
    MetricType::SwarmThroughput,
    MetricType::SwarmLatency,
    MetricType::SwarmResource,
];

/// Everything a store answers about agent and swarm metrics.
#[derive(Debug, PartialEq)]
struct EntityAnswers {
    agents: Vec<Vec<Stored<AgentMetric>>>,
    swarms: Vec<Vec<Stored<SwarmMetric>>>,
    exact: Vec<(u64, Option<f64>)>,
    /// Sums, averages and deviations of doubles, which the two engines add
    /// up in different orders.
    rounded: Vec<(u64, Option<f64>)>,
}

fn entity_answers(store: &TestStore) -> EntityAnswers {
    let s = &store.store;
    let mut a = EntityAnswers {
        agents: Vec::new(),
        swarms: Vec::new(),
        exact: Vec::new(),
        rounded: Vec::new(),
    };
    let range = TimeRange::new(
        base() + Duration::minutes(20),
        base() + Duration::minutes(60),
    )
    .unwrap();
    for kind in [MetricKind::Agent, MetricKind::Swarm] {
        let types = if kind == MetricKind::Agent {
            AGENT_TYPES
        } else {
            SWARM_TYPES
        };
        let mut filters = vec![Filter::new(), Filter::new().range(range)];
        for t in types {
            filters.push(Filter::new().metric_type(t));
        }
        for (id, metric_type) in types.into_iter().take(3).enumerate() {
            let f = match kind {
                MetricKind::Agent => Filter::new().agent(format!("e{id}")),
                _ => Filter::new().swarm(format!("e{id}")),
            };
            filters.push(f.clone().metric_type(metric_type).range(range));
            filters.push(f);
        }
        for f in &filters {
            match kind {
                MetricKind::Agent => a.agents.push(s.get_agent_metrics(f, 1_000).unwrap()),
                _ => a.swarms.push(s.get_swarm_metrics(f, 5).unwrap()),
            }
            for aggregation in AggregationType::ALL {
                let got = s.aggregate_metrics(kind, *aggregation, f).unwrap();
                let pair = (got.count, got.value);
                match aggregation {
                    AggregationType::Count | AggregationType::Min | AggregationType::Max => {
                        a.exact.push(pair)
                    }
                    _ => a.rounded.push(pair),
                }
            }
            for p in s.percentiles(kind, &[0.0, 0.5, 0.95, 1.0], f).unwrap() {
                a.exact.push((p.count, p.value));
            }
            let own = if kind == MetricKind::Agent {
                GroupBy::Agent
            } else {
                GroupBy::Swarm
            };
            for group_by in [own, GroupBy::MetricType] {
                for g in s
                    .aggregate_by(kind, AggregationType::Max, group_by, f)
                    .unwrap()
                {
                    a.exact.push((g.value.count, g.value.value));
                }
                for g in s.percentile_by(kind, 0.5, group_by, f).unwrap() {
                    a.exact.push((g.value.count, g.value.value));
                }
                for g in s
                    .aggregate_by(kind, AggregationType::Avg, group_by, f)
                    .unwrap()
                {
                    a.rounded.push((g.value.count, g.value.value));
                }
            }
        }
    }
    a
}

/// Stores the case's agent and swarm metrics in batches of `size`, then
/// the first `retries` again; the ids each call gave.
fn store_entities(
    store: &TestStore,
    metrics: &[EntityCase],
    size: usize,
    retries: usize,
) -> Vec<Vec<i64>> {
    let agents: Vec<AgentMetric> = metrics
        .iter()
        .filter(|m| m.0)
        .map(|&(_, id, t, minute, value, meta)| {
            let m = AgentMetric::new(format!("e{id}"), AGENT_TYPES[t as usize], value)
                .at(base() + Duration::minutes(minute));
            match meta {
                Some(n) => m.metadata(serde_json::json!({"n": n, "note": "a \"quoted\" word"})),
                None => m,
            }
        })
        .collect();
    let swarms: Vec<SwarmMetric> = metrics
        .iter()
        .filter(|m| !m.0)
        .map(|&(_, id, t, minute, value, _)| {
            SwarmMetric::new(format!("e{id}"), SWARM_TYPES[t as usize], value)
                .at(base() + Duration::minutes(minute))
        })
        .collect();
    let mut ids = Vec::new();
    for chunk in agents.chunks(size.max(1)) {
        ids.push(store.store.store_agent_metrics(chunk).unwrap());
    }
    for chunk in swarms.chunks(size.max(1)) {
        ids.push(store.store.store_swarm_metrics(chunk).unwrap());
    }
    ids.push(
        store
            .store
            .store_agent_metrics(&agents[..retries.min(agents.len())])
            .unwrap(),
    );
    ids.push(
        store
            .store
            .store_swarm_metrics(&swarms[..retries.min(swarms.len())])
            .unwrap(),
    );
    ids
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn agent_and_swarm_metrics_answer_as_in_sqlite(
        metrics in prop::collection::vec(entity_strategy(), 0..70),
        size in prop_oneof![Just(1usize), 2..30usize],
        retries in 0..10usize,
    ) {
        let stores = stores();
        let reference_ids = store_entities(&stores[0], &metrics, size, retries);
        let reference = entity_answers(&stores[0]);
        for other in &stores[1..] {
            let ids = store_entities(other, &metrics, size, retries);
            prop_assert_eq!(&reference_ids, &ids, "{}: ids", other.backend);
            let answers = entity_answers(other);
            prop_assert_eq!(&reference.agents, &answers.agents, "{}", other.backend);
            prop_assert_eq!(&reference.swarms, &answers.swarms, "{}", other.backend);
            prop_assert_eq!(&reference.exact, &answers.exact, "{}", other.backend);
            // Averages and standard deviations are rounded once per
            // addition, each engine in its own order: their error grows
            // with the size of the values, not of the answer (a standard
            // deviation of 44 among values near 635,000 has lost four
            // digits to cancellation on either side).
            let scale = metrics.iter().map(|m| m.4.abs()).fold(1.0, f64::max);
            for (r, o) in reference.rounded.iter().zip(&answers.rounded) {
                prop_assert_eq!(r.0, o.0);
                match (r.1, o.1) {
                    (Some(x), Some(y)) => prop_assert!(
                        (x - y).abs() <= 1e-12 * x.abs().max(1.0) + 64.0 * f64::EPSILON * scale,
                        "{}: {} against {}", other.backend, x, y
                    ),
                    (x, y) => prop_assert_eq!(x, y),
                }
            }
        }
    }
}

/// The command line over every backend: `--db` a file or a URL, the same
/// output.
#[test]
fn the_command_line_answers_alike() {
    let stores = stores();
    let tasks: Vec<TaskMetric> = (0..300u32)
        .map(|i| {
            TaskMetric::new(
                format!("t{i:03}"),
                format!("agent-{}", i % 4),
                u64::from(100 + i * 7 % 500),
                TaskResult::ALL[(i % 7 % 4) as usize],
            )
            .swarm(format!("swarm-{}", i % 2))
            .tokens(u64::from(i * 13 % 1000))
            .at(base() + Duration::minutes(i64::from(i)))
        })
        .collect();
    let agents: Vec<AgentMetric> = (0..40u32)
        .map(|i| {
            AgentMetric::new(
                format!("agent-{}", i % 4),
                AGENT_TYPES[(i % 4) as usize],
                f64::from(i),
            )
            .at(base() + Duration::minutes(i64::from(i)))
        })
        .collect();
    let commands: [&[&str]; 16] = [
        &["success-rate"],
        &["success-rate", "--by", "agent"],
        &["aggregate", "--agg", "p50", "--by", "swarm"],
        &[
            "series",
            "--measure",
            "success-rate",
            "--width",
            "1h",
            "--fill",
        ],
        &["summary", "--swarm", "swarm-1"],
        &["top", "--by", "avg-duration", "-n", "3"],
        &["export", "--format", "jsonl"],
        &["export", "--kind", "task", "--format", "csv"],
        &["slowest", "-n", "5"],
        &[
            "success-rate",
            "--agent",
            "agent-1",
            "--from",
            "2025-03-01T01:00:00Z",
        ],
        &["aggregate", "--agg", "avg"],
        &[
            "aggregate",
            "--agg",
            "p95",
            "--metric-type",
            "task_tokens",
            "--swarm",
            "swarm-1",
        ],
        &[
            "aggregate",
            "--kind",
            "agent",
            "--agg",
            "max",
            "--metric-type",
            "agent_throughput",
        ],
        &["query", "--limit", "25", "--result", "failure"],
        &["query", "--kind", "agent", "--agent", "agent-2"],
        &["query", "--limit", "5", "--swarm", "swarm-0"],
    ];
    let mut outputs: Vec<Vec<String>> = Vec::new();
    for store in &stores {
        store.store.store_task_metrics(&tasks).unwrap();
        store.store.store_agent_metrics(&agents).unwrap();
        let mut mine = Vec::new();
        for args in commands {
            for json in [false, true] {
                let mut cmd = assert_cmd::Command::cargo_bin("swarm-metrics").unwrap();
                cmd.arg("--db").arg(&store.location);
                if json {
                    cmd.arg("--json");
                }
                let out = cmd.args(args).output().unwrap();
                assert!(
                    out.status.success(),
                    "{}: {args:?}: {}",
                    store.backend,
                    String::from_utf8_lossy(&out.stderr)
                );
                mine.push(String::from_utf8(out.stdout).unwrap());
            }
        }
        outputs.push(mine);
    }
    for (store, output) in stores.iter().zip(&outputs).skip(1) {
        for ((reference, other), args) in outputs[0]
            .iter()
            .zip(output)
            .zip(commands.iter().flat_map(|c| [c, c]))
        {
            assert_eq!(reference, other, "{}: {args:?}", store.backend);
        }
    }
    assert!(outputs[0][0].contains("300"), "{}", outputs[0][0]);

    // An import into fresh stores reports the same, and a second one
    // finds everything stored.
    // The JSON Lines export (the 7th command, without --json).
    let lines = outputs[0][12].clone();
    let mut reports = Vec::new();
    for store in common::server::stores() {
        let mut mine = Vec::new();
        for _ in 0..2 {
            let out = assert_cmd::Command::cargo_bin("swarm-metrics")
                .unwrap()
                .args(["--db", &store.location, "--json", "import", "-"])
                .write_stdin(lines.clone())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                store.backend,
                String::from_utf8_lossy(&out.stderr)
            );
            mine.push(String::from_utf8(out.stdout).unwrap());
        }
        reports.push(mine);
    }
    assert!(reports[0][0].contains("\"stored\":300"), "{:?}", reports[0]);
    for other in &reports[1..] {
        assert_eq!(&reports[0], other, "import reports");
    }

    // Tiered retention folds every one of those (old) metrics alike, and
    // the answers read from the rollups are the same too.
    let after: [&[&str]; 6] = [
        &["cleanup", "--policy", "1d,forever,forever"],
        &["success-rate", "--by", "agent"],
        &["aggregate", "--agg", "p50", "--by", "swarm"],
        &["series", "--measure", "success-rate", "--width", "1h"],
        &["summary"],
        &["stats"],
    ];
    let mut folded: Vec<Vec<String>> = Vec::new();
    for store in &stores {
        let mut mine = Vec::new();
        for args in after {
            let out = assert_cmd::Command::cargo_bin("swarm-metrics")
                .unwrap()
                .args(["--db", &store.location, "--json"])
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {args:?}: {}",
                store.backend,
                String::from_utf8_lossy(&out.stderr)
            );
            mine.push(String::from_utf8(out.stdout).unwrap());
        }
        folded.push(mine);
    }
    assert!(
        folded[0][0].contains("\"raw_folded\":340"),
        "{}",
        folded[0][0]
    );
    for (store, output) in stores.iter().zip(&folded).skip(1) {
        // Statistics name the file or server and its size: compare their
        // counts of rows and rollups only.
        let counts = |stats: &str| {
            let v: serde_json::Value = serde_json::from_str(stats).unwrap();
            ["task_metrics", "agent_metrics", "swarm_metrics"].map(|t| {
                let t = &v[t];
                (
                    t["rows"].clone(),
                    t["hourly_rollups"].clone(),
                    t["daily_rollups"].clone(),
                )
            })
        };
        for ((reference, other), args) in folded[0].iter().zip(output).zip(after) {
            if args == ["stats"] {
                assert_eq!(counts(reference), counts(other), "{}: stats", store.backend);
            } else {
                assert_eq!(reference, other, "{}: {args:?}", store.backend);
            }
        }
    }
}

/// Cleanup counts and deletes the same metrics everywhere (on
/// PostgreSQL by dropping whole monthly partitions and deleting from the
/// one the horizon cuts), and what is left answers alike.
#[test]
fn cleanup_deletes_the_same_metrics() {
    let now = swarm_metrics::now();
    // Every 6 hours over 120 days, so that the 30-day horizon cuts a month
    // and whole months lie before it.
    let tasks: Vec<TaskMetric> = (0..480i64)
        .map(|i| {
            TaskMetric::new(
                format!("t{i}"),
                format!("a{}", i % 3),
                10 + i as u64,
                TaskResult::Success,
            )
            .at(now - Duration::hours(6 * i))
        })
        .collect();
    let agents: Vec<AgentMetric> = (0..120i64)
        .map(|i| {
            AgentMetric::new("a1", MetricType::AgentThroughput, i as f64)
                .at(now - Duration::days(i))
        })
        .collect();
    let mut reports = Vec::new();
    let mut left = Vec::new();
    for store in stores() {
        let s = &store.store;
        s.store_task_metrics(&tasks).unwrap();
        s.store_agent_metrics(&agents).unwrap();
        let counted = s.count_old_metrics(30).unwrap();
        let deleted = s.cleanup_old_metrics(30).unwrap();
        assert_eq!(counted, deleted, "{}", store.backend);
        assert_eq!(
            s.cleanup_old_metrics(30).unwrap().total(),
            0,
            "{}",
            store.backend
        );
        reports.push(deleted);
        left.push((
            s.success_rate(&Filter::new()).unwrap(),
            s.get_task_metrics(&Filter::new(), 1_000).unwrap(),
            s.get_agent_metrics(&Filter::new(), 1_000).unwrap(),
        ));
        // Old metrics can be stored again after their month was dropped.
        assert!(
            s.store_task_metric(&tasks[479]).unwrap(),
            "{}",
            store.backend
        );
    }
    // Tasks 120 to 479 (30 days old and more), agent metrics 30 to 119.
    assert_eq!(
        (reports[0].task_metrics, reports[0].agent_metrics),
        (360, 90)
    );
    for (report, rest) in reports.iter().zip(&left).skip(1) {
        assert_eq!(report, &reports[0]);
        assert_eq!(rest, &left[0]);
    }
}

/// Summaries, comparisons, regressions and the store's statistics, over
/// two weeks of tasks from six agents, two of them worse in the last day.
#[test]
fn analytics_answer_alike() {
    let now = swarm_metrics::now();
    let tasks: Vec<TaskMetric> = (0..3_000i64)
        .map(|i| {
            let agent = i % 6;
            let at = now - Duration::minutes(7 * i);
            let late = now - at < Duration::days(1);
            let fails = if agent >= 4 && late {
                i % 2 == 0
            } else {
                i % 11 == 0
            };
            let result = if fails {
                TaskResult::Failure
            } else {
                TaskResult::Success
            };
            let slow = if agent == 5 && late { 3 } else { 1 };
            TaskMetric::new(
                format!("t{i}"),
                format!("agent-{agent}"),
                slow * (100 + (i * 37 % 400)) as u64,
                result,
            )
            .swarm(format!("swarm-{}", agent % 2))
            .tokens((i * 13 % 900) as u64)
            .files((i % 5) as u64)
            .at(at)
        })
        .collect();
    let day = TimeRange::new(now - Duration::days(1), now).unwrap();
    let week = TimeRange::new(
        now - Duration::days(8),
        now - Duration::days(1) - Duration::microseconds(1),
    )
    .unwrap();
    let mut all = Vec::new();
    for store in stores() {
        let s = &store.store;
        s.store_task_metrics(&tasks).unwrap();
        let summaries: Vec<_> = [
            Filter::new(),
            Filter::new().agent("agent-5"),
            Filter::new().swarm("swarm-0").range(day),
            Filter::new().range(week).result(TaskResult::Success),
        ]
        .iter()
        .map(|f| s.summary(f).unwrap())
        .collect();
        let comparisons = [
            s.compare(
                &Filter::new().agent("agent-1"),
                &Filter::new().agent("agent-5"),
            )
            .unwrap(),
            s.compare(&Filter::new().range(day), &Filter::new().range(week))
                .unwrap(),
        ];
        let regressions = s.regressions(day, week, 0.05).unwrap();
        let within = s
            .regressions_in(&Filter::new().swarm("swarm-1"), day, week, 0.05)
            .unwrap();
        let stats = s.stats().unwrap();
        let mut series = Vec::new();
        for (width, range) in [(Duration::hours(1), Some(day)), (Duration::days(1), None)] {
            for measure in [
                Measure::SuccessRate,
                Measure::Percentile(0.95),
                Measure::Aggregate(AggregationType::Sum),
                Measure::Aggregate(AggregationType::Max),
            ] {
                let filter = match range {
                    Some(range) => Filter::new().swarm("swarm-1").range(range),
                    None => Filter::new(),
                };
                series.push(
                    s.series(
                        MetricKind::Task,
                        measure,
                        width,
                        &filter,
                        EmptyBuckets::Zero,
                    )
                    .unwrap(),
                );
            }
        }
        let mut ranked = Vec::new();
        for by in [
            RankBy::SuccessRate,
            RankBy::RawSuccessRate,
            RankBy::Throughput,
            RankBy::AvgDuration,
            RankBy::AvgTokens,
        ] {
            for order in [Order::BestFirst, Order::WorstFirst] {
                for filter in [Filter::new(), Filter::new().range(day)] {
                    ranked.push(s.rank_agents(by, order, 4, 1, &filter).unwrap());
                }
            }
        }
        let slowest = s
            .slowest_tasks(25, &Filter::new().swarm("swarm-0"))
            .unwrap();
        let outliers = s.duration_outliers(&Filter::new()).unwrap();
        all.push((
            store.backend,
            summaries,
            comparisons,
            regressions,
            within,
            stats,
            series,
            ranked,
            slowest,
            outliers,
        ));
    }
    let reference = &all[0];
    assert!(
        reference.3.iter().any(|r| r.id == "agent-5"),
        "{:?}",
        reference.3
    );
    for other in &all[1..] {
        let backend = other.0;
        for (r, o) in reference.1.iter().zip(&other.1) {
            assert_eq!(
                (
                    r.tasks,
                    r.success_rate,
                    r.tokens_total,
                    r.files_changed_total
                ),
                (
                    o.tasks,
                    o.success_rate,
                    o.tokens_total,
                    o.files_changed_total
                ),
                "{backend}: summary"
            );
            let (rd, od) = (r.duration_ms, o.duration_ms);
            assert_eq!(
                (rd.p50, rd.p95, rd.p99, rd.max),
                (od.p50, od.p95, od.p99, od.max),
                "{backend}"
            );
            close(rd.avg, od.avg, backend);
            close(r.tokens_per_task, o.tokens_per_task, backend);
        }
        assert_eq!(reference.2, other.2, "{backend}: comparisons");
        assert_eq!(reference.3, other.3, "{backend}: regressions");
        assert_eq!(reference.4, other.4, "{backend}: regressions in a swarm");
        let (r, o) = (&reference.5, &other.5);
        for (r, o) in [
            (r.task_metrics, o.task_metrics),
            (r.agent_metrics, o.agent_metrics),
        ] {
            assert_eq!(
                (r.rows, r.oldest, r.newest),
                (o.rows, o.oldest, o.newest),
                "{backend}: stats"
            );
        }
        assert!(o.file_size > 0, "{backend}: {o:?}");
        assert_eq!(reference.6, other.6, "{backend}: series");
        for (r, o) in reference.7.iter().zip(&other.7) {
            let who = |ranked: &[swarm_metrics::Ranked]| -> Vec<(String, u64)> {
                ranked
                    .iter()
                    .map(|x| (x.agent_id.clone(), x.tasks))
                    .collect()
            };
            assert_eq!(who(r), who(o), "{backend}: ranking");
            for (r, o) in r.iter().zip(o) {
                close(Some(r.score), Some(o.score), backend);
                assert_eq!(r.interval, o.interval, "{backend}: interval");
            }
        }
        assert_eq!(reference.8, other.8, "{backend}: slowest tasks");
        assert_eq!(reference.9, other.9, "{backend}: outliers");
    }
    assert!(!reference.9.is_empty(), "some outliers to compare");
}

/// Batches of all kinds, streams (in several chunks, and one that fails
/// half-way) and streaming reads, alike.
#[test]
fn batches_streams_and_streaming_reads_alike() {
    let task = |i: u32| {
        TaskMetric::new(
            format!("t{i}"),
            format!("a{}", i % 3),
            u64::from(i),
            TaskResult::ALL[(i % 4) as usize],
        )
        .swarm(format!("s{}", i % 2))
        .at(base() + Duration::seconds(i64::from(i)))
    };
    let agent = |i: u32| {
        AgentMetric::new(
            format!("a{}", i % 3),
            MetricType::AgentThroughput,
            f64::from(i % 7),
        )
        .at(base() + Duration::seconds(i64::from(i)))
    };
    let swarm = |i: u32| {
        SwarmMetric::new(
            format!("s{}", i % 2),
            MetricType::SwarmHealth,
            f64::from(i) / 8.0,
        )
        .at(base() + Duration::seconds(i64::from(i)))
    };
    let batch = MetricBatch {
        tasks: (0..40).map(task).collect(),
        agents: (0..30).map(agent).collect(),
        swarms: (0..20).map(swarm).collect(),
    };
    // A stream longer than a chunk, retrying part of the batch.
    let stream = || {
        (20..2_500u32).map(move |i| {
            Ok(match i % 3 {
                0 => Parsed::Task(task(i)),
                1 => Parsed::Agent(agent(i)),
                _ => Parsed::Swarm(swarm(i)),
            })
        })
    };
    let mut seen = Vec::new();
    for store in stores() {
        let s = &store.store;
        let first = s.store_batch(&batch).unwrap();
        let again = s.store_batch(&batch).unwrap();
        let streamed = s.store_stream(stream()).unwrap();
        // A stream that fails after its first chunks stores nothing.
        let failing = (5_000..8_000u32).map(|i| {
            if i == 7_000 {
                Err(swarm_metrics::Error::Io {
                    operation: "read the stream",
                    path: "stream".into(),
                    source: std::io::Error::other("cut off"),
                })
            } else {
                Ok(Parsed::Task(task(i)))
            }
        });
        let err = s.store_stream(failing).unwrap_err();
        assert!(
            err.to_string().contains("cut off"),
            "{}: {err}",
            store.backend
        );
        let mut tasks = Vec::new();
        s.for_each_task_metric(&Filter::new(), |t| {
            tasks.push(t);
            std::ops::ControlFlow::<()>::Continue(())
        })
        .unwrap();
        let mut agents = Vec::new();
        s.for_each_agent_metric(&Filter::new().agent("a1"), |m| {
            agents.push(m);
            std::ops::ControlFlow::<()>::Continue(())
        })
        .unwrap();
        let mut swarms = Vec::new();
        let stopped = s
            .for_each_swarm_metric(&Filter::new(), |m| {
                swarms.push(m);
                if swarms.len() == 10 {
                    std::ops::ControlFlow::Break("enough")
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            })
            .unwrap();
        assert_eq!(stopped, Some("enough"), "{}", store.backend);
        seen.push((store.backend, first, again, streamed, tasks, agents, swarms));
    }
    let reference = &seen[0];
    assert_eq!(reference.1.new_tasks, 40);
    assert_eq!(reference.2.new_tasks + reference.2.new_agent_metrics, 0);
    // The batch's 40 tasks and the stream's new ones; none of the failed
    // stream.
    let streamed_new = (40..2_500).filter(|i| i % 3 == 0).count();
    assert_eq!(reference.4.len(), 40 + streamed_new);
    for other in &seen[1..] {
        let backend = other.0;
        assert_eq!(reference.1, other.1, "{backend}: batch");
        assert_eq!(reference.2, other.2, "{backend}: batch again");
        assert_eq!(reference.3, other.3, "{backend}: stream");
        assert_eq!(reference.4, other.4, "{backend}: tasks read back");
        assert_eq!(reference.5, other.5, "{backend}: agent metrics read back");
        assert_eq!(reference.6, other.6, "{backend}: swarm metrics read back");
    }
}

/// The health report's numbers, alike (its page is drawn from them by the
/// same code).
#[test]
fn the_report_gives_the_same_numbers() {
    let now = swarm_metrics::now();
    let tasks: Vec<TaskMetric> = (0..2_000i64)
        .map(|i| {
            let agent = i % 5;
            let at = now - Duration::minutes(11 * i);
            let late = now - at < Duration::days(1);
            let fails = if agent == 4 && late {
                i % 2 == 0
            } else {
                i % 9 == 0
            };
            let result = if fails {
                TaskResult::Failure
            } else {
                TaskResult::Success
            };
            let duration = if i % 97 == 0 {
                40_000
            } else {
                200 + (i * 31 % 700) as u64
            };
            TaskMetric::new(format!("t{i}"), format!("agent-{agent}"), duration, result)
                .swarm(format!("swarm-{}", agent % 2))
                .tokens((i * 7 % 500) as u64)
                .at(at)
        })
        .collect();
    let mut reports = Vec::new();
    for store in stores() {
        store.store.store_task_metrics(&tasks).unwrap();
        let options = swarm_metrics::ReportOptions::new().top_agents(3);
        reports.push((store.backend, store.store.report(&options).unwrap()));
    }
    let (_, r) = &reports[0];
    assert!(!r.regressions.is_empty() && !r.outliers.is_empty());
    for (backend, o) in &reports[1..] {
        assert_eq!(
            (r.span, r.width_seconds),
            (o.span, o.width_seconds),
            "{backend}"
        );
        assert_eq!(r.summary.success_rate, o.summary.success_rate, "{backend}");
        assert_eq!(
            r.summary.duration_ms.p95, o.summary.duration_ms.p95,
            "{backend}"
        );
        assert_eq!(r.rates, o.rates, "{backend}: rates over time");
        assert_eq!(r.swarms_not_charted, o.swarms_not_charted, "{backend}");
        assert_eq!(r.durations, o.durations, "{backend}: durations over time");
        assert_eq!(r.agents, o.agents, "{backend}: leaderboard");
        assert_eq!(r.other_agents, o.other_agents, "{backend}: other agents");
        assert_eq!(
            (r.current, r.baseline),
            (o.current, o.baseline),
            "{backend}"
        );
        assert_eq!(r.regressions, o.regressions, "{backend}: regressions");
        assert_eq!(r.outliers, o.outliers, "{backend}: outliers");
        assert_eq!(r.outliers_total, o.outliers_total, "{backend}");
        assert!(o.to_html().contains("Success rate over time"));
    }
}

/// Copying moves every metric between any two stores and goes on where an
/// interrupted copy stopped (rollups: `tests/tiered_conformance.rs`).
#[test]
fn copies_move_every_metric_between_backends() {
    let tasks: Vec<TaskMetric> = (0..2_500u32)
        .map(|i| {
            TaskMetric::new(
                format!("t{i}"),
                format!("a{}", i % 4),
                u64::from(i),
                TaskResult::ALL[(i % 4) as usize],
            )
            .swarm(format!("s{}", i % 3))
            .tokens(u64::from(i % 50))
            .at(base() + Duration::seconds(i64::from(i) * 30))
        })
        .collect();
    let agents: Vec<AgentMetric> = (0..300u32)
        .map(|i| {
            AgentMetric::new(
                format!("a{}", i % 4),
                MetricType::AgentThroughput,
                f64::from(i),
            )
            .metadata(serde_json::json!({"i": i}))
            .at(base() + Duration::seconds(i64::from(i)))
        })
        .collect();
    let swarms: Vec<SwarmMetric> = (0..100u32)
        .map(|i| SwarmMetric::new("s1", MetricType::SwarmHealth, f64::from(i) / 100.0).at(base()))
        .collect();
    let content = |s: &swarm_metrics::MetricsStorage| {
        let rows = s.get_task_metrics(&Filter::new(), 10_000).unwrap();
        let strip = |v: Vec<Stored<AgentMetric>>| -> Vec<AgentMetric> {
            v.into_iter().map(|m| m.metric).collect()
        };
        let agents = strip(s.get_agent_metrics(&Filter::new(), 10_000).unwrap());
        let swarms: Vec<SwarmMetric> = s
            .get_swarm_metrics(&Filter::new(), 10_000)
            .unwrap()
            .into_iter()
            .map(|m| m.metric)
            .collect();
        (rows, agents, swarms)
    };
    let sources = stores();
    for source in &sources {
        source.store.store_task_metrics(&tasks).unwrap();
        source.store.store_agent_metrics(&agents).unwrap();
        source.store.store_swarm_metrics(&swarms).unwrap();
    }
    let expected = content(&sources[0].store);
    for source in &sources {
        for target in stores() {
            // An earlier copy stopped after the first 1,000 tasks.
            target.store.store_task_metrics(&tasks[..1_000]).unwrap();
            let report = source.store.copy_to(&target.store).unwrap();
            let what = format!("{} to {}", source.backend, target.backend);
            assert_eq!(
                (report.tasks.stored, report.tasks.duplicates),
                (1_500, 1_000),
                "{what}"
            );
            assert_eq!(report.agent_metrics.stored, 300, "{what}");
            assert_eq!(report.swarm_metrics.stored, 100, "{what}");
            assert_eq!(content(&target.store), expected, "{what}");
            let again = source.store.copy_to(&target.store).unwrap();
            assert_eq!((again.stored(), again.duplicates()), (0, 2_900), "{what}");
        }
    }
}

#[test]
fn bad_records_are_refused_alike_and_nothing_is_written() {
    for store in stores() {
        let good = TaskMetric::new("t-1", "a", 5, TaskResult::Success);
        let bad = TaskMetric::new("", "a", 5, TaskResult::Success);
        let err = store
            .store
            .store_task_metrics(&[good.clone(), bad])
            .unwrap_err();
        assert!(err.is_invalid_input(), "{}: {err}", store.backend);
        assert!(
            err.to_string().contains("task_id"),
            "{}: {err}",
            store.backend
        );
        assert_eq!(
            store.store.success_rate(&Filter::new()).unwrap().total,
            0,
            "{}",
            store.backend
        );
        let limit = store.store.get_task_metrics(&Filter::new(), 0).unwrap_err();
        assert!(limit.is_invalid_input(), "{}", store.backend);
        assert!(store.store.store_task_metric(&good).unwrap());
        assert!(!store.store.store_task_metric(&good).unwrap(), "a retry");
    }
}

#[cfg(feature = "postgres")]
mod postgres_only {
    use super::*;
    use swarm_metrics::{Error, MetricsStorage, RetentionPolicy};

    #[test]
    fn passwords_never_reach_a_message_or_the_path() {
        let err =
            MetricsStorage::open("postgres://someone:s3cret@127.0.0.1:1/nowhere").unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(
            text.contains("postgres://someone@127.0.0.1:1/nowhere"),
            "{text}"
        );

        let db = common::server::database();
        let with_password =
            db.url
                .replacen("postgres://postgres@", "postgres://postgres:s3cret@", 1);
        let store = MetricsStorage::open(&with_password).unwrap();
        let shown = store.path().display().to_string();
        assert!(
            !shown.contains("s3cret") && shown.ends_with(&db.name),
            "{shown}"
        );
        // Task metrics (1), then agent and swarm metrics (2).
        assert!(store.schema_version().unwrap() >= 2);
    }

    /// A store on a fresh database with a pool of one connection, and the
    /// task `t-1` it stored.
    fn one_connection_with_a_task() -> (common::server::Database, MetricsStorage, TaskMetric) {
        let db = common::server::database();
        let store = MetricsStorage::builder(&db.url)
            .pool_size(1)
            .open()
            .unwrap();
        let task = TaskMetric::new("t-1", "agent-1", 40, TaskResult::Success).at(base());
        assert!(store.store_task_metric(&task).unwrap());
        (db, store, task)
    }

    /// Reads run statements each connection prepares once and keeps; a
    /// kept statement whose result no longer fits the table (another
    /// version changed a column's type) is prepared again, not an error.
    #[test]
    fn kept_statements_follow_a_changed_table() {
        let (db, store, task) = one_connection_with_a_task();
        let by_id = Filter::new().task("t-1");
        assert_eq!(
            store.get_task_metrics(&by_id, 10).unwrap(),
            std::slice::from_ref(&task)
        );
        db.execute("ALTER TABLE task_metrics ALTER COLUMN provider TYPE varchar(200)");
        assert_eq!(store.get_task_metrics(&by_id, 10).unwrap(), [task]);
    }

    /// A pooled connection idle for a while is tested before it is
    /// handed out: one the server ended meanwhile is replaced, and the
    /// call succeeds.
    #[test]
    fn a_connection_the_server_ended_is_replaced() {
        let (db, store, task) = one_connection_with_a_task();
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
        std::thread::sleep(std::time::Duration::from_millis(1_200));
        let by_id = Filter::new().task("t-1");
        assert_eq!(
            store.get_task_metrics(&by_id, 10).unwrap(),
            std::slice::from_ref(&task)
        );
    }

    /// Options that concern a file are refused on a server, naming the
    /// option, rather than ignored; those that apply to both are taken.
    #[test]
    fn file_options_are_refused_on_a_server() {
        let db = common::server::database();
        type SetOption = fn(swarm_metrics::StorageBuilder) -> swarm_metrics::StorageBuilder;
        let cases: [(&str, SetOption); 5] = [
            ("durability", |b| {
                b.durability(swarm_metrics::Durability::Full)
            }),
            ("max_size_bytes", |b| b.max_size_bytes(1 << 30)),
            ("index_batch_rows", |b| b.index_batch_rows(16)),
            ("mmap_size", |b| b.mmap_size(0)),
            ("create_dirs", |b| b.create_dirs(false)),
        ];
        for (option, set) in cases {
            let err = set(MetricsStorage::builder(&db.url)).open().unwrap_err();
            match &err {
                Error::InvalidInput { field, .. } => assert_eq!(*field, option, "{err}"),
                other => panic!("{option}: expected InvalidInput, got {other}"),
            }
        }
        let store = MetricsStorage::builder(&db.url)
            .pool_size(2)
            .busy_timeout(std::time::Duration::from_secs(2))
            .read_only(false)
            .open()
            .unwrap();
        assert!(!store.is_read_only());
    }

    /// A server row that breaks the schema's promises (a NULL where a
    /// value must be, a value of another type) is an error naming the
    /// column, never a panic of the client.
    #[test]
    fn a_server_row_that_breaks_the_schema_is_a_corrupt_row() {
        let db = common::server::database();
        let store = MetricsStorage::open(&db.url).unwrap();
        store
            .store_task_metric(&TaskMetric::new("t", "a", 5, TaskResult::Success))
            .unwrap();
        let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
        client
            .batch_execute(
                "ALTER TABLE task_metrics ALTER COLUMN tokens_used DROP NOT NULL; \
                 UPDATE task_metrics SET tokens_used = NULL",
            )
            .unwrap();
        let err = store.get_task_metrics(&Filter::new(), 10).unwrap_err();
        assert!(matches!(err, Error::CorruptRow { .. }), "{err}");
        assert!(err.to_string().contains("tokens_used"), "{err}");
        // The other answers of the same rows go on.
        assert_eq!(store.success_rate(&Filter::new()).unwrap().total, 1);
    }

    /// Two hosts running tiered retention on the same server at once take
    /// turns: every old task is folded by exactly one of them, and the
    /// answers are those of before.
    #[test]
    fn hosts_running_retention_at_once_fold_each_task_once() {
        use chrono::{Duration, DurationRound};
        let db = common::server::database();
        let hosts = [
            MetricsStorage::open(&db.url).unwrap(),
            MetricsStorage::open(&db.url).unwrap(),
        ];
        let day = swarm_metrics::now()
            .duration_trunc(Duration::days(1))
            .unwrap();
        let old: Vec<_> = (0..6_000i64)
            .map(|i| {
                TaskMetric::new(
                    format!("t{i}"),
                    format!("agent-{}", i % 4),
                    (i % 50) as u64,
                    TaskResult::ALL[(i % 4) as usize],
                )
                .at(day - Duration::days(10) - Duration::minutes(25 * i))
            })
            .collect();
        hosts[0].store_task_metrics(&old).unwrap();
        let before = (
            hosts[0].success_rate(&Filter::new()).unwrap(),
            hosts[0]
                .aggregate_metrics(MetricKind::Task, AggregationType::Sum, &Filter::new())
                .unwrap(),
        );
        let policy = RetentionPolicy {
            raw: Some(Duration::days(7)),
            hourly: None,
            daily: None,
            chunk_rows: 100,
        };
        let folded: u64 = std::thread::scope(|s| {
            let runs: Vec<_> = hosts
                .iter()
                .map(|host| s.spawn(move || host.apply_retention(&policy).unwrap()))
                .collect();
            runs.into_iter()
                .map(|run| {
                    let report = run.join().unwrap();
                    assert!(report.finished);
                    report.raw_folded
                })
                .sum()
        });
        assert_eq!(folded, 6_000);
        for host in &hosts {
            let after = (
                host.success_rate(&Filter::new()).unwrap(),
                host.aggregate_metrics(MetricKind::Task, AggregationType::Sum, &Filter::new())
                    .unwrap(),
            );
            assert_eq!(after, before);
            assert!(host.get_task_metrics(&Filter::new(), 1).unwrap().is_empty());
        }
    }

    /// The maintenance commands take a server too: `check` says it is
    /// sound, `vacuum` and `stats` answer, `cleanup --in-place` (a file's
    /// remedy) is refused with a message that says so, and no output
    /// shows the password.
    #[test]
    fn maintenance_commands_take_a_server_and_never_show_its_password() {
        let db = common::server::database();
        let url = db
            .url
            .replacen("postgres://postgres@", "postgres://postgres:s3cret@", 1);
        let run = |args: &[&str]| {
            let out = assert_cmd::Command::cargo_bin("swarm-metrics")
                .unwrap()
                .args(["--db", &url])
                .args(args)
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!text.contains("s3cret"), "{args:?}: {text}");
            (out.status.code(), text)
        };
        let (code, text) = run(&["check"]);
        assert_eq!(code, Some(0), "{text}");
        assert!(text.contains(": ok (schema version"), "{text}");
        let (code, text) = run(&["--json", "check"]);
        assert_eq!(code, Some(0), "{text}");
        assert!(text.contains("\"ok\":true"), "{text}");
        for args in [
            &["vacuum"][..],
            &["vacuum", "--full"],
            &["stats"],
            &["--json", "stats"],
            &["summary"],
            &["--json", "report"],
            &["export", "--format", "jsonl"],
            &["cleanup", "--policy", "7d,30d,forever"],
            &["cleanup", "--retention-days", "30", "--dry-run"],
        ] {
            let (code, text) = run(args);
            assert_eq!(code, Some(0), "{args:?}: {text}");
        }
        let (code, text) = run(&["cleanup", "--in-place", "--retention-days", "30"]);
        assert_eq!(code, Some(1), "{text}");
        assert!(text.contains("not available on PostgreSQL"), "{text}");
    }

    /// The integrity check finds nothing wrong with a sound store, checks
    /// every index with `amcheck` where it is installed, and names a
    /// partition that is not one calendar month.
    #[test]
    fn the_integrity_check_names_what_is_wrong() {
        let db = common::server::database();
        let store = MetricsStorage::open(&db.url).unwrap();
        let tasks: Vec<_> = (0..500)
            .map(|i| TaskMetric::new(format!("t{i}"), "a", i, TaskResult::Success))
            .collect();
        store.store_task_metrics(&tasks).unwrap();
        assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new());
        db.execute("CREATE EXTENSION amcheck");
        assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new());
        db.execute(
            "CREATE TABLE task_metrics_odd PARTITION OF task_metrics FOR VALUES FROM (0) TO (10)",
        );
        let problems = store.integrity_check().unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("task_metrics_odd"), "{problems:?}");
    }

    /// Inside `consistent`, reads see one snapshot while another thread
    /// stores; outside, they see everything.
    #[test]
    fn a_consistent_read_sees_one_snapshot() {
        let db = common::server::database();
        let store = MetricsStorage::open(&db.url).unwrap();
        let task = |i: u32| TaskMetric::new(format!("t{i}"), "a", 1, TaskResult::Success);
        store.store_task_metrics(&[task(0), task(1)]).unwrap();
        let (before, after, nested) = store
            .consistent(|s| {
                let before = s.success_rate(&Filter::new())?.total;
                std::thread::scope(|scope| {
                    scope.spawn(|| store.store_task_metric(&task(2)).unwrap());
                });
                // A store from this thread is written too, outside the
                // snapshot.
                s.store_task_metric(&task(3))?;
                let after = s.get_task_metrics(&Filter::new(), 10)?.len() as u64;
                let nested = s.consistent(|s| s.success_rate(&Filter::new()))?.total;
                Ok((before, after, nested))
            })
            .unwrap();
        assert_eq!((before, after, nested), (2, 2, 2));
        assert_eq!(store.success_rate(&Filter::new()).unwrap().total, 4);
        // A store needing a new month's partition inside its own consistent
        // read would wait on that read: it is refused at once instead.
        let long_ago = TaskMetric::new("old", "a", 1, TaskResult::Success)
            .at(swarm_metrics::now() - chrono::Duration::days(900));
        let err = store
            .consistent(|s| {
                s.success_rate(&Filter::new())?;
                s.store_task_metric(&long_ago)
            })
            .unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        // Outside it, the same store goes in.
        assert!(store.store_task_metric(&long_ago).unwrap());
    }

    /// A stream whose later chunks reach months without a partition makes
    /// them inside its own transaction (creating them on another
    /// connection would wait for that transaction), while another thread
    /// stores into other new months; nothing waits for ever.
    #[test]
    fn a_stream_across_months_makes_its_partitions_as_it_goes() {
        let db = common::server::database();
        let store = MetricsStorage::open(&db.url).unwrap();
        let start = swarm_metrics::now() - chrono::Duration::days(400);
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let store = &store;
            s.spawn(move || {
                // 6,000 tasks over about 6 months, in chunks of 1,024.
                let stream = (0..6_000i64).map(move |i| {
                    Ok(Parsed::Task(
                        TaskMetric::new(format!("s{i}"), "a", 1, TaskResult::Success)
                            .at(start + chrono::Duration::minutes(45 * i)),
                    ))
                });
                let report = store.store_stream(stream);
                done.send(report).unwrap();
            });
            s.spawn(move || {
                for i in 0..40i64 {
                    let t = TaskMetric::new(format!("o{i}"), "b", 1, TaskResult::Success)
                        .at(start - chrono::Duration::days(31 * i));
                    store.store_task_metric(&t).unwrap();
                }
            });
            let report = finished
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("the stream finished")
                .unwrap();
            assert_eq!(report.tasks.stored, 6_000);
        });
        assert_eq!(store.success_rate(&Filter::new()).unwrap().total, 6_040);
        // Its partitions are known afterwards: more stores into them work.
        let later = TaskMetric::new("late", "a", 1, TaskResult::Success)
            .at(start + chrono::Duration::days(100));
        assert!(store.store_task_metric(&later).unwrap());
    }

    /// Three processes import into one database at once, with 2,000
    /// tasks in common: every process succeeds, nothing is lost, and the
    /// shared tasks are stored once.
    #[test]
    fn processes_importing_at_once_lose_nothing() {
        let db = common::server::database();
        let dir = tempfile::tempdir().unwrap();
        let children: Vec<_> = (0..3)
            .map(|p| {
                let mut input = String::new();
                for i in 0..20_000 {
                    input.push_str(&format!(
                        "{{\"kind\":\"task\",\"task_id\":\"p{p}-{i}\",\"agent_id\":\"agent-{p}\",\"duration_ms\":{i},\"result\":\"success\",\"timestamp\":\"2025-03-01T00:00:00Z\"}}\n"
                    ));
                }
                for i in 0..2_000 {
                    input.push_str(&format!(
                        "{{\"kind\":\"task\",\"task_id\":\"shared-{i}\",\"agent_id\":\"shared\",\"duration_ms\":1,\"result\":\"success\",\"timestamp\":\"2025-03-02T00:00:00Z\"}}\n"
                    ));
                }
                let path = dir.path().join(format!("in-{p}.jsonl"));
                std::fs::write(&path, input).unwrap();
                std::process::Command::new(env!("CARGO_BIN_EXE_swarm-metrics"))
                    .args(["--db", &db.url, "--json", "import"])
                    .arg(&path)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut shared_stored = 0;
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            let stored = report["tasks"]["stored"].as_u64().unwrap();
            assert!((20_000..=22_000).contains(&stored), "{report}");
            shared_stored += stored - 20_000;
        }
        assert_eq!(
            shared_stored, 2_000,
            "each shared task stored by exactly one process"
        );
        let store = MetricsStorage::open(&db.url).unwrap();
        for p in 0..3 {
            let rate = store
                .success_rate(&Filter::new().agent(format!("agent-{p}")))
                .unwrap();
            assert_eq!(rate.total, 20_000);
        }
        assert_eq!(
            store
                .success_rate(&Filter::new().agent("shared"))
                .unwrap()
                .total,
            2_000
        );
    }

    /// Writers storing the same tasks in opposite orders at once wait for
    /// each other and never fail: each batch takes its row locks in key
    /// order.
    #[test]
    fn writers_sharing_tasks_in_any_order_never_fail() {
        let db = common::server::database();
        let store = MetricsStorage::open(&db.url).unwrap();
        let tasks: Vec<TaskMetric> = (0..2_000u32)
            .map(|i| {
                TaskMetric::new(format!("t{i:04}"), "a", 1, TaskResult::Success)
                    .at(swarm_metrics::now() - chrono::Duration::seconds(i64::from(i)))
            })
            .collect();
        let stored: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|w| {
                    let (store, tasks) = (&store, &tasks);
                    s.spawn(move || {
                        let mut mine: Vec<TaskMetric> = tasks.clone();
                        if w % 2 == 1 {
                            mine.reverse();
                        }
                        mine.chunks(if w < 2 { 500 } else { 7 })
                            .map(|chunk| store.store_task_metrics(chunk).unwrap())
                            .sum::<usize>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(stored, 2_000, "each task stored once");
        assert_eq!(store.success_rate(&Filter::new()).unwrap().total, 2_000);
    }

    /// While writers store, every read is exact: an agent's success rate
    /// and newest rows show exactly the first n tasks of its writer, n
    /// between what the writer had stored before the read and after it,
    /// with the outcome counts of exactly those tasks; and cleanup of old
    /// rows meanwhile changes none of it.
    #[test]
    fn reads_are_exact_while_writers_and_cleanup_run() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let db = common::server::database();
        let store = MetricsStorage::open(&db.url).unwrap();
        let old = swarm_metrics::now() - chrono::Duration::days(200);
        let stale: Vec<_> = (0..3_000)
            .map(|i| TaskMetric::new(format!("old-{i}"), "old", 1, TaskResult::Success).at(old))
            .collect();
        store.store_task_metrics(&stale).unwrap();
        const WRITERS: usize = 4;
        const STORES: u64 = 600;
        let stored: Vec<AtomicU64> = (0..WRITERS).map(|_| AtomicU64::new(0)).collect();
        let done = AtomicBool::new(false);
        let (reads, cleaned) = std::thread::scope(|s| {
            let writers: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let (store, stored) = (&store, &stored);
                    s.spawn(move || {
                        for i in 0..STORES {
                            let task = TaskMetric::new(
                                format!("w{w}-{i}"),
                                format!("agent-{w}"),
                                i,
                                TaskResult::ALL[(i % 4) as usize],
                            );
                            assert!(store.store_task_metric(&task).unwrap());
                            stored[w].fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            let reader = s.spawn(|| {
                let mut reads = 0;
                while !done.load(Ordering::SeqCst) {
                    let w = reads % WRITERS;
                    let agent = Filter::new().agent(format!("agent-{w}"));
                    let before = stored[w].load(Ordering::SeqCst);
                    let rate = store.success_rate(&agent).unwrap();
                    let rows = store.get_task_metrics(&agent, 20).unwrap();
                    let after = stored[w].load(Ordering::SeqCst);
                    let n = rate.total;
                    assert!(
                        (before..=after + 1).contains(&n),
                        "read {n}, stored {before}..{after}"
                    );
                    let of = |k: u64| (n + 3 - k) / 4;
                    assert_eq!(
                        (rate.success, rate.failure, rate.timeout, rate.cancelled),
                        (of(0), of(1), of(2), of(3))
                    );
                    let newest = rows.first().map_or(0, |t| t.duration_ms + 1);
                    assert!((before..=after + 1).contains(&newest), "newest {newest}");
                    reads += 1;
                }
                reads
            });
            let cleaner = s.spawn(|| store.cleanup_old_metrics(100).unwrap().task_metrics);
            for w in writers {
                w.join().unwrap();
            }
            let cleaned = cleaner.join().unwrap();
            done.store(true, Ordering::SeqCst);
            (reader.join().unwrap(), cleaned)
        });
        assert!(reads > 0);
        assert_eq!(cleaned, 3_000);
        assert_eq!(
            store.success_rate(&Filter::new()).unwrap().total,
            WRITERS as u64 * STORES
        );
    }

    /// While tiered retention folds old months whole and the boundary row
    /// by row, and writers store new tasks, every read of the old span
    /// counts each old task exactly once (raw or rolled up, never both,
    /// never neither), alone and inside `consistent`; the folded months'
    /// partitions are gone afterwards.
    #[test]
    fn reads_are_exact_while_retention_folds_partitions() {
        use chrono::{Duration, DurationRound};
        use std::sync::atomic::{AtomicBool, Ordering};
        let db = common::server::database();
        let store = MetricsStorage::open(&db.url).unwrap();
        let now = swarm_metrics::now();
        let day = now.duration_trunc(Duration::days(1)).unwrap();
        // 9,000 old tasks over 100 days before the raw horizon.
        let old: Vec<_> = (0..9_000i64)
            .map(|i| {
                TaskMetric::new(
                    format!("old-{i}"),
                    format!("agent-{}", i % 3),
                    (i % 97) as u64,
                    TaskResult::ALL[(i % 4) as usize],
                )
                .at(day - Duration::days(10) - Duration::minutes(16 * i))
            })
            .collect();
        store.store_task_metrics(&old).unwrap();
        let span = Filter::new().range(
            TimeRange::new(day - Duration::days(400), day - Duration::microseconds(1)).unwrap(),
        );
        let durations: u64 = old.iter().map(|t| t.duration_ms).sum();
        let partitions = |db: &common::server::Database| db.count_partitions("task_metrics");
        let months_before = partitions(&db);
        let policy = RetentionPolicy {
            raw: Some(Duration::days(7)),
            hourly: None,
            daily: None,
            chunk_rows: 200,
        };
        let done = AtomicBool::new(false);
        let reads = std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let mut i = 0;
                while !done.load(Ordering::SeqCst) {
                    let task =
                        TaskMetric::new(format!("new-{i}"), "agent-new", 5, TaskResult::Success);
                    assert!(store.store_task_metric(&task).unwrap());
                    i += 1;
                }
            });
            let readers: Vec<_> = (0..2)
                .map(|r| {
                    let (store, span, done) = (&store, &span, &done);
                    s.spawn(move || {
                        let mut reads = 0;
                        while !done.load(Ordering::SeqCst) {
                            let (rate, sum) = if r == 0 {
                                let rate = store.success_rate(span).unwrap();
                                let sum = store
                                    .aggregate_metrics(MetricKind::Task, AggregationType::Sum, span)
                                    .unwrap();
                                (rate, sum)
                            } else {
                                store
                                    .consistent(|store| {
                                        let rate = store.success_rate(span)?;
                                        let sum = store.aggregate_metrics(
                                            MetricKind::Task,
                                            AggregationType::Sum,
                                            span,
                                        )?;
                                        Ok((rate, sum))
                                    })
                                    .unwrap()
                            };
                            assert_eq!(rate.total, 9_000, "read {reads} of reader {r}");
                            assert_eq!(rate.success, 2_250);
                            assert_eq!(sum.count, 9_000);
                            assert_eq!(sum.value, Some(durations as f64));
                            reads += 1;
                        }
                        reads
                    })
                })
                .collect();
            let report = store.apply_retention(&policy).unwrap();
            done.store(true, Ordering::SeqCst);
            writer.join().unwrap();
            assert_eq!(report.raw_folded, 9_000);
            readers
                .into_iter()
                .map(|r| r.join().unwrap())
                .sum::<usize>()
        });
        assert!(reads > 0);
        assert_eq!(store.success_rate(&span).unwrap().total, 9_000);
        // Only the month the horizon cuts (and the months of new tasks)
        // keep a partition.
        assert!(
            partitions(&db) < months_before,
            "{months_before} partitions before"
        );
    }

    /// The pages of March's partition that a day's query from `day` reads
    /// (the lossy blocks of its bitmap scan), the partition's pages, and
    /// the plan, checked to go through the time index.
    fn march_pages_a_day_reads(
        db: &common::server::Database,
        day: chrono::DateTime<chrono::Utc>,
    ) -> (i64, i64, String) {
        let (from, to) = (
            day.timestamp_micros(),
            (day + chrono::Duration::days(1)).timestamp_micros(),
        );
        let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
        let pages: i64 = client
            .query_one(
                "SELECT pg_relation_size('task_metrics_y2025m03') / 8192",
                &[],
            )
            .unwrap()
            .get(0);
        let plan: serde_json::Value = client
            .query_one(
                &format!(
                    "EXPLAIN (ANALYZE, FORMAT JSON) SELECT m.result, count(*) FROM task_metrics m \
                     WHERE m.timestamp >= {from} AND m.timestamp <= {to} GROUP BY m.result"
                ),
                &[],
            )
            .unwrap()
            .get(0);
        let text = plan.to_string();
        assert!(
            text.contains("Bitmap Index Scan")
                && text.contains("task_metrics_y2025m03_timestamp_idx"),
            "{text}"
        );
        fn lossy(node: &serde_json::Value) -> Option<i64> {
            node.get("Lossy Heap Blocks")
                .and_then(|v| v.as_i64())
                .or_else(|| match node {
                    serde_json::Value::Object(m) => m.values().find_map(lossy),
                    serde_json::Value::Array(a) => a.iter().find_map(lossy),
                    _ => None,
                })
        }
        (lossy(&plan).unwrap_or(0), pages, text)
    }

    /// Batches stored one after another keep the time index summarized
    /// as they go: the last day of 60,000 tasks stored in batches of
    /// 1,000 reads its own pages, not the month's newest third.
    #[test]
    fn batches_keep_the_time_index_summarized() {
        let db = common::server::database();
        let store = MetricsStorage::open(&db.url).unwrap();
        let start: chrono::DateTime<chrono::Utc> = "2025-03-01T00:00:00Z".parse().unwrap();
        for batch in 0..60i64 {
            let tasks: Vec<TaskMetric> = (batch * 1_000..(batch + 1) * 1_000)
                .map(|i| {
                    TaskMetric::new(format!("t{i:05}"), "a", 1, TaskResult::Success)
                        .at(start + chrono::Duration::seconds(i * 43))
                })
                .collect();
            assert_eq!(store.store_task_metrics(&tasks).unwrap(), 1_000);
        }
        let last_day = start + chrono::Duration::days(28);
        let (read, pages, text) = march_pages_a_day_reads(&db, last_day);
        // A day is a thirtieth of the data, plus the two ranges of 32
        // pages it falls in; the newest third unsummarized would be read
        // whole.
        assert!(read * 5 < pages, "read {read} of {pages} pages: {text}");
    }

    /// A bulk write refreshes the statistics of the partitions it wrote,
    /// and only theirs: a month written one task at a time before, and
    /// the partitioned table as a whole, are left to autovacuum.
    #[test]
    fn a_bulk_write_analyzes_the_partitions_it_wrote() {
        let db = common::server::database();
        let store = MetricsStorage::open(&db.url).unwrap();
        let january: chrono::DateTime<chrono::Utc> = "2025-01-05T00:00:00Z".parse().unwrap();
        let single = TaskMetric::new("t-jan", "a", 1, TaskResult::Success).at(january);
        assert!(store.store_task_metric(&single).unwrap());
        let start: chrono::DateTime<chrono::Utc> = "2025-03-05T00:00:00Z".parse().unwrap();
        let stream = (0..12_000i64).map(move |i| {
            Ok(Parsed::Task(
                TaskMetric::new(format!("t{i:05}"), "a", 1, TaskResult::Success)
                    .at(start + chrono::Duration::seconds(i * 60)),
            ))
        });
        assert_eq!(store.store_stream(stream).unwrap().tasks.stored, 12_000);
        let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
        let mut estimated = |table: &str| -> f32 {
            client
                .query_one(
                    "SELECT reltuples FROM pg_class WHERE relname = $1",
                    &[&table],
                )
                .unwrap()
                .get(0)
        };
        // -1: never analyzed (nor vacuumed).
        assert_eq!(estimated("task_metrics_y2025m03"), 12_000.0);
        assert_eq!(estimated("task_metrics_y2025m01"), -1.0);
        assert_eq!(estimated("task_metrics"), -1.0);
    }

    /// After an import, a day's query reads that day's pages through the
    /// time index rather than the whole month's (the query plan guarded,
    /// not its time).
    #[test]
    fn a_days_query_reads_a_days_pages_after_an_import() {
        let db = common::server::database();
        let store = MetricsStorage::open(&db.url).unwrap();
        // 20,000 tasks over 20 days of one month, in time order.
        let start: chrono::DateTime<chrono::Utc> = "2025-03-05T00:00:00Z".parse().unwrap();
        let stream = (0..20_000i64).map(move |i| {
            Ok(Parsed::Task(
                TaskMetric::new(format!("t{i:05}"), "a", 1, TaskResult::Success)
                    .at(start + chrono::Duration::seconds(i * 86)),
            ))
        });
        assert_eq!(store.store_stream(stream).unwrap().tasks.stored, 20_000);
        let day = start + chrono::Duration::days(10);
        let (read, pages, text) = march_pages_a_day_reads(&db, day);
        // The store explains its own queries the same way.
        let range = TimeRange::new(day, day + chrono::Duration::days(1)).unwrap();
        let plan = store
            .query_plan(
                MetricKind::Task,
                swarm_metrics::QueryShape::SuccessRate,
                &Filter::new().range(range),
            )
            .unwrap()
            .join("\n");
        assert!(
            plan.contains("Bitmap Index Scan on task_metrics_y2025m03_timestamp_idx"),
            "{plan}"
        );
        let plan = store
            .query_plan(
                MetricKind::Task,
                swarm_metrics::QueryShape::Rows,
                &Filter::new().task("t00042"),
            )
            .unwrap()
            .join("\n");
        assert!(plan.contains("task_metrics_y2025m03_pkey"), "{plan}");
        for shape in [
            swarm_metrics::QueryShape::Percentile,
            swarm_metrics::QueryShape::Aggregate(AggregationType::Avg),
        ] {
            let plan = store
                .query_plan(MetricKind::Task, shape, &Filter::new().range(range))
                .unwrap()
                .join("\n");
            assert!(
                plan.contains("Bitmap Index Scan on task_metrics_y2025m03_timestamp_idx"),
                "{shape:?}: {plan}"
            );
        }
        // A day is a twentieth of the data: its pages and the two ranges
        // of 32 pages it falls in, far less than the month's (unsummarized
        // ranges would all be read).
        assert!(read * 2 < pages, "read {read} of {pages} pages: {text}");
    }

    /// A partition dropped by another handle (another host's retention)
    /// is made again when this one stores into its month.
    #[test]
    fn a_partition_dropped_elsewhere_is_made_again() {
        let db = common::server::database();
        let here = MetricsStorage::open(&db.url).unwrap();
        let elsewhere = MetricsStorage::open(&db.url).unwrap();
        let old = swarm_metrics::now() - chrono::Duration::days(200);
        let task = |i: u32| TaskMetric::new(format!("t{i}"), "a", 1, TaskResult::Success).at(old);
        assert!(here.store_task_metric(&task(0)).unwrap());
        assert_eq!(elsewhere.cleanup_old_metrics(100).unwrap().task_metrics, 1);
        assert!(here.store_task_metric(&task(1)).unwrap());
        assert_eq!(here.store_task_metrics(&[task(2), task(3)]).unwrap(), 2);
        assert_eq!(elsewhere.success_rate(&Filter::new()).unwrap().total, 3);
    }

    #[test]
    fn many_threads_and_partitions_lose_nothing() {
        let db = common::server::database();
        let store = MetricsStorage::open(&db.url).unwrap();
        let base = swarm_metrics::now() - chrono::Duration::days(100);
        std::thread::scope(|s| {
            for w in 0..8u32 {
                let store = &store;
                s.spawn(move || {
                    // Tasks over four months, so that threads create the
                    // same partitions at once.
                    let tasks: Vec<_> = (0..400u32)
                        .map(|i| {
                            TaskMetric::new(
                                format!("w{w}-{i}"),
                                format!("a{w}"),
                                10,
                                TaskResult::Success,
                            )
                            .at(base + chrono::Duration::hours(i64::from(i) * 6))
                        })
                        .collect();
                    for (n, chunk) in tasks.chunks(50).enumerate() {
                        if n % 2 == 0 {
                            assert_eq!(store.store_task_metrics(chunk).unwrap(), chunk.len());
                        } else {
                            for t in chunk {
                                assert!(store.store_task_metric(t).unwrap());
                            }
                        }
                    }
                    // Everything again: all retries.
                    assert_eq!(store.store_task_metrics(&tasks).unwrap(), 0);
                });
            }
        });
        assert_eq!(store.success_rate(&Filter::new()).unwrap().total, 3_200);
        let a3 = store
            .get_task_metrics(&Filter::new().agent("a3"), 1_000)
            .unwrap();
        assert_eq!(a3.len(), 400);
    }
}

/// Without the feature, a PostgreSQL URL is refused, not taken for a file
/// name.
#[cfg(not(feature = "postgres"))]
#[test]
fn a_server_url_without_the_feature_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let err = swarm_metrics::MetricsStorage::open("postgres://me@localhost/metrics").unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    assert!(err.to_string().contains("postgres"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file was made"
    );
}
