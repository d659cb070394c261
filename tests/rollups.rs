//! Tiered retention keeps the answers: for random data and random
//! horizons, every aggregate over day-aligned ranges is the same before and
//! after `apply_retention` (exactly for counts, sums, min, max and success
//! rates; to rounding for averages and standard deviations; within 1% for
//! percentiles), also when a run is interrupted and repeated. Daily series
//! summaries and agent rankings, which combine raw rows and rollups too,
//! likewise. Every test but the file's vacuum runs on every backend the
//! build has.

mod common;

use chrono::{DateTime, Duration, DurationRound, Utc};
use common::server::stores;
use proptest::prelude::*;
use swarm_metrics::{
    AgentMetric, Aggregate, AggregationType, BucketValue, EmptyBuckets, Filter, GroupBy, Measure,
    MetricKind, MetricType, MetricsStorage, Order, RankBy, RetentionPolicy, SuccessRate,
    SwarmMetric, TaskColumn, TaskMetric, TaskResult, TimeRange,
};

#[derive(Debug, Clone)]
struct Answers {
    aggregates: Vec<Aggregate>,
    rates: Vec<SuccessRate>,
    percentiles: Vec<Option<f64>>,
    /// Tasks, tokens and files changed of each summary.
    totals: Vec<(u64, u64, u64)>,
    /// Agent rankings: each agent with its tasks, and its score.
    ranked: Vec<(String, u64)>,
    scores: Vec<f64>,
}

fn filters(now: DateTime<Utc>, days: &[(i64, i64)]) -> Vec<Filter> {
    let today = now.duration_trunc(Duration::days(1)).unwrap();
    let mut ranges: Vec<Option<TimeRange>> = vec![None];
    for &(a, b) in days {
        let (a, b) = (a.max(b), a.min(b));
        let start = today - Duration::days(a);
        // Up to the end of day b (b = 0: up to the end of today).
        let end = today - Duration::days(b) + Duration::days(1) - Duration::microseconds(1);
        ranges.push(Some(TimeRange::new(start, end).unwrap()));
    }
    let mut out = Vec::new();
    for range in ranges {
        for (agent, swarm, result) in [
            (None, None, None),
            (Some("agent-1"), None, None),
            (None, Some("swarm-0"), None),
            (None, None, Some(TaskResult::Failure)),
            (Some("agent-2"), Some("swarm-1"), None),
        ] {
            out.push(Filter {
                agent_id: agent.map(str::to_owned),
                swarm_id: swarm.map(str::to_owned),
                result,
                time_range: range,
                ..Filter::default()
            });
        }
    }
    out
}

fn answers(store: &MetricsStorage, filters: &[Filter]) -> Answers {
    let mut a = Answers {
        aggregates: Vec::new(),
        rates: Vec::new(),
        percentiles: Vec::new(),
        totals: Vec::new(),
        ranked: Vec::new(),
        scores: Vec::new(),
    };
    for f in filters {
        for by in [RankBy::SuccessRate, RankBy::AvgDuration, RankBy::AvgTokens] {
            for r in store.rank_agents(by, Order::BestFirst, 100, 1, f).unwrap() {
                a.ranked.push((r.agent_id, r.tasks));
                a.scores.push(r.score);
            }
        }
        let summary = store.summary(f).unwrap();
        a.rates.push(summary.success_rate);
        a.totals.push((
            summary.tasks,
            summary.tokens_total,
            summary.files_changed_total,
        ));
        let d = summary.duration_ms;
        a.percentiles.extend([d.avg, d.p50, d.p95, d.p99, d.max]);
        let daily = |measure| {
            store
                .series(
                    MetricKind::Task,
                    measure,
                    Duration::days(1),
                    f,
                    EmptyBuckets::Skip,
                )
                .unwrap()
        };
        for bucket in daily(Measure::SuccessRate) {
            match bucket.value {
                BucketValue::SuccessRate(rate) => a.rates.push(rate),
                other => panic!("{other:?}"),
            }
        }
        for agg in [
            AggregationType::Sum,
            AggregationType::Max,
            AggregationType::Avg,
        ] {
            for bucket in daily(Measure::Aggregate(agg)) {
                match bucket.value {
                    BucketValue::Aggregate(value) => a.aggregates.push(value),
                    other => panic!("{other:?}"),
                }
            }
        }
        for bucket in daily(Measure::Percentile(0.9)) {
            match bucket.value {
                BucketValue::Percentile(p) => a.percentiles.push(p.value),
                other => panic!("{other:?}"),
            }
        }
        for column in [TaskColumn::Duration, TaskColumn::Tokens] {
            for agg in AggregationType::ALL {
                a.aggregates.push(
                    store
                        .aggregate_metrics(MetricKind::Task, *agg, &f.clone().column(column))
                        .unwrap(),
                );
            }
            for q in [0.5, 0.95] {
                a.percentiles.push(
                    store
                        .percentile(MetricKind::Task, q, &f.clone().column(column))
                        .unwrap()
                        .value,
                );
            }
        }
        a.rates.push(store.success_rate(f).unwrap());
        for group_by in [GroupBy::Agent, GroupBy::Swarm, GroupBy::Result] {
            for g in store.success_rate_by(group_by, f).unwrap() {
                a.rates.push(g.value);
            }
            for agg in [
                AggregationType::Count,
                AggregationType::Sum,
                AggregationType::Max,
                AggregationType::Stddev,
            ] {
                for g in store
                    .aggregate_by(MetricKind::Task, agg, group_by, f)
                    .unwrap()
                {
                    a.aggregates.push(g.value);
                }
            }
        }
        let entity = Filter {
            agent_id: f.agent_id.clone(),
            time_range: f.time_range,
            ..Filter::default()
        };
        for agg in AggregationType::ALL {
            a.aggregates.push(
                store
                    .aggregate_metrics(MetricKind::Agent, *agg, &entity)
                    .unwrap(),
            );
        }
        a.percentiles.push(
            store
                .percentile(MetricKind::Agent, 0.9, &entity)
                .unwrap()
                .value,
        );
    }
    a
}

