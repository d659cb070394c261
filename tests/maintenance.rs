//! Maintenance under live load: answers stay exact on every read while
//! retention folds rows into rollups, with and without writers; stepwise
//! retention makes progress and says when it is done; anything the store
//! accepts folds; cleanup leaves nothing older than its horizon. Every
//! test runs on every backend the build has.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Duration, DurationRound, Utc};
use common::server::stores;
use swarm_metrics::{
    AgentMetric, AggregationType, Filter, GroupBy, MetricKind, MetricType, MetricsStorage,
    RetentionPolicy, SuccessRate, SwarmMetric, TaskMetric, TaskResult, TimeRange, P95,
};

const AGENTS: u64 = 6;

/// `n` tasks from 9 to 20 days ago (all older than the raw horizon), task
/// `i` by agent `i % AGENTS`, with result `ALL[i % 4]` and duration `i`.
fn old_tasks(n: u64) -> Vec<TaskMetric> {
    let start = swarm_metrics::now() - Duration::days(20);
    (0..n)
        .map(|i| {
            TaskMetric::new(
                format!("old-{i}"),
                format!("old-agent-{}", i % AGENTS),
                i,
                TaskResult::ALL[(i % 4) as usize],
            )
            .swarm(format!("swarm-{}", i % 3))
            .tokens(i % 97)
            .at(start + Duration::seconds((i * 86_400 * 11 / n) as i64))
        })
        .collect()
}

/// Everything the readers check, read afresh.
#[derive(Debug, Clone, PartialEq)]
struct Answers {
    all: SuccessRate,
    by_agent: Vec<(Option<String>, u64, u64)>,
    one_agent: SuccessRate,
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    sum_by_agent: Vec<(Option<String>, u64, Option<f64>)>,
    p95_count: u64,
}

fn answers(store: &MetricsStorage, filter: &Filter) -> Answers {
    let agg = |a| {
        store
            .aggregate_metrics(MetricKind::Task, a, filter)
            .unwrap()
    };
    let sum = agg(AggregationType::Sum);
    Answers {
        all: store.success_rate(filter).unwrap(),
        by_agent: store
            .success_rate_by(GroupBy::Agent, filter)
            .unwrap()
            .into_iter()
            .map(|g| (g.key, g.value.success, g.value.total))
            .collect(),
        one_agent: store
            .success_rate(&Filter {
                agent_id: Some("old-agent-1".to_owned()),
                ..filter.clone()
            })
            .unwrap(),
        count: sum.count,
        sum: sum.value,
        min: agg(AggregationType::Min).value,
        max: agg(AggregationType::Max).value,
        sum_by_agent: store
            .aggregate_by(
                MetricKind::Task,
                AggregationType::Sum,
                GroupBy::Agent,
                filter,
            )
            .unwrap()
            .into_iter()
            .map(|g| (g.key, g.value.count, g.value.value))
            .collect(),
        p95_count: store
            .percentile(MetricKind::Task, P95, filter)
            .unwrap()
            .count,
    }
}

/// Runs retention in chunks of 40 rows while `readers` threads read
/// `answers` over the old agents' tasks and compare them with the answers
/// before retention: every read must be exactly the same. With `writers`,
/// threads store new tasks of other agents meanwhile, and the total over
/// everything must stay between the old tasks plus what the writers had
/// stored before the read and after it (each may have one store committed
/// but not yet returned).
fn retention_under_reads(readers: usize, writers: u64) {
    for backend in stores() {
        retention_under_reads_in(&backend.store, readers, writers);
    }
}

