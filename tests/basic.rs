//! Storing and reading back every kind of metric, filters, limits, batches,
//! idempotence, aggregates and success rates.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::index_state;
use common::server::stores;
use serde_json::json;
use swarm_metrics::{
    AgentMetric, AggregationType, BucketValue, EmptyBuckets, Error, Filter, GroupBy, Measure,
    MetricKind, MetricType, MetricsStorage, SwarmMetric, TaskMetric, TaskResult, TimeRange,
    DEFAULT_LIMIT,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
}

fn task(id: &str, agent: &str, ms: u64, result: TaskResult, minutes: i64) -> TaskMetric {
    TaskMetric::new(id, agent, ms, result).at(t0() + Duration::minutes(minutes))
}

#[test]
fn task_metrics_round_trip_exactly() {
    for backend in stores() {
        let store = &backend.store;
        let stored = TaskMetric::new(
            "task-1",
            "agent 'quoted'; DROP TABLE agents; --",
            1500,
            TaskResult::Timeout,
        )
        .swarm("swarm-ü")
        .tokens(i64::MAX as u64)
        .files(3)
        .at(t0() + Duration::microseconds(123_456));
        assert!(store.store_task_metric(&stored).unwrap());
        let rows = store
            .get_task_metrics(&Filter::new(), DEFAULT_LIMIT)
            .unwrap();
        assert_eq!(rows, vec![stored]);
    }
}

#[test]
fn queries_are_newest_first_filtered_and_limited() {
    for backend in stores() {
        let store = &backend.store;
        let mut batch = Vec::new();
        for i in 0..20 {
            let agent = if i % 2 == 0 { "even" } else { "odd" };
            let result = if i % 5 == 0 {
                TaskResult::Failure
            } else {
                TaskResult::Success
            };
            batch.push(task(&format!("t{i}"), agent, 100 + i as u64, result, i).swarm("s"));
        }
        assert_eq!(store.store_task_metrics(&batch).unwrap(), 20);

        let all = store.get_task_metrics(&Filter::new(), 100).unwrap();
        let ids: Vec<_> = all.iter().map(|t| t.task_id.as_str()).collect();
        let expected: Vec<String> = (0..20).rev().map(|i| format!("t{i}")).collect();
        assert_eq!(ids, expected);

        let odd = store
            .get_task_metrics(&Filter::new().agent("odd"), 3)
            .unwrap();
        assert_eq!(
            odd.iter().map(|t| &t.task_id[..]).collect::<Vec<_>>(),
            ["t19", "t17", "t15"]
        );

        let failures = store
            .get_task_metrics(&Filter::new().result(TaskResult::Failure), 100)
            .unwrap();
        assert_eq!(failures.len(), 4);

        let range =
            TimeRange::new(t0() + Duration::minutes(5), t0() + Duration::minutes(9)).unwrap();
        let in_range = store
            .get_task_metrics(&Filter::new().range(range), 100)
            .unwrap();
        assert_eq!(in_range.len(), 5, "both ends are included");

        let one = store
            .get_task_metrics(&Filter::new().task("t7"), 100)
            .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].agent_id, "odd");

        assert!(store
            .get_task_metrics(&Filter::new().agent("nobody"), 100)
            .unwrap()
            .is_empty());
        assert!(store
            .get_task_metrics(&Filter::new().swarm("other"), 100)
            .unwrap()
            .is_empty());
        assert_eq!(
            store
                .get_task_metrics(&Filter::new().swarm("s"), 100)
                .unwrap()
                .len(),
            20
        );
    }
}

#[test]
fn a_retried_task_store_is_not_counted_twice() {
    for backend in stores() {
        let store = &backend.store;
        let first = task("t1", "a", 100, TaskResult::Success, 0);
        assert!(store.store_task_metric(&first).unwrap());
        // Same task id and timestamp: ignored, the first write wins.
        let retry = TaskMetric {
            duration_ms: 999,
            ..first.clone()
        };
        assert!(!store.store_task_metric(&retry).unwrap());
        // Same task at another time is another metric.
        assert!(store
            .store_task_metric(&task("t1", "a", 100, TaskResult::Success, 1))
            .unwrap());
        assert_eq!(
            store
                .store_task_metrics(&[first.clone(), first.clone()])
                .unwrap(),
            0
        );
        let rows = store
            .get_task_metrics(&Filter::new().task("t1"), 10)
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.duration_ms == 100));
        let count = store
            .aggregate_metrics(MetricKind::Task, AggregationType::Count, &Filter::new())
            .unwrap();
        assert_eq!(count.count, 2);
    }
}

