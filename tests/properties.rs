//! Model-based properties: random records go into the store and into a
//! plain `Vec`; every query, limit, aggregate, success rate and cleanup must
//! agree with the model.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use swarm_metrics::{
    AgentMetric, AggregationType, Filter, MetricKind, MetricType, MetricsStorage, SuccessRate,
    TaskMetric, TaskResult, TimeRange,
};

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap()
}

fn result_strategy() -> impl Strategy<Value = TaskResult> {
    prop::sample::select(TaskResult::ALL.to_vec())
}

/// Few ids and coarse times, so that filters match often and some records
/// collide on `(task_id, timestamp)` or share a timestamp.
fn task_strategy() -> impl Strategy<Value = TaskMetric> {
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

fn range_strategy() -> impl Strategy<Value = Option<TimeRange>> {
    prop::option::of((0..130i64, 0..130i64).prop_map(|(a, b)| {
        let (a, b) = (a.min(b), a.max(b));
        TimeRange::new(base() + Duration::minutes(a), base() + Duration::minutes(b)).unwrap()
    }))
}

fn task_filter_strategy() -> impl Strategy<Value = Filter> {
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
        })
}

fn task_matches(f: &Filter, t: &TaskMetric) -> bool {
    f.task_id.as_ref().is_none_or(|id| *id == t.task_id)
        && f.agent_id.as_ref().is_none_or(|id| *id == t.agent_id)
        && f.swarm_id
            .as_ref()
            .is_none_or(|id| Some(id) == t.swarm_id.as_ref())
        && f.result.is_none_or(|r| r == t.result)
        && f.time_range.is_none_or(|r| r.contains(t.timestamp))
}

/// The model of the task table: first write of a `(task_id, timestamp)`
/// wins, and rows keep their store order.
fn task_model(stored: &[TaskMetric]) -> Vec<TaskMetric> {
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

/// Newest first; among equal timestamps, the later store first.
fn newest_first<T: Clone>(
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
fn model_aggregate(aggregation: AggregationType, values: &[f64]) -> Option<f64> {
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
fn model_quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64))
}

fn assert_close(got: Option<f64>, want: Option<f64>, what: &str) {
    match (got, want) {
        (None, None) => {}
        (Some(g), Some(w)) => {
            let tolerance = 1e-9 * w.abs().max(1.0);
            assert!((g - w).abs() <= tolerance, "{what}: got {g}, model {w}");
        }
        _ => panic!("{what}: got {got:?}, model {want:?}"),
    }
}

