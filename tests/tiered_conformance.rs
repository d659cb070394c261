//! Tiered retention on every backend: the same metrics, folded by the same
//! policy, leave the same rollups and give the same answers as SQLite's,
//! and the answers that rollups keep whole (counts, sums, extremes,
//! success rates) are the ones given before the fold.
//!
//! Built without the `postgres` feature, SQLite is the only backend: the
//! comparisons then compare nothing, and only check that SQLite gives
//! every answer.

mod common;

use chrono::{DateTime, Duration, DurationRound, Utc};
use common::server::{stores, TestStore};
use swarm_metrics::{
    AgentMetric, AggregationType, EmptyBuckets, Filter, GroupBy, Measure, MetricKind, MetricType,
    Order, RankBy, RetentionPolicy, SwarmMetric, TaskColumn, TaskMetric, TaskResult, TimeRange,
};

/// Tasks, agent metrics and swarm metrics every 40 minutes over the last
/// 100 days, so that folds cross months: several partitions on a server
/// lie wholly before the raw horizon, one is cut by it.
fn records(now: DateTime<Utc>) -> Records {
    let steps = 100 * 24 * 60 / 40;
    let at = |i: i64| now - Duration::minutes(40 * i) - Duration::seconds(i % 37);
    let tasks = (0..steps)
        .map(|i| {
            let result = TaskResult::ALL[(i * 7 % 11 % 4) as usize];
            let task = TaskMetric::new(
                format!("t{i}"),
                format!("agent-{}", i % 5),
                (100 + i * 37 % 900) as u64,
                result,
            )
            .tokens((i * 13 % 700) as u64)
            .files((i % 4) as u64)
            .at(at(i));
            if i % 3 == 0 {
                task
            } else {
                task.swarm(format!("swarm-{}", i % 2))
            }
        })
        .collect();
    let agent_types = [MetricType::AgentDuration, MetricType::AgentThroughput];
    let agents = (0..steps)
        .map(|i| {
            AgentMetric::new(
                format!("agent-{}", i % 3),
                agent_types[(i % 2) as usize],
                (i * 17 % 1000) as f64 / 8.0,
            )
            .at(at(i))
        })
        .collect();
    let swarms = (0..steps / 2)
        .map(|i| {
            SwarmMetric::new(
                format!("swarm-{}", i % 2),
                MetricType::SwarmThroughput,
                (i * 29 % 500) as f64 / 4.0,
            )
            .at(at(2 * i))
        })
        .collect();
    (tasks, agents, swarms)
}

/// The three kinds of [`records`].
type Records = (Vec<TaskMetric>, Vec<AgentMetric>, Vec<SwarmMetric>);

/// Stores every record of `records` in `store`.
fn store_records(store: &swarm_metrics::MetricsStorage, (tasks, agents, swarms): &Records) {
    store.store_task_metrics(tasks).unwrap();
    store.store_agent_metrics(agents).unwrap();
    store.store_swarm_metrics(swarms).unwrap();
}

/// What a store answers, for comparing backends: exact figures (to the
/// bit) and rounded ones (averages and deviations, to 1e-12).
#[derive(Debug, Default)]
struct Answers {
    exact: Vec<String>,
    rounded: Vec<(String, u64, Option<f64>)>,
}

impl Answers {
    fn exact(&mut self, what: impl std::fmt::Debug) {
        self.exact.push(format!("{what:?}"));
    }
}

/// Filters over the whole span, each agent and swarm, and ranges aligned
/// to days (which rollups answer exactly) and not.
fn filters(now: DateTime<Utc>) -> Vec<Filter> {
    let day = now.duration_trunc(Duration::days(1)).unwrap();
    let range = |from: i64, to: i64| {
        TimeRange::new(
            day - Duration::days(from),
            day - Duration::days(to) - Duration::microseconds(1),
        )
        .unwrap()
    };
    vec![
        Filter::new(),
        Filter::new().agent("agent-1"),
        Filter::new().swarm("swarm-0"),
        Filter::new().result(TaskResult::Failure),
        Filter::new().range(range(60, 20)),
        Filter::new().agent("agent-3").range(range(90, 2)),
        Filter::new().range(TimeRange::last(Duration::days(3)).unwrap()),
    ]
}