#[test]
fn many_tasks_may_share_one_timestamp() {
    for backend in stores() {
        let store = &backend.store;
        let batch: Vec<_> = (0..300)
            .map(|i| task(&format!("t{i}"), "a", i, TaskResult::Success, 0))
            .collect();
        assert_eq!(store.store_task_metrics(&batch).unwrap(), 300);
        let rows = store.get_task_metrics(&Filter::new(), 1000).unwrap();
        assert_eq!(rows.len(), 300);
        // Among equal timestamps, rows come in task id order (last first).
        let ids: Vec<&str> = rows.iter().map(|r| r.task_id.as_str()).collect();
        let mut expected = ids.clone();
        expected.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(ids, expected);
        assert_eq!(rows[0].task_id, "t99");
        assert_eq!(rows[299].task_id, "t0");
    }
}

#[test]
fn a_batch_with_one_bad_record_writes_nothing() {
    for backend in stores() {
        let store = &backend.store;
        let mut batch: Vec<_> = (0..10)
            .map(|i| task(&format!("t{i}"), "a", 1, TaskResult::Success, i))
            .collect();
        batch[7].agent_id = String::new();
        let err = store.store_task_metrics(&batch).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "agent_id",
                ..
            }
        ));
        assert!(err.to_string().contains("record 7"), "{err}");
        assert!(store
            .get_task_metrics(&Filter::new(), 100)
            .unwrap()
            .is_empty());

        let mut metrics: Vec<_> = (0..5)
            .map(|i| AgentMetric::new("a", MetricType::AgentThroughput, i as f64))
            .collect();
        metrics[4].value = f64::NAN;
        assert!(store.store_agent_metrics(&metrics).is_err());
        assert!(store
            .get_agent_metrics(&Filter::new(), 100)
            .unwrap()
            .is_empty());
    }
}

#[test]
fn agent_and_swarm_metrics_round_trip_with_ids_and_metadata() {
    for backend in stores() {
        let store = &backend.store;
        let m1 = AgentMetric::new("agent-1", MetricType::AgentSuccessRate, 0.95)
            .metadata(json!({"total_tasks": 100, "successful_tasks": 95}))
            .at(t0());
        let m2 = AgentMetric::new("agent-1", MetricType::AgentErrorCount, 5.0)
            .at(t0() + Duration::seconds(1));
        let id1 = store.store_agent_metric(&m1).unwrap();
        let id2 = store.store_agent_metric(&m2).unwrap();
        assert!(id2 > id1);
        let rows = store
            .get_agent_metrics(&Filter::new().agent("agent-1"), 10)
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].metric_id, &rows[0].metric), (id2, &m2));
        assert_eq!((rows[1].metric_id, &rows[1].metric), (id1, &m1));
        let typed = store
            .get_agent_metrics(&Filter::new().metric_type(MetricType::AgentErrorCount), 10)
            .unwrap();
        assert_eq!(typed.len(), 1);

        let s = SwarmMetric::new("swarm_production", MetricType::SwarmThroughput, 50.5)
            .metadata(json!({"time_window_seconds": 60}))
            .at(t0());
        // The same metric twice is a retry, stored once under one id; another
        // reading of the same moment is a metric of its own.
        let mut other = s.clone();
        other.value = 49.0;
        let ids = store
            .store_swarm_metrics(&[s.clone(), s.clone(), other.clone()])
            .unwrap();
        assert_eq!(ids.len(), 3);
        assert_eq!(ids[1], ids[0]);
        assert!(ids[2] > ids[0]);
        let rows = store
            .get_swarm_metrics(
                &Filter::new()
                    .swarm("swarm_production")
                    .metric_type(MetricType::SwarmThroughput),
                10,
            )
            .unwrap();
        assert_eq!(rows.len(), 2);
        let mut values: Vec<f64> = rows.iter().map(|r| r.metric.value).collect();
        values.sort_by(f64::total_cmp);
        assert_eq!(values, [49.0, 50.5]);
        assert_eq!(
            rows.iter().find(|r| r.metric_id == ids[0]).unwrap().metric,
            s
        );
        assert!(store
            .get_swarm_metrics(&Filter::new().swarm("agent-1"), 10)
            .unwrap()
            .is_empty());
    }
}

#[test]
fn aggregates_are_exact_and_empty_selections_have_no_value() {
    for backend in stores() {
        let store = &backend.store;
        let durations = [
            1_000_000_001u64,
            1_000_000_002,
            1_000_000_003,
            1_000_000_004,
        ];
        let batch: Vec<_> = durations
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                task(&format!("t{i}"), "a", d, TaskResult::Success, i as i64).tokens(10 * i as u64)
            })
            .collect();
        store.store_task_metrics(&batch).unwrap();
        let agg = |a, f: &Filter| store.aggregate_metrics(MetricKind::Task, a, f).unwrap();
        let all = Filter::new();
        let stddev = agg(AggregationType::Stddev, &all);
        assert_eq!(stddev.count, 4);
        assert!(
            (stddev.value.unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-9,
            "{stddev:?}"
        );
        assert_eq!(agg(AggregationType::Avg, &all).value, Some(1_000_000_002.5));
        assert_eq!(agg(AggregationType::Sum, &all).value, Some(4_000_000_010.0));
        assert_eq!(agg(AggregationType::Min, &all).value, Some(1_000_000_001.0));
        assert_eq!(agg(AggregationType::Max, &all).value, Some(1_000_000_004.0));
        assert_eq!(agg(AggregationType::Count, &all).value, Some(4.0));
        let tokens = agg(
            AggregationType::Sum,
            &Filter::new().column(swarm_metrics::TaskColumn::Tokens),
        );
        assert_eq!(
            (tokens.value, tokens.metric_type),
            (Some(60.0), Some(MetricType::TaskTokens))
        );

        let nobody = Filter::new().agent("nobody");
        for a in AggregationType::ALL {
            let r = agg(*a, &nobody);
            assert_eq!((r.count, r.value), (0, None), "{a}");
        }
        let single = agg(AggregationType::Stddev, &Filter::new().task("t0"));
        assert_eq!((single.count, single.value), (1, None));

        let err = store
            .aggregate_metrics(
                MetricKind::Task,
                AggregationType::Avg,
                &Filter::new().metric_type(MetricType::TaskResult),
            )
            .unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "metric_type",
                ..
            }
        ));
    }
}