fn assert_same(before: &Answers, after: &Answers, when: &str) {
    assert_eq!(before.rates, after.rates, "{when}: success rates");
    assert_eq!(before.totals, after.totals, "{when}: summary totals");
    assert_eq!(before.ranked, after.ranked, "{when}: rankings");
    for (b, a) in before.scores.iter().zip(&after.scores) {
        assert!(
            (b - a).abs() <= 1e-9 * b.abs().max(1.0),
            "{when}: score {b} vs {a}"
        );
    }
    assert_eq!(before.aggregates.len(), after.aggregates.len(), "{when}");
    assert_eq!(before.percentiles.len(), after.percentiles.len(), "{when}");
    for (b, a) in before.aggregates.iter().zip(&after.aggregates) {
        assert_eq!(
            (b.aggregation, b.count),
            (a.aggregation, a.count),
            "{when}: {b:?} vs {a:?}"
        );
        match (b.value, a.value) {
            (None, None) => {}
            (Some(x), Some(y)) => {
                let exact = matches!(
                    b.aggregation,
                    AggregationType::Count | AggregationType::Min | AggregationType::Max
                ) || (b.aggregation == AggregationType::Sum && b.metric_type.is_some());
                if exact {
                    assert_eq!(x, y, "{when}: {b:?} vs {a:?}");
                } else {
                    assert!(
                        (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                        "{when}: {b:?} vs {a:?}"
                    );
                }
            }
            _ => panic!("{when}: {b:?} vs {a:?}"),
        }
    }
    for (b, a) in before.percentiles.iter().zip(&after.percentiles) {
        match (b, a) {
            (None, None) => {}
            (Some(x), Some(y)) => assert!(
                (x - y).abs() <= 0.01 * x.abs() + 1e-9,
                "{when}: percentile {x} vs {y}"
            ),
            _ => panic!("{when}: percentile {b:?} vs {a:?}"),
        }
    }
}

fn policy_strategy() -> impl Strategy<Value = RetentionPolicy> {
    (
        1..15i64,
        prop::option::of(0..20i64),
        any::<bool>(),
        1..40usize,
    )
        .prop_map(|(raw, hourly_extra, drop_far, chunk)| {
            let hourly = hourly_extra.map(|extra| Duration::days(raw + extra));
            RetentionPolicy {
                raw: Some(Duration::days(raw)),
                hourly,
                // Dropping only what lies beyond all data keeps every answer.
                daily: (drop_far && hourly.is_some()).then(|| Duration::days(400)),
                chunk_rows: chunk,
            }
        })
}

/// One random case: tasks `(agent, swarm, result, duration, tokens, hours
/// ago, minutes)`, agent metrics `(agent, value, hours ago)`, the day
/// ranges asked about, the policy, and after how many chunks the first
/// run stops.
type Case = (
    Vec<(u32, u32, usize, u64, u64, i64, i64)>,
    Vec<(u32, f64, i64)>,
    Vec<(i64, i64)>,
    RetentionPolicy,
    usize,
);

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(
            (
                0..4u32,
                0..2u32,
                0..4usize,
                0..5_000u64,
                0..3_000u64,
                0..(40 * 24i64),
                0..60i64,
            ),
            0..120,
        ),
        prop::collection::vec((0..4u32, 0.0..100.0f64, 0..(40 * 24i64)), 0..40),
        prop::collection::vec((0..42i64, 0..42i64), 1..4),
        policy_strategy(),
        1..6usize,
    )
}

