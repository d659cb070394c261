//! `task_tallies` (what the Prometheus text is written from) against a
//! plain model of the same records: counts, 128-bit sums, unpriced tasks
//! and durations per agent, swarm, model and result, under every filter
//! shape, before and after retention folds the old rows; on every engine
//! this build has (the file always; PostgreSQL with the `postgres`
//! feature).

mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use common::server::stores;
use proptest::prelude::*;
use swarm_metrics::{
    Error, Filter, MetricsStorage, Price, RetentionPolicy, TaskMetric, TaskResult, TaskTally,
    TimeRange, Usage,
};

/// A case's task: agent, swarm (none, 0 or 1), model and provider
/// (0: none; 1 and 2: "m" from two providers; 3: "n", which has no
/// price; 4: a provider only), result, duration, tokens (huge ones to
/// overflow 64 bits), a bill in micro-dollars, and how old (hours).
type Case = (u8, Option<u8>, u8, u8, u64, u64, Option<u64>, i64);

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        0..3u8,
        prop::option::of(0..2u8),
        0..5u8,
        0..4u8,
        prop_oneof![0..100_000u64, Just(i64::MAX as u64)],
        prop_oneof![0..10_000u64, (i64::MAX as u64 - 10)..=(i64::MAX as u64)],
        prop::option::of(0..1_000_000_000u64),
        // Within the last day, or between 5 and 30 days old: retention
        // below keeps two days raw, so every task is clearly on one side.
        prop_oneof![0..24i64, (5 * 24)..(30 * 24i64)],
    )
}

/// "m" costs one micro-dollar per input token: a priced task's cost is
/// its tokens.
const PRICE: Price = Price {
    input: 1.0,
    output: 0.0,
    cache_read: 0.0,
    cache_write: 0.0,
};

/// A case's task, and the cost the model gives it.
fn task(i: usize, case: &Case, now: DateTime<Utc>) -> (TaskMetric, Option<u64>) {
    let &(agent, swarm, model, result, duration, tokens, bill, hours) = case;
    let result = TaskResult::ALL[usize::from(result)];
    let mut t = TaskMetric::new(format!("t{i}"), format!("agent-{agent}"), duration, result)
        .at(now - Duration::hours(hours) - Duration::seconds(i as i64));
    if let Some(swarm) = swarm {
        t = t.swarm(format!("swarm-{swarm}"));
    }
    let named = match model {
        1 => Some(("m", "p1")),
        2 => Some(("m", "p2")),
        3 => Some(("n", "p1")),
        _ => None,
    };
    let mut usage = Usage::new();
    if model == 4 {
        usage = usage.provider("p3");
    }
    let cost = match (named, bill) {
        (Some((m, p)), bill) => {
            // A priced task costs at most a billion dollars: "m"'s tokens
            // stay below that many micro-dollars when it has no bill.
            let tokens = if m == "m" && bill.is_none() {
                tokens % 1_000_000_000_000
            } else {
                tokens
            };
            usage = usage.model(m).provider(p).input(tokens).output(0);
            t = t.tokens(tokens);
            match bill {
                Some(micros) => {
                    usage = usage.cost(micros as f64 / 1e6);
                    Some(micros)
                }
                None => (m == "m").then_some(tokens),
            }
        }
        (None, Some(micros)) => {
            usage = usage.cost(micros as f64 / 1e6);
            t = t.tokens(tokens);
            Some(micros)
        }
        (None, None) => {
            t = t.tokens(tokens);
            None
        }
    };
    (t.usage(usage), cost)
}

/// The tallies the model gives for the tasks `filter` selects.
fn model_tallies(tasks: &[(TaskMetric, Option<u64>)], filter: &Filter) -> Vec<Expected> {
    let mut out: BTreeMap<Key, Expected> = BTreeMap::new();
    for (t, cost) in tasks {
        let selected = filter.agent_id.as_ref().is_none_or(|a| *a == t.agent_id)
            && filter
                .swarm_id
                .as_ref()
                .is_none_or(|s| Some(s) == t.swarm_id.as_ref())
            && filter.result.is_none_or(|r| r == t.result)
            && filter
                .time_range
                .as_ref()
                .is_none_or(|r| r.start() <= t.timestamp && t.timestamp <= r.end());
        if !selected {
            continue;
        }
        let key = (
            t.agent_id.clone(),
            t.swarm_id.clone(),
            t.usage.model.clone(),
            t.result,
        );
        let e = out.entry(key.clone()).or_insert_with(|| Expected {
            key,
            ..Expected::default()
        });
        e.tasks += 1;
        e.tokens_used += u128::from(t.tokens_used);
        match cost {
            Some(micros) => e.cost_micros += u128::from(*micros),
            None => e.unpriced += 1,
        }
        e.durations_ms.push(t.duration_ms);
    }
    out.into_values()
        .map(|mut e| {
            e.durations_ms.sort_unstable();
            e
        })
        .collect()
}