/// Every answer that sums task durations applies the same rule past
/// `i64`: a floating-point sum, never an error. Two durations of
/// `i64::MAX` asked of the total, of each group and of each bucket, on
/// every backend this build has.
#[test]
fn every_sum_and_average_survives_durations_beyond_i64() {
    for backend in stores() {
        let store = &backend.store;
        let big = i64::MAX as u64;
        store
            .store_task_metrics(&[
                task("a", "x", big, TaskResult::Success, 0),
                task("b", "x", big, TaskResult::Success, 1),
            ])
            .unwrap();
        let expected = [
            (AggregationType::Sum, 2.0 * i64::MAX as f64),
            (AggregationType::Avg, i64::MAX as f64),
        ];
        let all = Filter::new();
        for (aggregation, value) in expected {
            let total = store
                .aggregate_metrics(MetricKind::Task, aggregation, &all)
                .unwrap();
            assert_eq!(
                (total.count, total.value),
                (2, Some(value)),
                "{aggregation:?}"
            );
            let groups = store
                .aggregate_by(MetricKind::Task, aggregation, GroupBy::Agent, &all)
                .unwrap();
            assert_eq!(groups.len(), 1, "{aggregation:?}");
            assert_eq!(groups[0].key.as_deref(), Some("x"));
            assert_eq!(
                (groups[0].value.count, groups[0].value.value),
                (2, Some(value)),
                "{aggregation:?} by agent on {}",
                backend.backend
            );
            let buckets = store
                .series(
                    MetricKind::Task,
                    Measure::Aggregate(aggregation),
                    Duration::hours(1),
                    &all,
                    EmptyBuckets::Skip,
                )
                .unwrap();
            assert_eq!(buckets.len(), 1, "{aggregation:?}");
            let BucketValue::Aggregate(bucket) = &buckets[0].value else {
                panic!("an aggregate bucket, got {:?}", buckets[0].value);
            };
            assert_eq!(
                (bucket.count, bucket.value),
                (2, Some(value)),
                "{aggregation:?} series on {}",
                backend.backend
            );
        }
    }
}

#[test]
fn agent_metric_aggregates_use_the_value() {
    for backend in stores() {
        let store = &backend.store;
        for (i, v) in [2.0, 4.0, 9.0].iter().enumerate() {
            store
                .store_agent_metric(
                    &AgentMetric::new("a", MetricType::AgentThroughput, *v)
                        .at(t0() + Duration::seconds(i as i64)),
                )
                .unwrap();
        }
        store
            .store_agent_metric(&AgentMetric::new("a", MetricType::AgentErrorCount, 100.0))
            .unwrap();
        let avg = store
            .aggregate_metrics(
                MetricKind::Agent,
                AggregationType::Avg,
                &Filter::new()
                    .agent("a")
                    .metric_type(MetricType::AgentThroughput),
            )
            .unwrap();
        assert_eq!((avg.count, avg.value), (3, Some(5.0)));
        assert_eq!(avg.metric_type, Some(MetricType::AgentThroughput));
        let max = store
            .aggregate_metrics(MetricKind::Agent, AggregationType::Max, &Filter::new())
            .unwrap();
        assert_eq!(max.value, Some(100.0));
    }
}

