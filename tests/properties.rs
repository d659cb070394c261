//! Model-based properties: random records go into the store and into a
//! plain `Vec`; every query, limit, aggregate, success rate and cleanup must
//! agree with the model.

mod common;

use chrono::Duration;
use common::server::stores;
use common::*;
use proptest::prelude::*;
use swarm_metrics::{
    AgentMetric, AggregationType, Filter, MetricKind, MetricType, MetricsStorage, SuccessRate,
    TaskColumn, TaskMetric, TaskResult,
};

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn task_queries_aggregates_and_rates_match_the_model(
        tasks in prop::collection::vec(task_strategy(), 0..80),
        // Batches of index_batch_rows or more are indexed at once; smaller
        // ones wait.
        chunk in prop_oneof![1..20usize, 64..80usize],
        index_batch_rows in 1..12usize,
        filters in prop::collection::vec((task_filter_strategy(), 1..40usize), 1..6),
    ) {
        let (dir, store) = store_indexing_every(index_batch_rows);
        store_in_chunks(&store, &tasks, chunk);
        // Rows are in the agent index exactly up to the watermark.
        prop_assert_eq!(index_state(&dir.path().join("metrics.db")).1, 0);
        let model = task_model(&tasks);

        tasks_match_the_model(&store, &model, &filters)?;
        // The same records on every other backend the build has.
        for backend in stores().into_iter().skip(1) {
            store_in_chunks(&backend.store, &tasks, chunk);
            tasks_match_the_model(&backend.store, &model, &filters)?;
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
        retries in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        // On every backend the build has.
        for backend in stores() {
            let store = &backend.store;
            let mut records: Vec<AgentMetric> = metrics
                .iter()
                .map(|(a, ty, v, minute)| AgentMetric::new(format!("agent-{a}"), *ty, *v).at(base() + Duration::minutes(*minute)))
                .collect();
            // Some stored again later, as retries are.
            if !records.is_empty() {
                let again: Vec<AgentMetric> = retries.iter().map(|i| i.get(&records).clone()).collect();
                records.extend(again);
            }
            let mut ids = Vec::new();
            for part in records.chunks(7) {
                ids.extend(store.store_agent_metrics(part).unwrap());
            }
            prop_assert_eq!(ids.len(), records.len());
            // The same agent, type, time and value again is a retry: it answers
            // with the first one's id and is stored once. New ids increase in
            // store order.
            let mut first_ids = std::collections::HashMap::new();
            let mut newest = 0;
            let mut unique = Vec::new();
            for (id, m) in ids.iter().zip(&records) {
                let key = (m.agent_id.clone(), m.metric_type, m.value.to_bits(), m.timestamp);
                match first_ids.get(&key) {
                    Some(first) => prop_assert_eq!(id, first),
                    None => {
                        prop_assert!(*id > newest, "ids increase in store order");
                        newest = *id;
                        first_ids.insert(key, *id);
                        unique.push((*id, m.clone()));
                    }
                }
            }

            let filter = Filter {
                agent_id: agent.map(|a| format!("agent-{a}")),
                metric_type,
                time_range: range,
                ..Filter::default()
            };
            let matching: Vec<(i64, AgentMetric)> = unique
                .iter()
                .filter(|(_, m)| {
                    filter.agent_id.as_ref().is_none_or(|a| *a == m.agent_id)
                        && filter.metric_type.is_none_or(|t| t == m.metric_type)
                        && filter.time_range.is_none_or(|r| r.contains(m.timestamp))
                })
                .cloned()
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
    }

    #[test]
    fn cleanup_deletes_exactly_what_the_model_says(
        ages_hours in prop::collection::vec(0..(24 * 60i64), 0..150),
        retention_days in 1..60u32,
    ) {
        // On every backend the build has.
        for backend in stores() {
            let store = &backend.store;
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
                .enumerate()
                .map(|(i, h)| AgentMetric::new("a", MetricType::AgentThroughput, i as f64).at(at(*h)))
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
}

/// Checks every query, aggregate, percentile and success rate of `store`
/// over `filters` against the `model` of what it holds.
fn tasks_match_the_model(
    store: &MetricsStorage,
    model: &[TaskMetric],
    filters: &[(Filter, usize)],
) -> Result<(), TestCaseError> {
    for (filter, limit) in filters {
        let matching: Vec<TaskMetric> = model
            .iter()
            .filter(|t| task_matches(filter, t))
            .cloned()
            .collect();

        let rows = store.get_task_metrics(filter, *limit).unwrap();
        prop_assert_eq!(&rows, &newest_tasks_first(&matching, *limit));

        let mut rate = SuccessRate::default();
        for t in &matching {
            rate.add(t.result, 1);
        }
        prop_assert_eq!(store.success_rate(filter).unwrap(), rate);

        for (metric_type, column) in [
            (
                MetricType::TaskDuration,
                (|t: &TaskMetric| t.duration_ms) as fn(&TaskMetric) -> u64,
            ),
            (MetricType::TaskTokens, |t: &TaskMetric| t.tokens_used),
            (MetricType::TaskFiles, |t: &TaskMetric| t.files_changed),
        ] {
            let values: Vec<f64> = matching.iter().map(|t| column(t) as f64).collect();
            let with_type = filter
                .clone()
                .column(TaskColumn::of_metric_type(metric_type).unwrap());
            let qs = [0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0];
            let got = store
                .percentiles(MetricKind::Task, &qs, &with_type)
                .unwrap();
            for (p, q) in got.iter().zip(qs) {
                prop_assert_eq!(p.count, values.len() as u64);
                assert_close(
                    p.value,
                    model_quantile(&values, q),
                    &format!("p{q} {metric_type} {filter:?}"),
                );
            }
            for aggregation in AggregationType::ALL {
                let got = store
                    .aggregate_metrics(MetricKind::Task, *aggregation, &with_type)
                    .unwrap();
                prop_assert_eq!(got.count, values.len() as u64);
                prop_assert_eq!(got.metric_type, Some(metric_type));
                assert_close(
                    got.value,
                    model_aggregate(*aggregation, &values),
                    &format!("{aggregation} {metric_type} {filter:?}"),
                );
            }
        }
    }
    Ok(())
}