/// Stores the case in `store`, and checks that every answer is the same
/// after an interrupted run of retention, after the full run, and after
/// a second, and that no raw row is left past the raw horizon.
fn answers_survive_retention(store: &MetricsStorage, case: &Case) {
    let (tasks, metrics, days, policy, interrupt_after) = case;
    let (policy, interrupt_after) = (*policy, *interrupt_after);
    let now = swarm_metrics::now();
    let batch: Vec<TaskMetric> = tasks
        .iter()
        .enumerate()
        .map(
            |(i, (agent, swarm, result, duration, tokens, hours, minutes))| {
                TaskMetric::new(
                    format!("t{i}"),
                    format!("agent-{agent}"),
                    *duration,
                    TaskResult::ALL[*result],
                )
                .swarm(format!("swarm-{swarm}"))
                .tokens(*tokens)
                .at(now - Duration::hours(*hours) - Duration::minutes(*minutes))
            },
        )
        .collect();
    store.store_task_metrics(&batch).unwrap();
    let agent_metrics: Vec<AgentMetric> = metrics
        .iter()
        .map(|(agent, value, hours)| {
            AgentMetric::new(
                format!("agent-{agent}"),
                MetricType::AgentThroughput,
                *value,
            )
            .at(now - Duration::hours(*hours))
        })
        .collect();
    store.store_agent_metrics(&agent_metrics).unwrap();

    let filters = filters(now, days);
    let before = answers(store, &filters);

    let partial = store
        .apply_retention_steps(&policy, interrupt_after)
        .unwrap();
    assert_same(
        &before,
        &answers(store, &filters),
        "after an interrupted run",
    );
    // A run that stopped early did something first.
    assert!(partial.finished || partial.raw_folded + partial.hourly_folded > 0);
    let report = store.apply_retention(&policy).unwrap();
    assert!(report.finished);
    assert_same(&before, &answers(store, &filters), "after the full run");
    // Running again changes nothing.
    let again = store.apply_retention(&policy).unwrap();
    assert_eq!(again.raw_folded + again.hourly_folded, 0);
    assert_same(&before, &answers(store, &filters), "after a second run");
    // Raw rows older than the raw horizon are gone.
    let old = Filter::new().range(
        TimeRange::new(
            DateTime::<Utc>::MIN_UTC,
            now - policy.raw.unwrap() - Duration::hours(1),
        )
        .unwrap(),
    );
    assert!(store.get_task_metrics(&old, 10_000).unwrap().is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn answers_survive_retention_even_when_interrupted(case in case_strategy()) {
        let store = MetricsStorage::temporary().unwrap();
        answers_survive_retention(&store, &case);
    }
}

// The same on a server, fewer cases: each reads a few thousand answers
// over the network.
#[cfg(feature = "postgres")]
proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn answers_survive_retention_on_a_server(case in case_strategy()) {
        for backend in stores().into_iter().skip(1) {
            answers_survive_retention(&backend.store, &case);
        }
    }
}

/// Rollups keep the exact values of up to 512 metrics a bucket, and
/// percentiles over them stay exact; past that they keep sketches, and
/// percentiles say they are approximate (within 1%).
#[test]
fn percentiles_from_rollups_are_exact_while_buckets_are_small() {
    for ((tasks_per_hour, approximate), backend) in [(500, false), (600, true)]
        .into_iter()
        .flat_map(|case| stores().into_iter().map(move |b| (case, b)))
    {
        let store = &backend.store;
        let hour = (swarm_metrics::now() - Duration::days(10))
            .duration_trunc(Duration::hours(1))
            .unwrap();
        let tasks: Vec<_> = (0..tasks_per_hour)
            .map(|i| {
                TaskMetric::new(
                    format!("t{i}"),
                    "a",
                    100 + i * i,
                    TaskResult::ALL[i as usize % 4],
                )
                .at(hour + Duration::seconds(i as i64))
            })
            .collect();
        store.store_task_metrics(&tasks).unwrap();
        let before = store
            .percentiles(MetricKind::Task, &[0.5, 0.95], &Filter::new())
            .unwrap();
        assert!(!before[0].approximate);
        let report = store.apply_retention(&RetentionPolicy::default()).unwrap();
        assert_eq!(report.raw_folded, tasks_per_hour);
        let after = store
            .percentiles(MetricKind::Task, &[0.5, 0.95], &Filter::new())
            .unwrap();
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(a.approximate, approximate, "{tasks_per_hour} tasks");
            assert_eq!(a.count, tasks_per_hour);
            let (x, y) = (b.value.unwrap(), a.value.unwrap());
            if approximate {
                assert!((x - y).abs() <= 0.01 * x, "{x} vs {y}");
            } else {
                assert_eq!(x, y);
            }
        }
        // One result's percentile reads that result's values alone.
        let failures = Filter::new().result(TaskResult::Failure);
        let b = store.percentile(MetricKind::Task, 0.5, &failures).unwrap();
        assert_eq!(b.count, tasks_per_hour / 4);
        // The rows are gone, the answers are not.
        assert!(store
            .get_task_metrics(&Filter::new(), 10)
            .unwrap()
            .is_empty());
        assert_eq!(
            store.success_rate(&Filter::new()).unwrap().total,
            tasks_per_hour
        );
    }
}