#[test]
fn success_rates_per_agent_swarm_and_overall() {
    for backend in stores() {
        let store = &backend.store;
        let results = [
            ("a1", "s1", TaskResult::Success),
            ("a1", "s1", TaskResult::Success),
            ("a1", "s1", TaskResult::Failure),
            ("a2", "s1", TaskResult::Timeout),
            ("a2", "s2", TaskResult::Cancelled),
            ("a2", "s2", TaskResult::Success),
        ];
        let batch: Vec<_> = results
            .iter()
            .enumerate()
            .map(|(i, (a, s, r))| task(&format!("t{i}"), a, 10, *r, i as i64).swarm(*s))
            .collect();
        store.store_task_metrics(&batch).unwrap();

        let a1 = store.success_rate(&Filter::new().agent("a1")).unwrap();
        assert_eq!((a1.success, a1.failure, a1.total), (2, 1, 3));
        assert_eq!(a1.rate, Some(2.0 / 3.0));
        let s1 = store.success_rate(&Filter::new().swarm("s1")).unwrap();
        assert_eq!(
            (s1.success, s1.failure, s1.timeout, s1.cancelled, s1.total),
            (2, 1, 1, 0, 4)
        );
        let all = store.success_rate(&Filter::new()).unwrap();
        assert_eq!((all.success, all.total, all.rate), (3, 6, Some(0.5)));
        let range =
            TimeRange::new(t0() + Duration::minutes(3), t0() + Duration::minutes(5)).unwrap();
        let late = store.success_rate(&Filter::new().range(range)).unwrap();
        assert_eq!(
            (late.timeout, late.cancelled, late.success, late.total),
            (1, 1, 1, 3)
        );
        let none = store.success_rate(&Filter::new().agent("nobody")).unwrap();
        assert_eq!((none.total, none.rate), (0, None));
    }
}

#[test]
fn bad_input_is_rejected_with_the_field_named() {
    for backend in stores() {
        let store = &backend.store;
        let field_of = |e: Error| match e {
            Error::InvalidInput { field, .. } => field,
            other => panic!("expected invalid input, got {other:?}"),
        };
        let ok = task("t", "a", 1, TaskResult::Success, 0);
        assert_eq!(
            field_of(
                store
                    .store_task_metric(&TaskMetric {
                        task_id: "".into(),
                        ..ok.clone()
                    })
                    .unwrap_err()
            ),
            "task_id"
        );
        assert_eq!(
            field_of(
                store
                    .store_task_metric(&TaskMetric {
                        swarm_id: Some(" ".into()),
                        ..ok.clone()
                    })
                    .unwrap_err()
            ),
            "swarm_id"
        );
        assert_eq!(
            field_of(
                store
                    .store_task_metric(&TaskMetric {
                        duration_ms: u64::MAX,
                        ..ok.clone()
                    })
                    .unwrap_err()
            ),
            "duration_ms"
        );
        for value in [f64::NAN, f64::INFINITY, -1.0] {
            let m = SwarmMetric::new("s", MetricType::SwarmHealth, value);
            assert_eq!(field_of(store.store_swarm_metric(&m).unwrap_err()), "value");
        }
        let m = SwarmMetric::new("s", MetricType::SwarmHealth, 1.0).metadata(json!("text"));
        assert_eq!(
            field_of(store.store_swarm_metric(&m).unwrap_err()),
            "metadata"
        );
        let m = SwarmMetric::new("s", MetricType::AgentThroughput, 1.0);
        assert_eq!(
            field_of(store.store_swarm_metric(&m).unwrap_err()),
            "metric_type"
        );
        assert_eq!(
            field_of(store.get_task_metrics(&Filter::new(), 0).unwrap_err()),
            "limit"
        );
        assert_eq!(
            field_of(store.cleanup_old_metrics(0).unwrap_err()),
            "retention_days"
        );
        assert_eq!(
            field_of(
                store
                    .get_agent_metrics(&Filter::new().swarm("s"), 5)
                    .unwrap_err()
            ),
            "swarm_id"
        );
        assert_eq!(
            field_of("median".parse::<AggregationType>().unwrap_err()),
            "aggregation"
        );
        assert_eq!(field_of("tasks".parse::<MetricKind>().unwrap_err()), "kind");
        assert_eq!(
            field_of(TimeRange::new(t0(), t0() - Duration::seconds(1)).unwrap_err()),
            "time_range"
        );
        // Nothing of the above reached the file.
        assert!(store
            .get_task_metrics(&Filter::new(), 10)
            .unwrap()
            .is_empty());
        assert!(store
            .get_swarm_metrics(&Filter::new(), 10)
            .unwrap()
            .is_empty());
    }
}

#[test]
fn timestamps_before_1970_and_far_ahead_round_trip() {
    for backend in stores() {
        let store = &backend.store;
        let times = [
            Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap()
                + Duration::microseconds(999_999),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(20000, 1, 1, 0, 0, 0).unwrap(),
        ];
        for (i, t) in times.iter().enumerate() {
            store
                .store_task_metric(
                    &TaskMetric::new(format!("t{i}"), "a", 1, TaskResult::Success).at(*t),
                )
                .unwrap();
        }
        let mut got: Vec<_> = store
            .get_task_metrics(&Filter::new(), 10)
            .unwrap()
            .into_iter()
            .map(|t| t.timestamp)
            .collect();
        got.reverse();
        assert_eq!(got, times);
    }
}

