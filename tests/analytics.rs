//! Grouped results, time series, rankings, summaries and outliers against
//! plain models of the same records.

mod common;

use common::server::{stores, TestStore};
use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use common::*;
use proptest::prelude::*;
use swarm_metrics::{
    AgentMetric, AggregationType, BucketValue, EmptyBuckets, Error, Filter, GroupBy, Interval,
    IntervalMethod, Measure, MetricKind, MetricType, MetricsStorage, Order, RankBy, SuccessRate,
    TaskMetric, TaskResult, TimeRange,
};

/// The group key a task falls in.
type KeyOf = fn(&TaskMetric) -> Option<String>;

fn rate_of<'a>(tasks: impl IntoIterator<Item = &'a TaskMetric>) -> SuccessRate {
    let mut rate = SuccessRate::default();
    for t in tasks {
        rate.add(t.result, 1);
    }
    rate
}

fn bucket_start(t: DateTime<Utc>, width: Duration) -> i64 {
    let w = width.num_microseconds().unwrap();
    t.timestamp_micros().div_euclid(w) * w
}

/// A store of every backend holding `tasks` (stored `chunk` at a time),
/// and the model of them.
fn setup(tasks: &[TaskMetric], chunk: usize) -> (Vec<TestStore>, Vec<TaskMetric>) {
    let backends = stores();
    for backend in &backends {
        store_in_chunks(&backend.store, tasks, chunk);
    }
    (backends, task_model(tasks))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn groups_match_the_model(
        tasks in prop::collection::vec(task_strategy(), 0..80),
        chunk in 1..20usize,
        filter in task_filter_strategy(),
    ) {
        let (backends, model) = setup(&tasks, chunk);
        for backend in &backends {
            let store = &backend.store;
            let matching: Vec<&TaskMetric> = model.iter().filter(|t| task_matches(&filter, t)).collect();
            let keys: [(GroupBy, KeyOf); 3] = [
                (GroupBy::Agent, |t| Some(t.agent_id.clone())),
                (GroupBy::Swarm, |t| t.swarm_id.clone()),
                (GroupBy::Result, |t| Some(t.result.to_string())),
            ];
            for (group_by, key_of) in keys {
                let mut groups: BTreeMap<Option<String>, Vec<&TaskMetric>> = BTreeMap::new();
                for t in &matching {
                    groups.entry(key_of(t)).or_default().push(t);
                }
                for aggregation in [AggregationType::Count, AggregationType::Sum, AggregationType::Max, AggregationType::Stddev] {
                    let got = store.aggregate_by(MetricKind::Task, aggregation, group_by, &filter).unwrap();
                    prop_assert_eq!(got.len(), groups.len());
                    for (g, (key, members)) in got.iter().zip(&groups) {
                        prop_assert_eq!(&g.key, key);
                        let values: Vec<f64> = members.iter().map(|t| t.duration_ms as f64).collect();
                        prop_assert_eq!(g.value.count, values.len() as u64);
                        assert_close(g.value.value, model_aggregate(aggregation, &values), &format!("{group_by:?} {aggregation}"));
                    }
                }
                let got = store.success_rate_by(group_by, &filter).unwrap();
                prop_assert_eq!(got.len(), groups.len());
                for g in &got {
                    prop_assert_eq!(g.value, rate_of(groups[&g.key].iter().copied()));
                }
                let low = |g: &swarm_metrics::Grouped<SuccessRate>| g.value.interval.map_or(-1.0, |ci| ci.low);
                prop_assert!(got.windows(2).all(|w| low(&w[0]) >= low(&w[1])), "best lower bound first");
            }
        }
    }

    #[test]
    fn series_match_the_model(
        tasks in prop::collection::vec(task_strategy(), 0..80),
        width_minutes in 1..45i64,
        filter in task_filter_strategy(),
        q in 0.0..=1.0f64,
    ) {
        let (backends, model) = setup(&tasks, 10);
        for backend in &backends {
            let store = &backend.store;
            let width = Duration::minutes(width_minutes);
            let mut buckets: BTreeMap<i64, Vec<&TaskMetric>> = BTreeMap::new();
            for t in model.iter().filter(|t| task_matches(&filter, t)) {
                buckets.entry(bucket_start(t.timestamp, width)).or_default().push(t);
            }

            let sums = store.series(MetricKind::Task, Measure::Aggregate(AggregationType::Sum), width, &filter, EmptyBuckets::Skip).unwrap();
            prop_assert_eq!(sums.len(), buckets.len());
            for (b, (start, members)) in sums.iter().zip(&buckets) {
                prop_assert_eq!(b.start.timestamp_micros(), *start);
                let BucketValue::Aggregate(a) = b.value else { panic!("not an aggregate") };
                prop_assert_eq!(a.count, members.len() as u64);
                // SQLite sums integers exactly, then converts.
                prop_assert_eq!(a.value, Some(members.iter().map(|t| u128::from(t.duration_ms)).sum::<u128>() as f64));
            }

            let rates = store.series(MetricKind::Task, Measure::SuccessRate, width, &filter, EmptyBuckets::Skip).unwrap();
            for (b, members) in rates.iter().zip(buckets.values()) {
                prop_assert_eq!(b.value, BucketValue::SuccessRate(rate_of(members.iter().copied())));
            }

            let percentiles = store.series(MetricKind::Task, Measure::Percentile(q), width, &filter, EmptyBuckets::Skip).unwrap();
            for (b, members) in percentiles.iter().zip(buckets.values()) {
                let BucketValue::Percentile(p) = b.value else { panic!("not a percentile") };
                let values: Vec<f64> = members.iter().map(|t| t.duration_ms as f64).collect();
                assert_close(p.value, model_quantile(&values, q), "bucket percentile");
            }

            let filled = store.series(MetricKind::Task, Measure::SuccessRate, width, &filter, EmptyBuckets::Zero).unwrap();
            prop_assert!(filled.windows(2).all(|w| w[1].start - w[0].start == width), "no gaps");
            prop_assert!(filled.len() >= buckets.len());
            let empty = filled.iter().filter(|b| b.value == BucketValue::SuccessRate(SuccessRate::default())).count();
            prop_assert_eq!(filled.len() - empty, buckets.len());
            if let (Some(range), false) = (filter.time_range, filled.is_empty()) {
                prop_assert_eq!(filled[0].start.timestamp_micros(), bucket_start(range.start(), width));
                prop_assert_eq!(filled[filled.len() - 1].start.timestamp_micros(), bucket_start(range.end(), width));
            }
        }
    }

    #[test]
    fn rankings_summaries_and_outliers_match_the_model(
        tasks in prop::collection::vec(task_strategy(), 0..80),
        filter in task_filter_strategy(),
        n in 1..6usize,
        min_tasks in 0..4u64,
    ) {
        let (backends, model) = setup(&tasks, 7);
        for backend in &backends {
            let store = &backend.store;
            let matching: Vec<&TaskMetric> = model.iter().filter(|t| task_matches(&filter, t)).collect();
            let mut by_agent: BTreeMap<&str, Vec<&TaskMetric>> = BTreeMap::new();
            for t in &matching {
                by_agent.entry(&t.agent_id).or_default().push(t);
            }

            // Rankings: the scores, filtered by task count, in order.
            for (by, best_first) in [
                (RankBy::SuccessRate, true),
                (RankBy::SuccessRate, false),
                (RankBy::RawSuccessRate, true),
                (RankBy::AvgDuration, true),
                (RankBy::AvgTokens, false),
            ] {
                // (agent, score, the key ordered on, the interval)
                let mut expected: Vec<(String, f64, f64, Interval)> = by_agent
                    .iter()
                    .filter(|(_, ts)| ts.len() as u64 >= min_tasks.max(1))
                    .map(|(a, ts)| {
                        let n = ts.len() as f64;
                        let successes = ts.iter().filter(|t| t.result == TaskResult::Success).count() as u64;
                        let ci = Interval::for_proportion(successes, ts.len() as u64, 0.95, IntervalMethod::Wilson).unwrap().unwrap();
                        let score = match by {
                            RankBy::SuccessRate | RankBy::RawSuccessRate => successes as f64 / n,
                            RankBy::AvgDuration => ts.iter().map(|t| t.duration_ms as f64).sum::<f64>() / n,
                            _ => ts.iter().map(|t| t.tokens_used as f64).sum::<f64>() / n,
                        };
                        // Success rates rank by the bound of their interval on
                        // the side asked for; the rest by the score.
                        let key = match (by, best_first) {
                            (RankBy::SuccessRate, true) => ci.low,
                            (RankBy::SuccessRate, false) => ci.high,
                            _ => score,
                        };
                        (a.to_string(), score, key, ci)
                    })
                    .collect();
                let higher_is_better = matches!(by, RankBy::SuccessRate | RankBy::RawSuccessRate);
                expected.sort_by(|a, b| {
                    let o = if higher_is_better == best_first {
                        b.2.total_cmp(&a.2).then(b.1.total_cmp(&a.1))
                    } else {
                        a.2.total_cmp(&b.2).then(a.1.total_cmp(&b.1))
                    };
                    o.then_with(|| a.0.cmp(&b.0))
                });
                expected.truncate(n);
                let got = store.rank_agents(by, if best_first { Order::BestFirst } else { Order::WorstFirst }, n, min_tasks, &filter).unwrap();
                prop_assert_eq!(got.len(), expected.len());
                for (g, (agent, score, _, ci)) in got.iter().zip(&expected) {
                    prop_assert_eq!(&g.agent_id, agent);
                    assert_close(Some(g.score), Some(*score), &format!("{by:?}"));
                    prop_assert_eq!(g.interval, Some(*ci));
                }
            }

            // The slowest tasks.
            let mut slowest: Vec<&TaskMetric> = matching.clone();
            slowest.sort_by(|a, b| b.duration_ms.cmp(&a.duration_ms).then(b.timestamp.cmp(&a.timestamp)));
            let got = store.slowest_tasks(n, &filter).unwrap();
            prop_assert_eq!(
                got.iter().map(|t| t.duration_ms).collect::<Vec<_>>(),
                slowest.iter().take(n).map(|t| t.duration_ms).collect::<Vec<_>>()
            );

            // The summary.
            let summary = store.summary(&filter).unwrap();
            let durations: Vec<f64> = matching.iter().map(|t| t.duration_ms as f64).collect();
            prop_assert_eq!(summary.tasks, matching.len() as u64);
            prop_assert_eq!(summary.success_rate, rate_of(matching.iter().copied()));
            prop_assert_eq!(summary.tokens_total, matching.iter().map(|t| t.tokens_used).sum::<u64>());
            prop_assert_eq!(summary.files_changed_total, matching.iter().map(|t| t.files_changed).sum::<u64>());
            assert_close(summary.duration_ms.avg, model_aggregate(AggregationType::Avg, &durations), "avg");
            assert_close(summary.duration_ms.p95, model_quantile(&durations, 0.95), "p95");
            assert_close(summary.duration_ms.max, model_aggregate(AggregationType::Max, &durations), "max");

            // Outliers: outside their agent's Tukey fences.
            let mut expected = 0;
            for ts in by_agent.values() {
                let ds: Vec<f64> = ts.iter().map(|t| t.duration_ms as f64).collect();
                let (q1, q3) = (model_quantile(&ds, 0.25).unwrap(), model_quantile(&ds, 0.75).unwrap());
                let (lo, hi) = (q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1));
                expected += ds.iter().filter(|d| **d < lo || **d > hi).count();
            }
            let outliers = store.duration_outliers(&filter).unwrap();
            prop_assert_eq!(outliers.len(), expected);
            for o in &outliers {
                let d = o.task.duration_ms as f64;
                prop_assert!(d < o.low_fence || d > o.high_fence);
            }
        }
    }
}

