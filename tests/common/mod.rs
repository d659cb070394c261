//! Strategies and plain models shared by the property tests.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use swarm_metrics::{AggregationType, Filter, MetricsStorage, TaskMetric, TaskResult, TimeRange};

pub fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap()
}

pub fn result_strategy() -> impl Strategy<Value = TaskResult> {
    prop::sample::select(TaskResult::ALL.to_vec())
}

/// Few ids and coarse times, so that filters match often and some records
/// collide on `(task_id, timestamp)` or share a timestamp.
pub fn task_strategy() -> impl Strategy<Value = TaskMetric> {
    (
        0..12u32,
        0..4u32,
        prop::option::of(0..3u32),
        prop_oneof![0..10_000u64, 0..=(i64::MAX as u64 / 1024)],
        result_strategy(),
        0..5_000u64,
        0..30u64,
        0..120i64,
        0..3i64,
    )
        .prop_map(
            |(task, agent, swarm, duration, result, tokens, files, minute, micro)| {
                let mut t = TaskMetric::new(
                    format!("task-{task}"),
                    format!("agent-{agent}"),
                    duration,
                    result,
                )
                .tokens(tokens)
                .files(files)
                .at(base() + Duration::minutes(minute) + Duration::microseconds(micro));
                t.swarm_id = swarm.map(|s| format!("swarm-{s}"));
                t
            },
        )
}

pub fn range_strategy() -> impl Strategy<Value = Option<TimeRange>> {
    prop::option::of((0..130i64, 0..130i64).prop_map(|(a, b)| {
        let (a, b) = (a.min(b), a.max(b));
        TimeRange::new(base() + Duration::minutes(a), base() + Duration::minutes(b)).unwrap()
    }))
}

pub fn task_filter_strategy() -> impl Strategy<Value = Filter> {
    (
        prop::option::of(0..12u32),
        prop::option::of(0..5u32),
        prop::option::of(0..4u32),
        prop::option::of(result_strategy()),
        range_strategy(),
    )
        .prop_map(|(task, agent, swarm, result, range)| Filter {
            task_id: task.map(|t| format!("task-{t}")),
            agent_id: agent.map(|a| format!("agent-{a}")),
            swarm_id: swarm.map(|s| format!("swarm-{s}")),
            result,
            metric_type: None,
            time_range: range,
            column: None,
        })
}

pub fn task_matches(f: &Filter, t: &TaskMetric) -> bool {
    f.task_id.as_ref().is_none_or(|id| *id == t.task_id)
        && f.agent_id.as_ref().is_none_or(|id| *id == t.agent_id)
        && f.swarm_id
            .as_ref()
            .is_none_or(|id| Some(id) == t.swarm_id.as_ref())
        && f.result.is_none_or(|r| r == t.result)
        && f.time_range.is_none_or(|r| r.contains(t.timestamp))
}

/// The model of the task table: first write of a `(task_id, timestamp)`
/// wins.
pub fn task_model(stored: &[TaskMetric]) -> Vec<TaskMetric> {
    let mut model: Vec<TaskMetric> = Vec::new();
    for t in stored {
        if !model
            .iter()
            .any(|m| m.task_id == t.task_id && m.timestamp == t.timestamp)
        {
            model.push(t.clone());
        }
    }
    model
}

/// Task metrics newest first; among equal timestamps, by task id, last
/// first (the order of the table's key, read backwards).
pub fn newest_tasks_first(rows: &[TaskMetric], limit: usize) -> Vec<TaskMetric> {
    let mut sorted = rows.to_vec();
    sorted.sort_by(|a, b| {
        (b.timestamp, b.task_id.as_bytes()).cmp(&(a.timestamp, a.task_id.as_bytes()))
    });
    sorted.truncate(limit);
    sorted
}

/// Newest first; among equal timestamps, the later store first.
pub fn newest_first<T: Clone>(
    rows: &[T],
    timestamp: impl Fn(&T) -> DateTime<Utc>,
    limit: usize,
) -> Vec<T> {
    let mut indexed: Vec<(usize, &T)> = rows.iter().enumerate().collect();
    indexed.sort_by(|(ia, a), (ib, b)| timestamp(b).cmp(&timestamp(a)).then(ib.cmp(ia)));
    indexed
        .into_iter()
        .take(limit)
        .map(|(_, r)| r.clone())
        .collect()
}

/// The model's aggregate of `values`, computed the plain way (two passes
/// for the standard deviation).
pub fn model_aggregate(aggregation: AggregationType, values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let sum: f64 = values.iter().sum();
    match aggregation {
        AggregationType::Count => Some(n),
        AggregationType::Sum => Some(sum),
        AggregationType::Avg => Some(sum / n),
        AggregationType::Min => values.iter().copied().reduce(f64::min),
        AggregationType::Max => values.iter().copied().reduce(f64::max),
        AggregationType::Stddev => (values.len() >= 2).then(|| {
            let mean = sum / n;
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        }),
    }
}

/// numpy's default quantile, on a sorted copy.
pub fn model_quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64))
}

pub fn assert_close(got: Option<f64>, want: Option<f64>, what: &str) {
    match (got, want) {
        (None, None) => {}
        (Some(g), Some(w)) => {
            let tolerance = 1e-9 * w.abs().max(1.0);
            assert!((g - w).abs() <= tolerance, "{what}: got {g}, model {w}");
        }
        _ => panic!("{what}: got {got:?}, model {want:?}"),
    }
}

/// A store in a temporary folder whose single stores join the agent index
/// every `index_batch_rows` rows, so that queries meet rows on both sides
/// of the index watermark.
pub fn store_indexing_every(index_batch_rows: usize) -> (tempfile::TempDir, MetricsStorage) {
    let dir = tempfile::tempdir().unwrap();
    let store = MetricsStorage::builder(dir.path().join("metrics.db"))
        .index_batch_rows(index_batch_rows)
        .open()
        .unwrap();
    (dir, store)
}

pub fn store_in_chunks(store: &MetricsStorage, tasks: &[TaskMetric], chunk: usize) {
    for part in tasks.chunks(chunk) {
        if part.len() == 1 {
            store.store_task_metric(&part[0]).unwrap();
        } else {
            store.store_task_metrics(part).unwrap();
        }
    }
}

/// What the file at `path` says about the agent index: its watermark, and
/// how many task rows are indexed wrongly (in the index after the
/// watermark, or out of it at or before the watermark).
pub fn index_state(path: &std::path::Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let watermark: i64 = conn
        .query_row("SELECT watermark FROM task_index_state", [], |r| r.get(0))
        .unwrap();
    let wrong: i64 = conn
        .query_row(
            "SELECT count(*) FROM task_metrics WHERE (files_changed >= 0) != (timestamp <= ?1)",
            [watermark],
            |r| r.get(0),
        )
        .unwrap();
    (watermark, wrong)
}
pub mod server;