#[test]
fn generic_calls_speak_the_reference_field_names() {
    for backend in stores() {
        let store = &backend.store;
        let none = store
            .store_metric(
                MetricKind::Task,
                &json!({"task_id": "task_002", "agent_id": "agent_002", "duration_ms": 2000,
                        "result": "success", "tokens_used": 600, "swarm_id": "s"}),
            )
            .unwrap();
        assert_eq!(none, None);
        let id = store
            .store_metric(
                MetricKind::Agent,
                &json!({"agent_id": "agent_001", "metric_type": "agent_success_rate", "value": 0.95,
                        "metadata": {"total_tasks": 100}, "timestamp": "2025-01-01T00:00:00Z"}),
            )
            .unwrap();
        assert!(id.is_some());

        let rows = store
            .query_metrics(
                MetricKind::Task,
                &json!({"agent_id": "agent_002"}),
                None,
                10,
            )
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["task_id"], "task_002");
        assert_eq!(rows[0]["tokens_used"], 600);
        assert_eq!(rows[0]["result"], "success");
        assert_eq!(rows[0]["swarm_id"], "s");

        let range = TimeRange::new(t0() - Duration::days(365), t0()).unwrap();
        let rows = store
            .query_metrics(
                MetricKind::Agent,
                &json!({"metric_type": "agent_success_rate"}),
                Some(range),
                10,
            )
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["metric_id"], id.unwrap());
        assert_eq!(rows[0]["metadata"]["total_tasks"], 100);
        assert_eq!(rows[0]["timestamp"], "2025-01-01T00:00:00Z");

        let err = store
            .query_metrics(MetricKind::Agent, &json!({"task_id": "x"}), None, 10)
            .unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "task_id",
                ..
            }
        ));
        let err = store
            .store_metric(
                MetricKind::Swarm,
                &json!({"swarm_id": "s", "metric_type": "swarm_health"}),
            )
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { field: "value", .. }));
    }
}

#[test]
fn cleanup_deletes_only_old_metrics_and_reports_per_table() {
    for backend in stores() {
        let store = &backend.store;
        let now = swarm_metrics::now();
        let old = now - Duration::days(40);
        let recent = now - Duration::days(5);
        let mut tasks = Vec::new();
        for i in 0..12_000 {
            let at = if i % 3 == 0 { recent } else { old } + Duration::microseconds(i);
            tasks.push(TaskMetric::new(format!("t{i}"), "a", 1, TaskResult::Success).at(at));
        }
        store.store_task_metrics(&tasks).unwrap();
        store
            .store_agent_metrics(&[
                AgentMetric::new("a", MetricType::AgentThroughput, 1.0).at(old),
                AgentMetric::new("a", MetricType::AgentThroughput, 1.0).at(recent),
            ])
            .unwrap();
        store
            .store_swarm_metric(&SwarmMetric::new("s", MetricType::SwarmHealth, 1.0).at(old))
            .unwrap();

        let report = store.cleanup_old_metrics(30).unwrap();
        assert_eq!(
            (
                report.task_metrics,
                report.agent_metrics,
                report.swarm_metrics
            ),
            (8_000, 1, 1)
        );
        assert_eq!(report.total(), 8_002);
        assert_eq!(
            serde_json::to_value(report).unwrap(),
            json!({"task_metrics": 8000, "agent_metrics": 1, "swarm_metrics": 1})
        );
        assert_eq!(
            store
                .get_task_metrics(&Filter::new(), 100_000)
                .unwrap()
                .len(),
            4_000
        );
        assert_eq!(store.cleanup_old_metrics(30).unwrap().total(), 0);
        store.vacuum().unwrap();
        assert_eq!(
            store.get_agent_metrics(&Filter::new(), 10).unwrap().len(),
            1
        );
    }
}

#[test]
fn mixed_batches_are_all_or_nothing_and_stream_back_oldest_first() {
    for backend in stores() {
        let store = &backend.store;
        let mut batch = swarm_metrics::MetricBatch {
            tasks: (0..3)
                .map(|i| task(&format!("t{i}"), "a", 5, TaskResult::Success, 2 - i))
                .collect(),
            agents: vec![AgentMetric::new("a", MetricType::AgentThroughput, 1.0).at(t0())],
            swarms: vec![SwarmMetric::new("s", MetricType::SwarmHealth, 0.9).at(t0())],
        };
        batch
            .swarms
            .push(SwarmMetric::new("s", MetricType::SwarmHealth, f64::NAN));
        assert!(store.store_batch(&batch).is_err());
        assert_eq!(
            store.stats().unwrap().task_metrics.rows,
            0,
            "nothing of a bad batch is stored"
        );
        batch.swarms.pop();
        let report = store.store_batch(&batch).unwrap();
        assert_eq!(
            (
                report.new_tasks,
                report.agent_ids.len(),
                report.swarm_ids.len()
            ),
            (3, 1, 1)
        );

        let mut seen = Vec::new();
        store
            .for_each_task_metric(&Filter::new(), |t| {
                seen.push(t.task_id);
                std::ops::ControlFlow::<()>::Continue(())
            })
            .unwrap();
        assert_eq!(seen, ["t2", "t1", "t0"], "oldest first");
        let mut agents = 0;
        store
            .for_each_agent_metric(&Filter::new(), |_| {
                agents += 1;
                std::ops::ControlFlow::<()>::Continue(())
            })
            .unwrap();
        let mut swarms = 0;
        store
            .for_each_swarm_metric(&Filter::new(), |_| {
                swarms += 1;
                std::ops::ControlFlow::<()>::Continue(())
            })
            .unwrap();
        assert_eq!((agents, swarms), (1, 1));

        let stats = store.stats().unwrap();
        assert_eq!(stats.task_metrics.rows, 3);
        assert_eq!(stats.task_metrics.oldest, Some(t0()));
        assert_eq!(stats.task_metrics.newest, Some(t0() + Duration::minutes(2)));
        assert_eq!(stats.schema_version, store.schema_version().unwrap());
        assert!(stats.file_size > 0);
        // The file's own version and integrity check.
        if backend.backend == "SQLite" {
            assert_eq!(stats.schema_version, swarm_metrics::SCHEMA_VERSION);
            assert!(store.integrity_check().unwrap().is_empty());
        }
    }
}