#[test]
fn throughput_is_tasks_per_hour_of_the_range() {
    for backend in stores() {
        let store = &backend.store;
        let start = base();
        let tasks: Vec<_> = (0..30)
            .map(|i| {
                let agent = if i < 20 { "busy" } else { "idle" };
                TaskMetric::new(format!("t{i}"), agent, 10, TaskResult::Success)
                    .at(start + Duration::minutes(i))
            })
            .collect();
        store.store_task_metrics(&tasks).unwrap();
        let range = TimeRange::new(start, start + Duration::hours(2)).unwrap();
        let top = store
            .rank_agents(
                RankBy::Throughput,
                Order::BestFirst,
                5,
                1,
                &Filter::new().range(range),
            )
            .unwrap();
        assert_eq!(top[0].agent_id, "busy");
        assert_eq!(top[0].score, 10.0);
        assert_eq!(top[1].score, 5.0);
        let bottom = store
            .rank_agents(
                RankBy::Throughput,
                Order::WorstFirst,
                1,
                15,
                &Filter::new().range(range),
            )
            .unwrap();
        assert_eq!(bottom.len(), 1, "min_tasks leaves only the busy agent");
    }
}

#[test]
fn bad_arguments_are_refused() {
    for backend in stores() {
        let store = &backend.store;
        let field = |e: Error| match e {
            Error::InvalidInput { field, .. } => field,
            other => panic!("{other:?}"),
        };
        let all = Filter::new();
        assert_eq!(
            field(store.percentile(MetricKind::Task, 1.5, &all).unwrap_err()),
            "q"
        );
        assert_eq!(
            field(store.percentile(MetricKind::Task, -0.1, &all).unwrap_err()),
            "q"
        );
        assert_eq!(
            field(
                store
                    .series(
                        MetricKind::Task,
                        Measure::Percentile(2.0),
                        Duration::hours(1),
                        &all,
                        EmptyBuckets::Skip
                    )
                    .unwrap_err()
            ),
            "q"
        );
        assert_eq!(
            field(
                store
                    .series(
                        MetricKind::Task,
                        Measure::SuccessRate,
                        Duration::zero(),
                        &all,
                        EmptyBuckets::Skip
                    )
                    .unwrap_err()
            ),
            "width"
        );
        assert_eq!(
            field(
                store
                    .series(
                        MetricKind::Agent,
                        Measure::SuccessRate,
                        Duration::hours(1),
                        &all,
                        EmptyBuckets::Skip
                    )
                    .unwrap_err()
            ),
            "kind"
        );
        assert_eq!(
            field(
                store
                    .rank_agents(RankBy::SuccessRate, Order::BestFirst, 0, 0, &all)
                    .unwrap_err()
            ),
            "n"
        );
        assert_eq!(field(store.slowest_tasks(0, &all).unwrap_err()), "n");
        assert_eq!(
            field(
                store
                    .aggregate_by(
                        MetricKind::Agent,
                        AggregationType::Avg,
                        GroupBy::Result,
                        &all
                    )
                    .unwrap_err()
            ),
            "group_by"
        );
        assert_eq!(
            field(
                store
                    .success_rate_by(GroupBy::MetricType, &all)
                    .unwrap_err()
            ),
            "group_by"
        );
        let wide =
            Filter::new().range(TimeRange::new(base(), base() + Duration::days(3650)).unwrap());
        assert_eq!(
            field(
                store
                    .series(
                        MetricKind::Task,
                        Measure::SuccessRate,
                        Duration::seconds(1),
                        &wide,
                        EmptyBuckets::Zero
                    )
                    .unwrap_err()
            ),
            "width"
        );
    }
}