#[test]
fn bad_policies_are_refused() {
    for backend in stores() {
        bad_policies_are_refused_by(&backend.store);
    }
}

fn bad_policies_are_refused_by(store: &MetricsStorage) {
    let bad = RetentionPolicy {
        raw: Some(Duration::days(10)),
        hourly: Some(Duration::days(5)),
        ..RetentionPolicy::default()
    };
    assert!(store.apply_retention(&bad).unwrap_err().is_invalid_input());
    let bad = RetentionPolicy {
        chunk_rows: 0,
        ..RetentionPolicy::default()
    };
    assert!(store.apply_retention(&bad).unwrap_err().is_invalid_input());
    assert!(store
        .apply_retention_steps(&RetentionPolicy::default(), 0)
        .unwrap_err()
        .is_invalid_input());
}

#[test]
fn incremental_vacuum_gives_space_back_in_steps() {
    let store = MetricsStorage::temporary().unwrap();
    let old = swarm_metrics::now() - Duration::days(60);
    let tasks: Vec<_> = (0..20_000)
        .map(|i| {
            TaskMetric::new(
                format!("task-{i:08}"),
                format!("agent-{}", i % 50),
                i,
                TaskResult::Success,
            )
            .at(old)
        })
        .collect();
    store.store_task_metrics(&tasks).unwrap();
    store.cleanup_old_metrics(30).unwrap();
    let first = store.incremental_vacuum(Some(10)).unwrap();
    assert_eq!(
        first.bytes_before - first.bytes_after,
        10 * 4096,
        "{first:?}"
    );
    let rest = store.incremental_vacuum(None).unwrap();
    assert!(rest.bytes_after < rest.bytes_before / 4, "{rest:?}");
    let full = store.vacuum().unwrap();
    assert!(full.bytes_after <= full.bytes_before);
    assert!(store
        .incremental_vacuum(Some(0))
        .unwrap_err()
        .is_invalid_input());
}

/// The retention report says what happened to each kind, and its totals
/// are their sums.
#[test]
fn the_retention_report_counts_each_kind() {
    for backend in stores() {
        the_retention_report_counts_each_kind_in(&backend.store);
    }
}

fn the_retention_report_counts_each_kind_in(store: &MetricsStorage) {
    // At the start of an hour, so that every kind's rows share one.
    let old = (Utc::now() - Duration::days(20))
        .duration_trunc(Duration::hours(1))
        .unwrap();
    let tasks: Vec<TaskMetric> = (0..30)
        .map(|i| {
            TaskMetric::new(format!("t{i}"), "a", 5, TaskResult::Success)
                .at(old + Duration::minutes(i))
        })
        .collect();
    store.store_task_metrics(&tasks).unwrap();
    let agents: Vec<AgentMetric> = (0..12)
        .map(|i| {
            AgentMetric::new("a", MetricType::AgentThroughput, i as f64)
                .at(old + Duration::minutes(i))
        })
        .collect();
    store.store_agent_metrics(&agents).unwrap();
    let swarms: Vec<SwarmMetric> = (0..5)
        .map(|i| {
            SwarmMetric::new("s", MetricType::SwarmHealth, i as f64).at(old + Duration::minutes(i))
        })
        .collect();
    store.store_swarm_metrics(&swarms).unwrap();
    let policy = RetentionPolicy {
        raw: Some(Duration::days(1)),
        hourly: Some(Duration::days(7)),
        ..RetentionPolicy::default()
    };
    let report = store.apply_retention(&policy).unwrap();
    let kinds = [
        report.task_metrics,
        report.agent_metrics,
        report.swarm_metrics,
    ];
    assert_eq!(kinds.map(|k| k.raw_folded), [30, 12, 5]);
    // Each kind's rows of that hour became one hourly rollup, folded into
    // one daily rollup in the same run.
    assert_eq!(kinds.map(|k| k.hourly_folded), [1, 1, 1]);
    assert_eq!(report.raw_folded, 47);
    assert_eq!(report.hourly_folded, 3);
    assert_eq!(report.daily_dropped, 0);
    assert!(report.finished);
}