#[test]
fn counting_old_metrics_matches_what_cleanup_deletes() {
    for backend in stores() {
        let store = &backend.store;
        let now = swarm_metrics::now();
        store
            .store_task_metrics(&[
                TaskMetric::new("old", "a", 1, TaskResult::Success).at(now - Duration::days(10)),
                TaskMetric::new("new", "a", 1, TaskResult::Success).at(now - Duration::days(1)),
            ])
            .unwrap();
        let counted = store.count_old_metrics(5).unwrap();
        assert_eq!(counted.task_metrics, 1);
        assert_eq!(store.cleanup_old_metrics(5).unwrap(), counted);
    }
}

#[test]
fn rows_on_both_sides_of_the_index_watermark_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let store = MetricsStorage::builder(&path)
        .index_batch_rows(2)
        .open()
        .unwrap();
    let at = Utc.with_ymd_and_hms(2025, 5, 1, 12, 0, 0).unwrap();
    let stored = |id: &str, when: DateTime<Utc>| {
        let t = TaskMetric::new(id, "a", 10, TaskResult::Success)
            .swarm("s")
            .at(when);
        assert!(store.store_task_metric(&t).unwrap());
    };
    // Two single stores fill a batch: both join the index.
    stored("t1", at);
    stored("t2", at);
    assert_eq!(index_state(&path), (at.timestamp_micros(), 0));
    // At the watermark and before it: indexed at once.
    stored("t3", at);
    stored("t4", at - Duration::minutes(1));
    // After it: waits.
    stored("t5", at + Duration::minutes(1));
    assert_eq!(index_state(&path), (at.timestamp_micros(), 0));

    let ids = |filter: Filter| -> Vec<String> {
        let mut ids: Vec<String> = store
            .get_task_metrics(&filter, 100)
            .unwrap()
            .into_iter()
            .map(|t| t.task_id)
            .collect();
        ids.sort();
        ids
    };
    let all = ["t1", "t2", "t3", "t4", "t5"];
    assert_eq!(ids(Filter::new().agent("a")), all);
    assert_eq!(ids(Filter::new().swarm("s")), all);
    assert_eq!(
        store.success_rate(&Filter::new().agent("a")).unwrap().total,
        5
    );

    // A batch of an index group or more (here 2) is indexed at once, with
    // what waited before it.
    let batch: Vec<_> = (0..64)
        .map(|i| {
            TaskMetric::new(format!("b{i}"), "a", 10, TaskResult::Success)
                .at(at + Duration::minutes(2 + i))
        })
        .collect();
    assert_eq!(store.store_task_metrics(&batch).unwrap(), 64);
    let newest = (at + Duration::minutes(65)).timestamp_micros();
    assert_eq!(index_state(&path), (newest, 0));
    assert_eq!(
        store.success_rate(&Filter::new().agent("a")).unwrap().total,
        69
    );

    // Closing indexes whatever still waits.
    let last = at + Duration::minutes(70);
    stored("t6", last);
    store.close().unwrap();
    assert_eq!(index_state(&path), (last.timestamp_micros(), 0));
}

/// A stream of all three kinds, `n` of each, a second apart.
fn stream_records(n: i64) -> Vec<swarm_metrics::Parsed> {
    use swarm_metrics::Parsed;
    (0..n)
        .flat_map(|i| {
            let at = t0() + Duration::seconds(i);
            [
                Parsed::Task(
                    TaskMetric::new(format!("t{i}"), "a", i as u64, TaskResult::Success).at(at),
                ),
                Parsed::Agent(AgentMetric::new("a", MetricType::AgentThroughput, i as f64).at(at)),
                Parsed::Swarm(SwarmMetric::new("s", MetricType::SwarmHealth, 0.5).at(at)),
            ]
        })
        .collect()
}

fn counts(store: &MetricsStorage) -> [u64; 3] {
    [MetricKind::Task, MetricKind::Agent, MetricKind::Swarm].map(|kind| {
        store
            .aggregate_metrics(kind, AggregationType::Count, &Filter::new())
            .unwrap()
            .count
    })
}