#[test]
fn agent_metrics_group_by_metric_type_and_bucket() {
    for backend in stores() {
        let store = &backend.store;
        let metrics: Vec<_> = (0..12)
            .map(|i| {
                let ty = if i % 3 == 0 {
                    MetricType::AgentErrorCount
                } else {
                    MetricType::AgentThroughput
                };
                AgentMetric::new("a", ty, i as f64).at(base() + Duration::minutes(10 * i))
            })
            .collect();
        store.store_agent_metrics(&metrics).unwrap();
        let groups = store
            .aggregate_by(
                MetricKind::Agent,
                AggregationType::Count,
                GroupBy::MetricType,
                &Filter::new(),
            )
            .unwrap();
        let counts: Vec<_> = groups
            .iter()
            .map(|g| (g.key.clone().unwrap(), g.value.count))
            .collect();
        assert_eq!(
            counts,
            [
                ("agent_error_count".to_owned(), 4),
                ("agent_throughput".to_owned(), 8)
            ]
        );
        let hourly = store
            .series(
                MetricKind::Agent,
                Measure::Aggregate(AggregationType::Max),
                Duration::hours(1),
                &Filter::new(),
                EmptyBuckets::Skip,
            )
            .unwrap();
        assert_eq!(hourly.len(), 2);
        let BucketValue::Aggregate(max) = hourly[0].value else {
            panic!("{:?}", hourly[0].value)
        };
        assert_eq!(
            (max.aggregation, max.metric_type, max.count, max.value),
            (AggregationType::Max, None, 6, Some(5.0))
        );
    }
}