type Key = (String, Option<String>, Option<String>, TaskResult);

#[derive(Debug, PartialEq)]
struct Expected {
    key: Key,
    tasks: u64,
    tokens_used: u128,
    cost_micros: u128,
    unpriced: u64,
    durations_ms: Vec<u64>,
}

impl Default for Expected {
    fn default() -> Self {
        Expected {
            key: (String::new(), None, None, TaskResult::Success),
            tasks: 0,
            tokens_used: 0,
            cost_micros: 0,
            unpriced: 0,
            durations_ms: Vec::new(),
        }
    }
}

/// What the store answers, in the model's shape (durations sorted).
fn store_tallies(store: &MetricsStorage, filter: &Filter) -> Vec<Expected> {
    store
        .task_tallies(filter)
        .unwrap()
        .into_iter()
        .map(|t: TaskTally| {
            let mut durations_ms = t.durations_ms;
            durations_ms.sort_unstable();
            Expected {
                key: (t.agent_id, t.swarm_id, t.model, t.result),
                tasks: t.tasks,
                tokens_used: t.tokens_used,
                cost_micros: t.cost_micros,
                unpriced: t.unpriced,
                durations_ms,
            }
        })
        .collect()
}

/// Every filter shape a tally is asked with.
fn filters(now: DateTime<Utc>) -> Vec<Filter> {
    vec![
        Filter::new(),
        Filter::new().agent("agent-1"),
        Filter::new().swarm("swarm-0"),
        Filter::new().agent("agent-2").swarm("swarm-1"),
        Filter::new().result(TaskResult::Failure),
        Filter::new().range(TimeRange::new(now - Duration::hours(12), now).unwrap()),
        Filter::new()
            .agent("agent-0")
            .range(TimeRange::new(now - Duration::days(20), now - Duration::days(6)).unwrap()),
    ]
}

fn tallies_match_the_model(store: &MetricsStorage, cases: &[Case], backend: &str) {
    let now = swarm_metrics::now();
    store
        .set_price("m", now - Duration::days(400), PRICE)
        .unwrap();
    let tasks: Vec<(TaskMetric, Option<u64>)> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| task(i, c, now))
        .collect();
    let batch: Vec<TaskMetric> = tasks.iter().map(|(t, _)| t.clone()).collect();
    store.store_task_metrics(&batch).unwrap();
    for filter in filters(now) {
        assert_eq!(
            store_tallies(store, &filter),
            model_tallies(&tasks, &filter),
            "{backend}, {filter:?}"
        );
    }
    // Retention folds what is older than two days: those tasks leave the
    // tallies, which count raw rows.
    let policy = RetentionPolicy {
        raw: Some(Duration::days(2)),
        hourly: None,
        daily: None,
        chunk_rows: 50,
    };
    store.apply_retention(&policy).unwrap();
    let kept: Vec<(TaskMetric, Option<u64>)> = tasks
        .into_iter()
        .filter(|(t, _)| t.timestamp > now - Duration::days(2))
        .collect();
    for filter in filters(now) {
        assert_eq!(
            store_tallies(store, &filter),
            model_tallies(&kept, &filter),
            "{backend} after retention, {filter:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn tallies_are_the_models_before_and_after_retention(
        cases in prop::collection::vec(case_strategy(), 0..120)
    ) {
        for s in stores() {
            tallies_match_the_model(&s.store, &cases, s.backend);
        }
    }
}

#[test]
fn a_filter_for_another_kind_is_refused() {
    for s in stores() {
        let err = s
            .store
            .task_tallies(&Filter::new().metric_type(swarm_metrics::MetricType::AgentDuration))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        assert!(err.to_string().contains("metric_type"), "{err}");
    }
}

#[test]
fn an_empty_store_has_no_tallies() {
    for s in stores() {
        assert!(s.store.task_tallies(&Filter::new()).unwrap().is_empty());
    }
}