fn answers(store: &TestStore, now: DateTime<Utc>) -> Answers {
    let s = &store.store;
    let mut a = Answers::default();
    for f in filters(now) {
        a.exact(s.success_rate(&f).unwrap());
        for group_by in [GroupBy::Agent, GroupBy::Swarm, GroupBy::Result] {
            a.exact(s.success_rate_by(group_by, &f).unwrap());
            a.exact(
                s.aggregate_by(MetricKind::Task, AggregationType::Sum, group_by, &f)
                    .unwrap(),
            );
            for g in s
                .aggregate_by(MetricKind::Task, AggregationType::Stddev, group_by, &f)
                .unwrap()
            {
                a.rounded
                    .push((format!("{:?}", g.key), g.value.count, g.value.value));
            }
            a.exact(
                s.percentile_by(MetricKind::Task, 0.9, group_by, &f)
                    .unwrap(),
            );
        }
        for column in [TaskColumn::Duration, TaskColumn::Tokens] {
            let f = f.clone().column(column);
            for aggregation in AggregationType::ALL {
                let got = s
                    .aggregate_metrics(MetricKind::Task, *aggregation, &f)
                    .unwrap();
                match aggregation {
                    AggregationType::Avg | AggregationType::Stddev => {
                        a.rounded
                            .push((format!("{aggregation:?}"), got.count, got.value))
                    }
                    _ => a.exact(got),
                }
            }
            a.exact(
                s.percentiles(MetricKind::Task, &[0.0, 0.5, 0.95, 1.0], &f)
                    .unwrap(),
            );
        }
        for measure in [
            Measure::SuccessRate,
            Measure::Aggregate(AggregationType::Sum),
            Measure::Percentile(0.5),
        ] {
            a.exact(
                s.series(
                    MetricKind::Task,
                    measure,
                    Duration::days(7),
                    &f,
                    EmptyBuckets::Skip,
                )
                .unwrap(),
            );
        }
        a.exact(s.get_task_metrics(&f, 50).unwrap());
    }
    for by in [RankBy::SuccessRate, RankBy::AvgDuration, RankBy::AvgTokens] {
        a.exact(
            s.rank_agents(by, Order::BestFirst, 5, 1, &Filter::new())
                .unwrap(),
        );
    }
    let summary = s.summary(&Filter::new()).unwrap();
    a.exact((summary.tasks, summary.success_rate));
    for kind in [MetricKind::Agent, MetricKind::Swarm] {
        for f in [
            Filter::new(),
            Filter::new().range(filters(now)[4].time_range.unwrap()),
        ] {
            for aggregation in [AggregationType::Count, AggregationType::Max] {
                a.exact(s.aggregate_metrics(kind, aggregation, &f).unwrap());
            }
            let avg = s.aggregate_metrics(kind, AggregationType::Avg, &f).unwrap();
            a.rounded
                .push((format!("{kind} avg"), avg.count, avg.value));
            a.exact(s.percentile(kind, 0.5, &f).unwrap());
            a.exact(
                s.aggregate_by(kind, AggregationType::Min, GroupBy::MetricType, &f)
                    .unwrap(),
            );
        }
    }
    let stats = s.stats().unwrap();
    for table in [
        &stats.task_metrics,
        &stats.agent_metrics,
        &stats.swarm_metrics,
    ] {
        a.exact((table.rows, table.hourly_rollups, table.daily_rollups));
    }
    a
}

fn assert_same(reference: &Answers, other: &Answers, backend: &str) {
    assert_eq!(reference.exact.len(), other.exact.len());
    for (r, o) in reference.exact.iter().zip(&other.exact) {
        assert_eq!(r, o, "{backend}");
    }
    assert_eq!(reference.rounded.len(), other.rounded.len());
    for (r, o) in reference.rounded.iter().zip(&other.rounded) {
        assert_eq!((&r.0, r.1), (&o.0, o.1), "{backend}");
        match (r.2, o.2) {
            (Some(x), Some(y)) => assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(1.0),
                "{backend}: {} {x} against {y}",
                r.0
            ),
            (x, y) => assert_eq!(x, y, "{backend}: {}", r.0),
        }
    }
}