/// One success out of one does not outrank 99 out of 100 by default, but
/// does by the raw rate; the worst first by default is the agent whose
/// interval says it is surely bad, not the one with too few tasks to say.
#[test]
fn success_rankings_weigh_the_number_of_tasks() {
    for backend in stores() {
        let store = &backend.store;
        let mut tasks = vec![TaskMetric::new("lucky-1", "lucky", 10, TaskResult::Success)];
        for i in 0..100 {
            let result = if i == 0 {
                TaskResult::Failure
            } else {
                TaskResult::Success
            };
            tasks.push(TaskMetric::new(format!("steady-{i}"), "steady", 10, result));
        }
        for i in 0..50 {
            let result = if i < 20 {
                TaskResult::Success
            } else {
                TaskResult::Failure
            };
            tasks.push(TaskMetric::new(format!("poor-{i}"), "poor", 10, result));
        }
        tasks.push(TaskMetric::new(
            "unlucky-1",
            "unlucky",
            10,
            TaskResult::Failure,
        ));
        store.store_task_metrics(&tasks).unwrap();
        let order = |by, best_first| -> Vec<String> {
            store
                .rank_agents(by, best_first, 10, 0, &Filter::new())
                .unwrap()
                .into_iter()
                .map(|r| r.agent_id)
                .collect()
        };
        // Lower bounds: steady 94.6%, poor (20 of 50) 27.6%, lucky 20.7%.
        assert_eq!(
            order(RankBy::SuccessRate, Order::BestFirst),
            ["steady", "poor", "lucky", "unlucky"]
        );
        assert_eq!(
            order(RankBy::RawSuccessRate, Order::BestFirst),
            ["lucky", "steady", "poor", "unlucky"]
        );
        // Worst first, by upper bounds: "poor" (40% of 50, surely below 54%)
        // before "unlucky" (0 of 1, which could be anything up to 79%).
        assert_eq!(
            order(RankBy::SuccessRate, Order::WorstFirst),
            ["poor", "unlucky", "steady", "lucky"]
        );
        let lucky = store
            .rank_agents(
                RankBy::RawSuccessRate,
                Order::BestFirst,
                1,
                0,
                &Filter::new(),
            )
            .unwrap()
            .remove(0);
        let ci = lucky.interval.unwrap();
        assert_eq!(
            (lucky.score, (ci.low * 1000.0).round(), ci.high),
            (1.0, 207.0, 1.0)
        );
    }
}