fn store_in_chunks(store: &MetricsStorage, tasks: &[TaskMetric], chunk: usize) {
    for part in tasks.chunks(chunk) {
        if part.len() == 1 {
            store.store_task_metric(&part[0]).unwrap();
        } else {
            store.store_task_metrics(part).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn task_queries_aggregates_and_rates_match_the_model(
        tasks in prop::collection::vec(task_strategy(), 0..80),
        chunk in 1..20usize,
        filters in prop::collection::vec((task_filter_strategy(), 1..40usize), 1..6),
    ) {
        let store = MetricsStorage::temporary().unwrap();
        store_in_chunks(&store, &tasks, chunk);
        let model = task_model(&tasks);

        for (filter, limit) in &filters {
            let matching: Vec<TaskMetric> = model.iter().filter(|t| task_matches(filter, t)).cloned().collect();

            let rows = store.get_task_metrics(filter, *limit).unwrap();
            prop_assert_eq!(&rows, &newest_first(&matching, |t| t.timestamp, *limit));

            let mut rate = SuccessRate::default();
            for t in &matching {
                rate.add(t.result, 1);
            }
            prop_assert_eq!(store.success_rate(filter).unwrap(), rate);

            for (metric_type, column) in [
                (MetricType::TaskDuration, (|t: &TaskMetric| t.duration_ms) as fn(&TaskMetric) -> u64),
                (MetricType::TaskTokens, |t: &TaskMetric| t.tokens_used),
                (MetricType::TaskFiles, |t: &TaskMetric| t.files_changed),
            ] {
                let values: Vec<f64> = matching.iter().map(|t| column(t) as f64).collect();
                let with_type = filter.clone().metric_type(metric_type);
                let qs = [0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0];
                let got = store.percentiles(MetricKind::Task, &qs, &with_type).unwrap();
                for (p, q) in got.iter().zip(qs) {
                    prop_assert_eq!(p.count, values.len() as u64);
                    assert_close(p.value, model_quantile(&values, q), &format!("p{q} {metric_type} {filter:?}"));
                }
                for aggregation in AggregationType::ALL {
                    let got = store.aggregate_metrics(MetricKind::Task, *aggregation, &with_type).unwrap();
                    prop_assert_eq!(got.count, values.len() as u64);
                    prop_assert_eq!(got.metric_type, Some(metric_type));
                    assert_close(got.value, model_aggregate(*aggregation, &values), &format!("{aggregation} {metric_type} {filter:?}"));
                }
            }
        }
    }

    #[test]
    fn agent_metric_queries_and_aggregates_match_the_model(
        metrics in prop::collection::vec(
            (0..4u32, prop::sample::select(vec![MetricType::AgentThroughput, MetricType::AgentErrorCount, MetricType::AgentSuccessRate]),
             prop_oneof![0.0..1.0f64, 0.0..1e12f64], 0..120i64),
            0..60),
        agent in prop::option::of(0..5u32),
        metric_type in prop::option::of(prop::sample::select(vec![MetricType::AgentThroughput, MetricType::AgentErrorCount])),
        range in range_strategy(),
        limit in 1..40usize,
    ) {
        let store = MetricsStorage::temporary().unwrap();
        let records: Vec<AgentMetric> = metrics
            .iter()
            .map(|(a, ty, v, minute)| AgentMetric::new(format!("agent-{a}"), *ty, *v).at(base() + Duration::minutes(*minute)))
            .collect();
        let mut ids = Vec::new();
        for part in records.chunks(7) {
            ids.extend(store.store_agent_metrics(part).unwrap());
        }
        prop_assert_eq!(ids.len(), records.len());
        prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase in store order");

        let filter = Filter {
            agent_id: agent.map(|a| format!("agent-{a}")),
            metric_type,
            time_range: range,
            ..Filter::default()
        };
        let matching: Vec<(i64, AgentMetric)> = ids
            .iter()
            .zip(&records)
            .filter(|(_, m)| {
                filter.agent_id.as_ref().is_none_or(|a| *a == m.agent_id)
                    && filter.metric_type.is_none_or(|t| t == m.metric_type)
                    && filter.time_range.is_none_or(|r| r.contains(m.timestamp))
            })
            .map(|(id, m)| (*id, m.clone()))
            .collect();
        let got: Vec<(i64, AgentMetric)> = store
            .get_agent_metrics(&filter, limit)
            .unwrap()
            .into_iter()
            .map(|s| (s.metric_id, s.metric))
            .collect();
        prop_assert_eq!(got, newest_first(&matching, |(_, m)| m.timestamp, limit));

        let values: Vec<f64> = matching.iter().map(|(_, m)| m.value).collect();
        for aggregation in AggregationType::ALL {
            let got = store.aggregate_metrics(MetricKind::Agent, *aggregation, &filter).unwrap();
            prop_assert_eq!(got.count, values.len() as u64);
            assert_close(got.value, model_aggregate(*aggregation, &values), &format!("{aggregation}"));
        }
    }

    #[test]
    fn cleanup_deletes_exactly_what_the_model_says(
        ages_hours in prop::collection::vec(0..(24 * 60i64), 0..150),
        retention_days in 1..60u32,
    ) {
        let store = MetricsStorage::temporary().unwrap();
        let now = swarm_metrics::now();
        // Half an hour off the hour keeps every row well away from the
        // cutoff, which moves on by the milliseconds the test takes.
        let at = |hours: i64| now - Duration::hours(hours) - Duration::minutes(30);
        let tasks: Vec<_> = ages_hours
            .iter()
            .enumerate()
            .map(|(i, h)| TaskMetric::new(format!("t{i}"), "a", 1, TaskResult::Success).at(at(*h)))
            .collect();
        store.store_task_metrics(&tasks).unwrap();
        let agents: Vec<_> = ages_hours
            .iter()
            .map(|h| AgentMetric::new("a", MetricType::AgentThroughput, 1.0).at(at(*h)))
            .collect();
        store.store_agent_metrics(&agents).unwrap();

        let horizon = i64::from(retention_days) * 24;
        let expected_deleted = ages_hours.iter().filter(|h| **h >= horizon).count() as u64;
        let report = store.cleanup_old_metrics(retention_days).unwrap();
        prop_assert_eq!(report.task_metrics, expected_deleted);
        prop_assert_eq!(report.agent_metrics, expected_deleted);
        prop_assert_eq!(report.swarm_metrics, 0);

        let kept = store.get_task_metrics(&Filter::new(), 10_000).unwrap();
        prop_assert_eq!(kept.len() as u64, ages_hours.len() as u64 - expected_deleted);
        prop_assert!(kept.iter().all(|t| now - t.timestamp < Duration::hours(horizon)));
    }
}