fn retention_under_reads_in(store: &MetricsStorage, readers: usize, writers: u64) {
    let old = old_tasks(6_000);
    store.store_task_metrics(&old).unwrap();
    let old_agents = Filter::new().range(
        TimeRange::new(
            DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
            swarm_metrics::now() - Duration::days(8),
        )
        .unwrap(),
    );
    // Old tasks all fall in whole hours before the range's end, so the
    // range covers each of their rollups whole.
    let before = answers(store, &Filter::new());
    assert_eq!(before.all.total, 6_000);
    assert_eq!(answers(store, &old_agents), before);

    let stored = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let policy = RetentionPolicy {
        chunk_rows: 40,
        ..RetentionPolicy::default()
    };
    let (report, reads) = std::thread::scope(|s| {
        for w in 0..writers {
            let (store, stored, done) = (store, &stored, &done);
            s.spawn(move || {
                let mut i = 0;
                while !done.load(Ordering::SeqCst) {
                    let task = TaskMetric::new(
                        format!("new-{w}-{i}"),
                        format!("new-{w}"),
                        1,
                        TaskResult::Success,
                    );
                    assert!(store.store_task_metric(&task).unwrap());
                    stored.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
            });
        }
        let reader_threads: Vec<_> = (0..readers)
            .map(|r| {
                let (store, stored, done, before) = (store, &stored, &done, &before);
                let old_agents = old_agents.clone();
                s.spawn(move || {
                    let mut reads = 0;
                    while !done.load(Ordering::SeqCst) {
                        if writers == 0 && r % 2 == 0 {
                            assert_eq!(&answers(store, &Filter::new()), before, "read {reads}");
                        } else {
                            assert_eq!(&answers(store, &old_agents), before, "read {reads}");
                        }
                        let new_before = stored.load(Ordering::SeqCst);
                        let all = store.success_rate(&Filter::new()).unwrap();
                        let new_after = stored.load(Ordering::SeqCst) + writers;
                        assert!(
                            (6_000 + new_before..=6_000 + new_after).contains(&all.total),
                            "total {} with {new_before}..{new_after} new",
                            all.total
                        );
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        let report = store.apply_retention(&policy).unwrap();
        // Let the readers see the finished state a while too.
        std::thread::sleep(std::time::Duration::from_millis(100));
        done.store(true, Ordering::SeqCst);
        let reads: u64 = reader_threads.into_iter().map(|t| t.join().unwrap()).sum();
        (report, reads)
    });
    assert!(report.finished);
    assert_eq!(report.raw_folded, 6_000);
    assert!(reads >= readers as u64, "{reads} reads");
    assert_eq!(answers(store, &old_agents), before);
    let all = store.success_rate(&Filter::new()).unwrap();
    assert_eq!(all.total, 6_000 + stored.load(Ordering::SeqCst));
}

#[test]
fn reads_stay_exact_while_retention_folds_in_small_chunks() {
    retention_under_reads(2, 0);
}

#[test]
fn reads_stay_exact_while_retention_folds_and_writers_store() {
    retention_under_reads(2, 2);
}

#[test]
fn stepwise_retention_makes_progress_and_says_when_it_is_done() {
    for backend in stores() {
        let rows_by_chunks = backend.backend == "SQLite";
        stepwise_retention_makes_progress_and_says_when_it_is_done_in(
            &backend.store,
            rows_by_chunks,
        );
    }
}

/// `rows_by_chunks`: the store folds every row in chunks of `chunk_rows`
/// (a server folds a month's partition wholly before the horizon as one).
fn stepwise_retention_makes_progress_and_says_when_it_is_done_in(
    store: &MetricsStorage,
    rows_by_chunks: bool,
) {
    let policy = RetentionPolicy {
        chunk_rows: 700,
        ..RetentionPolicy::default()
    };
    // Nothing to do: done at once, even with one chunk per call.
    let report = store.apply_retention_steps(&policy, 1).unwrap();
    assert!(report.finished);

    let old = swarm_metrics::now() - Duration::days(10);
    store.store_task_metrics(&old_tasks(2_000)).unwrap();
    let agents: Vec<_> = (0..600)
        .map(|i| AgentMetric::new("a", MetricType::AgentThroughput, i as f64).at(old))
        .collect();
    store.store_agent_metrics(&agents).unwrap();
    let swarms: Vec<_> = (0..300)
        .map(|i| SwarmMetric::new("s", MetricType::SwarmHealth, i as f64).at(old))
        .collect();
    store.store_swarm_metrics(&swarms).unwrap();

    // 2,000 tasks take 3 chunks, agents 1, swarms 1: five calls of one
    // chunk each, the fifth of which finds nothing left (fewer on a
    // server when a month's partition lies wholly before the horizon:
    // it goes as one chunk).
    let mut folded = 0;
    let mut calls = 0;
    loop {
        let report = store.apply_retention_steps(&policy, 1).unwrap();
        folded += report.raw_folded;
        calls += 1;
        assert!(calls <= 5, "still not finished after {calls} calls");
        if report.finished {
            break;
        }
        assert!(report.raw_folded > 0, "call {calls} made no progress");
    }
    if rows_by_chunks {
        assert_eq!(calls, 5);
    }
    assert_eq!(folded, 2_900);
    let stats = store.stats().unwrap();
    assert_eq!(
        (
            stats.task_metrics.rows,
            stats.agent_metrics.rows,
            stats.swarm_metrics.rows
        ),
        (0, 0, 0)
    );
    let values = store
        .aggregate_metrics(MetricKind::Agent, AggregationType::Sum, &Filter::new())
        .unwrap();
    assert_eq!((values.count, values.value), (600, Some(179_700.0)));
}

#[test]
fn the_largest_accepted_durations_fold_and_add_up_exactly() {
    for backend in stores() {
        the_largest_accepted_durations_fold_and_add_up_exactly_in(&backend.store);
    }
}

fn the_largest_accepted_durations_fold_and_add_up_exactly_in(store: &MetricsStorage) {
    let hour = (swarm_metrics::now() - Duration::days(10))
        .duration_trunc(Duration::hours(1))
        .unwrap();
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            TaskMetric::new(format!("t{i}"), "a", i64::MAX as u64, TaskResult::Success)
                .tokens(i64::MAX as u64)
                .at(hour + Duration::minutes(i))
        })
        .collect();
    store.store_task_metrics(&tasks).unwrap();
    let raw = store
        .aggregate_metrics(MetricKind::Task, AggregationType::Max, &Filter::new())
        .unwrap();
    let before = store.stats().unwrap().task_metrics;
    assert_eq!((before.rows, before.hourly_rollups), (3, 0));
    let report = store.apply_retention(&RetentionPolicy::default()).unwrap();
    assert_eq!(report.raw_folded, 3);
    // The stats count the tiers: one hourly rollup, starting at the hour.
    let hourly = store.stats().unwrap().task_metrics;
    assert_eq!(
        (hourly.rows, hourly.hourly_rollups, hourly.daily_rollups),
        (0, 1, 0)
    );
    assert_eq!(
        (hourly.oldest_rollup, hourly.oldest_data()),
        (Some(hour), Some(hour))
    );
    // Folding twice more (hourly into daily) keeps them exact as well.
    let daily = RetentionPolicy {
        raw: Some(Duration::days(1)),
        hourly: Some(Duration::days(2)),
        ..RetentionPolicy::default()
    };
    assert!(store.apply_retention(&daily).unwrap().hourly_folded > 0);
    let daily_stats = store.stats().unwrap().task_metrics;
    assert_eq!(
        (daily_stats.hourly_rollups, daily_stats.daily_rollups),
        (0, 1)
    );
    let day = hour.duration_trunc(Duration::days(1)).unwrap();
    assert_eq!(daily_stats.oldest_data(), Some(day));
    let agg = |a| {
        store
            .aggregate_metrics(MetricKind::Task, a, &Filter::new())
            .unwrap()
    };
    assert_eq!(agg(AggregationType::Max), raw);
    assert_eq!(agg(AggregationType::Count).count, 3);
    assert_eq!(agg(AggregationType::Sum).value, Some(3.0 * i64::MAX as f64));
    assert_eq!(agg(AggregationType::Avg).value, Some(i64::MAX as f64));
    assert_eq!(store.success_rate(&Filter::new()).unwrap().total, 3);
}

#[test]
fn cleanup_after_tiered_retention_leaves_nothing_older_than_its_horizon() {
    for backend in stores() {
        cleanup_after_tiered_retention_leaves_nothing_older_than_its_horizon_in(&backend.store);
    }
}

fn cleanup_after_tiered_retention_leaves_nothing_older_than_its_horizon_in(store: &MetricsStorage) {
    let now = swarm_metrics::now();
    // One task every 5 hours, at minute 30, over 100 days, none within two
    // hours of the 30-day horizon.
    let horizon = now - Duration::days(30);
    let first = (now - Duration::days(100))
        .duration_trunc(Duration::hours(1))
        .unwrap();
    let tasks: Vec<_> = (0..480)
        .map(|i| first + Duration::hours(5 * i) + Duration::minutes(30))
        .filter(|t| (*t - horizon).num_minutes().abs() > 120 && *t < now)
        .enumerate()
        .map(|(i, t)| TaskMetric::new(format!("t{i}"), "a", 1, TaskResult::Success).at(t))
        .collect();
    store.store_task_metrics(&tasks).unwrap();
    store.apply_retention(&RetentionPolicy::default()).unwrap();
    let report = store.cleanup_old_metrics(30).unwrap();
    assert!(report.rollups > 0);
    let kept = tasks.iter().filter(|t| t.timestamp > horizon).count() as u64;
    assert_eq!(store.success_rate(&Filter::new()).unwrap().total, kept);
    let count = store.count_old_metrics(30).unwrap();
    assert_eq!((count.total(), count.rollups), (0, 0));
}