/// Tasks of two agents whose counts and durations are the reference cases
/// of `scripts/hypothesis_reference.py`: 7 of 8 against 3 of 10 (Fisher's
/// test), durations [10, 20, 20, 30, 40, 40, 40, 50] against
/// [20, 30, 30, 60, 70, 70, 80, 90, 100, 110] (Mann–Whitney).
fn comparison_tasks(at: chrono::DateTime<chrono::Utc>) -> Vec<TaskMetric> {
    let a = [10, 20, 20, 30, 40, 40, 40, 50];
    let b = [20, 30, 30, 60, 70, 70, 80, 90, 100, 110];
    let result = |ok: bool| {
        if ok {
            TaskResult::Success
        } else {
            TaskResult::Failure
        }
    };
    let mut tasks = Vec::new();
    for (i, d) in a.iter().enumerate() {
        tasks.push(TaskMetric::new(format!("a{i}"), "agent-a", *d, result(i < 7)).at(at));
    }
    for (i, d) in b.iter().enumerate() {
        tasks.push(TaskMetric::new(format!("b{i}"), "agent-b", *d, result(i < 3)).at(at));
    }
    tasks
}

/// `compare` feeds the tests the counts and durations of each side, and
/// gives the same answer once the tasks are folded into rollups.
#[test]
fn compare_gives_the_reference_answers_before_and_after_retention() {
    for backend in stores() {
        compare_gives_the_reference_answers_before_and_after_retention_in(&backend.store);
    }
}