#[test]
fn tiered_retention_folds_and_answers_alike() {
    let now = swarm_metrics::now();
    let records = records(now);
    let policy = RetentionPolicy {
        raw: Some(Duration::days(7)),
        hourly: Some(Duration::days(30)),
        daily: Some(Duration::days(80)),
        chunk_rows: 300,
    };
    let mut reference: Option<(Answers, Vec<u64>)> = None;
    for store in stores() {
        let s = &store.store;
        store_records(s, &records);
        let whole = |s: &swarm_metrics::MetricsStorage| {
            let f = Filter::new();
            (
                s.success_rate(&f).unwrap(),
                s.aggregate_metrics(MetricKind::Task, AggregationType::Sum, &f)
                    .unwrap(),
                s.aggregate_metrics(MetricKind::Agent, AggregationType::Max, &f)
                    .unwrap(),
            )
        };
        let before = whole(s);

        // A bounded run stops part way and says so; the next one goes on.
        let first = s.apply_retention_steps(&policy, 2).unwrap();
        assert!(!first.finished, "{}: {first:?}", store.backend);
        assert!(first.raw_folded > 0, "{}", store.backend);
        let rest = s.apply_retention(&policy).unwrap();
        assert!(rest.finished, "{}", store.backend);
        let again = s.apply_retention(&policy).unwrap();
        assert_eq!(
            again.raw_folded + again.hourly_folded,
            0,
            "{}",
            store.backend
        );

        // Nothing raw is left before the raw horizon, no hourly rollup
        // before the hourly one.
        let horizon = |days| TimeRange::new(now - Duration::days(400), now - Duration::days(days));
        let old = Filter::new().range(horizon(8).unwrap());
        assert!(
            s.get_task_metrics(&old, 1).unwrap().is_empty(),
            "{}",
            store.backend
        );
        let stats = s.stats().unwrap();
        assert!(stats.task_metrics.hourly_rollups > 0, "{}", store.backend);
        assert!(stats.task_metrics.daily_rollups > 0, "{}", store.backend);

        // What rollups keep whole is what was there before the fold, but
        // the daily rollups dropped past 80 days.
        let after = whole(s);
        assert!(after.0.total < before.0.total, "{}", store.backend);
        let kept = Filter::new().range(horizon(0).unwrap());
        let kept_before = records
            .0
            .iter()
            .filter(|t| {
                let day = t.timestamp.duration_trunc(Duration::days(1)).unwrap();
                day >= (now - Duration::days(80))
                    .duration_trunc(Duration::days(1))
                    .unwrap()
            })
            .count() as u64;
        assert_eq!(
            s.success_rate(&kept).unwrap().total,
            kept_before,
            "{}",
            store.backend
        );

        // A bounded run's chunks differ (a server folds a month's
        // partition as one), what the runs did in all does not.
        let reports = vec![
            first.raw_folded + rest.raw_folded,
            first.hourly_folded + rest.hourly_folded,
            first.daily_dropped + rest.daily_dropped,
            first.task_metrics.raw_folded + rest.task_metrics.raw_folded,
            first.agent_metrics.hourly_folded + rest.agent_metrics.hourly_folded,
        ];
        let answers = answers(&store, now);
        match &reference {
            None => reference = Some((answers, reports)),
            Some((reference, reference_reports)) => {
                assert_same(reference, &answers, store.backend);
                assert_eq!(reference_reports, &reports, "{}: reports", store.backend);
            }
        }
    }
}

#[test]
fn cleanup_takes_rollups_alike() {
    let now = swarm_metrics::now();
    let records = records(now);
    let policy = RetentionPolicy {
        raw: Some(Duration::days(3)),
        hourly: Some(Duration::days(20)),
        daily: None,
        chunk_rows: 5_000,
    };
    let mut reference: Option<(Answers, String)> = None;
    for store in stores() {
        let s = &store.store;
        store_records(s, &records);
        assert!(s.apply_retention(&policy).unwrap().finished);
        let counted = s.count_old_metrics(45).unwrap();
        let report = s.cleanup_old_metrics(45).unwrap();
        assert_eq!(counted, report, "{}", store.backend);
        assert!(report.rollups > 0, "{}: {report:?}", store.backend);
        let answers = answers(&store, now);
        match &reference {
            None => reference = Some((answers, format!("{report:?}"))),
            Some((reference, reference_report)) => {
                assert_same(reference, &answers, store.backend);
                assert_eq!(
                    reference_report,
                    &format!("{report:?}"),
                    "{}",
                    store.backend
                );
            }
        }
    }
}