#[test]
fn a_stream_is_stored_whole_and_a_second_time_only_counted() {
    for backend in stores() {
        let store = &backend.store;
        let records = stream_records(1_500);
        let report = store.store_stream(records.iter().cloned().map(Ok)).unwrap();
        assert_eq!(
            (
                report.tasks.stored,
                report.agent_metrics.stored,
                report.swarm_metrics.stored
            ),
            (1_500, 1_500, 1_500)
        );
        assert_eq!(report.duplicates(), 0);
        assert_eq!(counts(store), [1_500; 3]);
        let sum = store
            .aggregate_metrics(MetricKind::Task, AggregationType::Sum, &Filter::new())
            .unwrap();
        assert_eq!(sum.value, Some((0..1_500).sum::<i64>() as f64));

        let again = store.store_stream(records.into_iter().map(Ok)).unwrap();
        assert_eq!((again.stored(), again.duplicates()), (0, 4_500));
        assert_eq!(counts(store), [1_500; 3]);
    }
}

#[test]
fn a_stream_with_a_bad_record_or_an_error_stores_nothing() {
    for backend in stores() {
        let store = &backend.store;
        let mut records = stream_records(1_200);
        // Past the first chunk the writer has already written.
        records[3_000] =
            swarm_metrics::Parsed::Agent(AgentMetric::new("", MetricType::AgentThroughput, 1.0));
        let err = store
            .store_stream(records.iter().cloned().map(Ok))
            .unwrap_err();
        assert!(err.is_invalid_input(), "{err}");
        assert!(
            err.to_string().contains("record 3000 of the stream"),
            "{err}"
        );
        assert_eq!(counts(store), [0; 3]);

        // An error of the stream's own ends it the same way, and is returned.
        let failing = stream_records(1_200)
            .into_iter()
            .map(Ok)
            .take(2_500)
            .chain(std::iter::once(Err(Error::Internal("the source failed"))));
        let err = store.store_stream(failing).unwrap_err();
        assert!(matches!(err, Error::Internal("the source failed")), "{err}");
        assert_eq!(counts(store), [0; 3]);

        // The store is fine afterwards, and the interned ids hold.
        store
            .store_stream(stream_records(10).into_iter().map(Ok))
            .unwrap();
        assert_eq!(counts(store), [10; 3]);
        assert_eq!(
            store
                .get_task_metrics(&Filter::new().agent("a"), 100)
                .unwrap()
                .len(),
            10
        );
    }
}

/// Stores from other threads wait while a stream is written, and go in
/// after it.
#[test]
fn stores_wait_for_a_stream_and_then_go_in() {
    let store = MetricsStorage::temporary().unwrap();
    let records = stream_records(3_000);
    std::thread::scope(|s| {
        let others = s.spawn(|| {
            for i in 0..200 {
                let at = t0() - Duration::seconds(i + 1);
                store
                    .store_task_metric(
                        &TaskMetric::new(format!("other{i}"), "b", 1, TaskResult::Failure).at(at),
                    )
                    .unwrap();
            }
        });
        store.store_stream(records.into_iter().map(Ok)).unwrap();
        others.join().unwrap();
    });
    assert_eq!(counts(&store), [3_200, 3_000, 3_000]);
    let rate = store.success_rate(&Filter::new()).unwrap();
    assert_eq!((rate.success, rate.failure), (3_000, 200));
}

/// Callers need not name chrono or serde_json in their own manifest: the
/// crate's own versions come with it.
#[test]
fn chrono_and_serde_json_come_with_the_crate() {
    use swarm_metrics::{chrono, serde_json};
    let store = MetricsStorage::temporary().unwrap();
    let at = chrono::Utc::now() - chrono::Duration::minutes(5);
    let metric = AgentMetric::new("a", MetricType::AgentThroughput, 2.0)
        .metadata(serde_json::json!({"source": "re-exported"}))
        .at(at);
    store.store_agent_metric(&metric).unwrap();
    let back = store
        .get_agent_metrics(&Filter::new(), 1)
        .unwrap()
        .remove(0);
    assert_eq!(
        back.metric.metadata,
        Some(serde_json::json!({"source": "re-exported"}))
    );
}

/// A store called from inside a stream that is being stored into the same
/// store is refused with an error instead of waiting for the stream
/// forever; reads from inside the stream work.
#[test]
fn a_store_from_inside_a_stream_is_refused_not_hung() {
    let store = MetricsStorage::temporary().unwrap();
    let mut inner = None;
    let mut read_inside = None;
    let records = stream_records(3)
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            if i == 1 {
                inner = Some(store.store_task_metric(&TaskMetric::new(
                    "inner",
                    "a",
                    1,
                    TaskResult::Success,
                )));
                read_inside = Some(
                    store
                        .get_task_metrics(&Filter::new(), 10)
                        .map(|rows| rows.len()),
                );
            }
            Ok(record)
        });
    let report = store.store_stream(records).unwrap();
    assert_eq!(report.stored(), 9);
    let err = inner.unwrap().unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    assert!(err.to_string().contains("inside a stream"), "{err}");
    // The read saw the store as it was before the stream.
    assert_eq!(read_inside.unwrap().unwrap(), 0);
    // Afterwards the same thread stores as usual.
    assert!(store
        .store_task_metric(&TaskMetric::new("after", "a", 1, TaskResult::Success))
        .unwrap());
    assert_eq!(counts(&store), [4, 3, 3]);
}