fn compare_gives_the_reference_answers_before_and_after_retention_in(store: &MetricsStorage) {
    let at = swarm_metrics::now() - Duration::days(10);
    store.store_task_metrics(&comparison_tasks(at)).unwrap();
    let a = Filter::new().agent("agent-a");
    let b = Filter::new().agent("agent-b");
    let before = store.compare(&a, &b).unwrap();
    assert_eq!((before.a.success, before.a.total), (7, 8));
    assert_eq!((before.b.success, before.b.total), (3, 10));
    let rate = before.rate.unwrap();
    assert_eq!(rate.test, swarm_metrics::ProportionTest::FisherExact);
    assert!((rate.difference - (7.0 / 8.0 - 0.3)).abs() < 1e-12);
    assert!(
        (rate.p_value - 2.481831893597e-02).abs() < 1e-10,
        "{rate:?}"
    );
    let duration = before.duration.unwrap();
    assert_eq!(
        (
            duration.median_a,
            duration.median_b,
            duration.median_difference
        ),
        (35.0, 70.0, -35.0)
    );
    assert_eq!(duration.u, 15.0);
    assert!(
        (duration.p_value - 2.840600811982e-02).abs() < 1e-10,
        "{duration:?}"
    );

    // Folded into hourly rollups, which keep the values of small buckets.
    let policy = swarm_metrics::RetentionPolicy {
        raw: Some(Duration::days(1)),
        ..Default::default()
    };
    store.apply_retention(&policy).unwrap();
    assert!(store.get_task_metrics(&a, 10).unwrap().is_empty());
    assert_eq!(store.compare(&a, &b).unwrap(), before);

    // A side without tasks has nothing to compare.
    let none = store.compare(&a, &Filter::new().agent("nobody")).unwrap();
    assert_eq!((none.rate, none.duration), (None, None));
}

/// Over every agent and swarm: the one whose success rate fell and the one
/// whose durations rose are found, with their swarms; the stable ones and
/// the one that got better are not.
#[test]
fn regressions_find_what_got_worse_and_nothing_else() {
    for backend in stores() {
        let store = &backend.store;
        let now = swarm_metrics::now();
        let current = TimeRange::new(now - Duration::hours(24), now).unwrap();
        // Ranges include both ends: the baseline stops just before the current
        // window starts.
        let baseline = TimeRange::new(
            now - Duration::days(8),
            now - Duration::hours(24) - Duration::microseconds(1),
        )
        .unwrap();
        let mut tasks = Vec::new();
        // (agent, swarm, successes of 100 then, durations then, successes of 50
        // now, durations now)
        let agents = [
            ("stable-1", "s1", 90, 100, 45, 100),
            ("stable-2", "s1", 80, 200, 40, 200),
            ("stable-3", "s1", 70, 150, 35, 150),
            ("improving", "s1", 60, 100, 48, 100),
            ("failing", "s2", 95, 100, 20, 100),
            ("slowing", "s3", 90, 100, 45, 300),
        ];
        for (agent, swarm, ok_then, ms_then, ok_now, ms_now) in agents {
            for i in 0..100 {
                let at = baseline.start() + Duration::minutes(90 * i);
                let result = if i < ok_then {
                    TaskResult::Success
                } else {
                    TaskResult::Failure
                };
                tasks.push(
                    TaskMetric::new(
                        format!("{agent}-then-{i}"),
                        agent,
                        ms_then + (i as u64 % 7),
                        result,
                    )
                    .swarm(swarm)
                    .at(at),
                );
            }
            for i in 0..50 {
                let at = current.start() + Duration::minutes(20 * i);
                let result = if i < ok_now {
                    TaskResult::Success
                } else {
                    TaskResult::Failure
                };
                tasks.push(
                    TaskMetric::new(
                        format!("{agent}-now-{i}"),
                        agent,
                        ms_now + (i as u64 % 7),
                        result,
                    )
                    .swarm(swarm)
                    .at(at),
                );
            }
        }
        store.store_task_metrics(&tasks).unwrap();

        let found = store.regressions(current, baseline, 0.05).unwrap();
        let mut what: Vec<(GroupBy, String, swarm_metrics::RegressedMeasure)> = found
            .iter()
            .map(|r| (r.group, r.id.clone(), r.measure))
            .collect();
        what.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        use swarm_metrics::RegressedMeasure::{
            Cost as Pricier, Duration as Slower, SuccessRate as Fell,
        };
        assert_eq!(
            what,
            [
                (GroupBy::Agent, "failing".to_owned(), Fell),
                (GroupBy::Agent, "slowing".to_owned(), Slower),
                (GroupBy::Swarm, "s2".to_owned(), Fell),
                (GroupBy::Swarm, "s3".to_owned(), Slower),
            ]
        );
        for r in &found {
            assert!(r.q_value <= 0.05 && r.p_value <= r.q_value, "{r:?}");
            match r.measure {
                Fell => assert!(r.current < r.baseline),
                Slower | Pricier => assert!(r.current > r.baseline),
            }
        }
        let failing = found.iter().find(|r| r.id == "failing").unwrap();
        assert_eq!((failing.baseline, failing.current), (0.95, 0.4));
        assert!(store
            .regressions(current, baseline, 1.0)
            .unwrap_err()
            .is_invalid_input());

        // Within one swarm: that swarm and its agents alone.
        let within = |swarm: &str| -> Vec<(GroupBy, String)> {
            store
                .regressions_in(&Filter::new().swarm(swarm), current, baseline, 0.05)
                .unwrap()
                .into_iter()
                .map(|r| (r.group, r.id))
                .collect()
        };
        assert_eq!(
            within("s2"),
            [
                (GroupBy::Agent, "failing".to_owned()),
                (GroupBy::Swarm, "s2".to_owned())
            ]
        );
        assert_eq!(within("s1"), []);
        let ranged = Filter::new().swarm("s2").range(current);
        assert!(store
            .regressions_in(&ranged, current, baseline, 0.05)
            .unwrap_err()
            .is_invalid_input());
    }
}