/// A store with rollups copies into every backend with them: the target
/// answers as the source does, and a copy run again (as after an
/// interruption) adds nothing.
#[test]
fn copies_carry_rollups_between_backends() {
    let now = swarm_metrics::now();
    let records = records(now);
    let policy = RetentionPolicy {
        raw: Some(Duration::days(7)),
        hourly: Some(Duration::days(30)),
        daily: None,
        chunk_rows: 5_000,
    };
    for source in stores() {
        let s = &source.store;
        store_records(s, &records);
        assert!(s.apply_retention(&policy).unwrap().finished);
        let expected = answers(&source, now);
        let stats = s.stats().unwrap();
        let rollups: u64 = [stats.task_metrics, stats.agent_metrics, stats.swarm_metrics]
            .iter()
            .map(|t| t.hourly_rollups + t.daily_rollups)
            .sum();
        assert!(rollups > 0);
        let raw = s.get_task_metrics(&Filter::new(), 100_000).unwrap();
        for target in stores() {
            let what = format!("{} to {}", source.backend, target.backend);
            // An earlier copy stopped after 100 raw tasks.
            target.store.store_task_metrics(&raw[..100]).unwrap();
            let report = s.copy_to(&target.store).unwrap();
            assert_eq!(report.tasks.duplicates, 100, "{what}");
            assert_eq!(report.tasks.stored, raw.len() as u64 - 100, "{what}");
            assert_eq!(
                (report.rollups.stored, report.rollups.duplicates),
                (rollups, 0),
                "{what}"
            );
            assert_same(&expected, &answers(&target, now), &what);
            let again = s.copy_to(&target.store).unwrap();
            assert_eq!(again.stored() + again.rollups.stored, 0, "{what}");
            assert_eq!(again.rollups.duplicates, rollups, "{what}");
            assert_same(&expected, &answers(&target, now), &what);
        }
    }
}

/// A rollup whose data cannot be read stops a copy with a typed error
/// before its chunk is written: the target gets none of the rollups.
#[test]
fn a_damaged_rollup_stops_a_copy_before_it_is_written() {
    let source = stores().remove(0);
    let old = swarm_metrics::now() - Duration::days(30);
    let tasks: Vec<TaskMetric> = (0..50)
        .map(|i| {
            TaskMetric::new(
                format!("t{i}"),
                format!("a{}", i % 2),
                5,
                TaskResult::Success,
            )
            .at(old - Duration::hours(i))
        })
        .collect();
    source.store.store_task_metrics(&tasks).unwrap();
    source.store.apply_retention(&Default::default()).unwrap();
    rusqlite::Connection::open(&source.location)
        .unwrap()
        .execute(
            "UPDATE task_summaries SET data = x'ff00' \
             WHERE bucket = (SELECT max(bucket) FROM task_summaries)",
            [],
        )
        .unwrap();
    for target in stores() {
        let err = source.store.copy_to(&target.store).unwrap_err();
        assert!(
            matches!(err, swarm_metrics::Error::CorruptRow { .. }),
            "{}: {err}",
            target.backend
        );
        let stats = target.store.stats().unwrap();
        assert_eq!(stats.task_metrics.hourly_rollups, 0, "{}", target.backend);
    }
}

/// `swarm-metrics copy` moves a file with rollups to every backend and
/// back, says how many rollups it copied, and adds nothing when run again.
#[test]
fn the_command_line_copies_rollups_there_and_back() {
    let now = swarm_metrics::now();
    let records = records(now);
    let source = stores().remove(0);
    store_records(&source.store, &records);
    assert!(
        source
            .store
            .apply_retention(&Default::default())
            .unwrap()
            .finished
    );
    let expected = answers(&source, now);
    let copy = |from: &str, to: &str, json: bool| -> String {
        let mut cmd = assert_cmd::Command::cargo_bin("swarm-metrics").unwrap();
        if json {
            cmd.arg("--json");
        }
        let out = cmd
            .args(["copy", "--from", from, "--to", to])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for target in stores() {
        let report: serde_json::Value =
            serde_json::from_str(&copy(&source.location, &target.location, true)).unwrap();
        let rollups = report["rollups"]["stored"].as_u64().unwrap();
        assert!(rollups > 0, "{}: {report}", target.backend);
        assert_eq!(report["rollups"]["duplicates"], 0, "{}", target.backend);
        let again = copy(&source.location, &target.location, false);
        assert!(
            again.contains(&format!("copied 0 rollups ({rollups} were there already)")),
            "{}: {again}",
            target.backend
        );
        assert_same(&expected, &answers(&target, now), target.backend);
        // And back into a fresh file.
        let back = stores().remove(0);
        copy(&target.location, &back.location, true);
        assert_same(&expected, &answers(&back, now), "and back");
    }
}