#[test]
fn a_limit_that_cuts_one_microsecond_keeps_its_largest_task_ids() {
    for backend in stores() {
        let store = &backend.store;
        // Six tasks of one microsecond, stored out of task-id order, one at
        // a time and past the index watermark, between two others.
        let mut model = vec![
            task("before", "a", 1, TaskResult::Success, -1),
            task("after", "a", 1, TaskResult::Success, 1),
        ];
        model.extend(
            ["m", "c", "x", "a", "q", "f"]
                .iter()
                .map(|id| task(id, "a", 1, TaskResult::Failure, 0)),
        );
        for t in &model {
            store.store_task_metric(t).unwrap();
        }
        for limit in 1..=model.len() + 1 {
            for filter in [
                Filter::new(),
                Filter::new().agent("a"),
                Filter::new().range(TimeRange::new(t0(), t0()).unwrap()),
            ] {
                let matching: Vec<_> = model
                    .iter()
                    .filter(|t| filter.time_range.is_none_or(|r| r.contains(t.timestamp)))
                    .cloned()
                    .collect();
                assert_eq!(
                    store.get_task_metrics(&filter, limit).unwrap(),
                    common::newest_tasks_first(&matching, limit),
                    "{filter:?} limit {limit}"
                );
            }
        }
    }
}

/// `parse_record` reads a line straight into its record when it can, and
/// through `parse_metric` otherwise: the answer (or the error) is the
/// same either way.
#[test]
fn parse_record_answers_as_parse_metric_does() {
    use swarm_metrics::{parse_metric, parse_record, MetricKind};
    let lines = [
        r#"{"kind":"task","task_id":"t","agent_id":"a","duration_ms":5,"result":"success","timestamp":"2025-06-01T00:00:00.123456Z"}"#,
        r#"{"kind":"task","task_id":"t","agent_id":"a","duration_ms":5,"result":"failure","swarm_id":null,"tokens_used":null,"timestamp":"2025-06-01T00:00:00Z"}"#,
        r#"{"task_id":"t","kind":"task","agent_id":"a","duration_ms":5,"result":"timeout","timestamp":"2025-06-01T00:00:00Z","tokens_used":3,"files_changed":2,"swarm_id":"s"}"#,
        r#"{"kind":"task","task_id":"t","agent_id":"a","agent_id":"b","duration_ms":5,"result":"success","timestamp":"2025-06-01T00:00:00Z"}"#,
        r#"{"kind":"task","task_id":"","agent_id":"a","duration_ms":5,"result":"success"}"#,
        r#"{"kind":"task","task_id":"t","agent_id":"a","duration_ms":-5,"result":"success"}"#,
        r#"{"kind":"task","task_id":"t","agent_id":"a","duration_ms":5,"result":"maybe"}"#,
        r#"{"kind":"task","agent_id":"a","duration_ms":5,"result":"success"}"#,
        r#"{"kind":"agent","agent_id":"a","metric_type":"agent_throughput","value":1.5,"metadata":{"k":1},"timestamp":"2025-06-01T00:00:00Z"}"#,
        r#"{"kind":"agent","agent_id":"a","metric_type":"swarm_health","value":1.5,"timestamp":"2025-06-01T00:00:00Z"}"#,
        r#"{"kind":"swarm","swarm_id":"s","metric_type":"swarm_health","value":0.5,"metadata":null,"timestamp":"2025-06-01T00:00:00Z"}"#,
        r#"{"kind":"swarm","swarm_id":"s","metric_type":"swarm_health","value":0.5,"metadata":[1],"timestamp":"2025-06-01T00:00:00Z"}"#,
    ];
    for line in lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let kind: MetricKind = value["kind"].as_str().unwrap().parse().unwrap();
        let slow = parse_metric(kind, &value);
        let fast = parse_record(line);
        match (&fast, &slow) {
            (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{line}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{line}"),
            _ => panic!("{line}: {fast:?} vs {slow:?}"),
        }
    }
    for (line, field) in [
        ("{not json", "record"),
        (r#"{"task_id":"t"}"#, "kind"),
        (r#"{"kind":7}"#, "kind"),
        (r#"{"kind":"gauge"}"#, "kind"),
    ] {
        match parse_record(line) {
            Err(swarm_metrics::Error::InvalidInput { field: f, .. }) => {
                assert_eq!(f, field, "{line}")
            }
            other => panic!("{line}: {other:?}"),
        }
    }
}