/// `percentile_by` gives each group what `percentile` gives for that group
/// alone, before and after the tasks are folded into rollups; tasks
/// without a swarm form the group with no key.
#[test]
fn percentiles_per_group_match_the_groups_alone() {
    for backend in stores() {
        percentiles_per_group_match_the_groups_alone_in(&backend.store);
    }
}

fn percentiles_per_group_match_the_groups_alone_in(store: &MetricsStorage) {
    let at = swarm_metrics::now() - Duration::days(10);
    let tasks: Vec<TaskMetric> = (0..300u64)
        .map(|i| {
            let task = TaskMetric::new(
                format!("t{i}"),
                format!("a{}", i % 4),
                (i * 37) % 1000,
                TaskResult::Success,
            )
            .at(at + Duration::minutes(i as i64));
            if i % 5 == 0 {
                task
            } else {
                task.swarm(format!("s{}", i % 3))
            }
        })
        .collect();
    store.store_task_metrics(&tasks).unwrap();
    let check = |store: &MetricsStorage| {
        for (group, narrow) in [
            (
                GroupBy::Agent,
                (|f: Filter, k: &str| f.agent(k)) as fn(Filter, &str) -> Filter,
            ),
            (GroupBy::Swarm, |f: Filter, k: &str| f.swarm(k)),
        ] {
            let groups = store
                .percentile_by(MetricKind::Task, 0.95, group, &Filter::new())
                .unwrap();
            let total: u64 = groups.iter().map(|g| g.value.count).sum();
            assert_eq!(total, 300, "{group:?}");
            for g in &groups {
                match &g.key {
                    Some(key) => {
                        let alone = store
                            .percentile(MetricKind::Task, 0.95, &narrow(Filter::new(), key))
                            .unwrap();
                        assert_eq!(g.value, alone, "{group:?} {key}");
                    }
                    None => assert_eq!(g.value.count, 60),
                }
            }
        }
    };
    check(store);
    let policy = swarm_metrics::RetentionPolicy {
        raw: Some(Duration::days(1)),
        ..Default::default()
    };
    store.apply_retention(&policy).unwrap();
    check(store);
}
