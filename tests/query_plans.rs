//! Every filtered or time-ranged query must be served by an index: a full
//! scan of a metrics table would make queries grow with the whole history
//! instead of with the answer.

use chrono::{Duration, TimeZone, Utc};
use swarm_metrics::{
    AggregationType, Filter, MetricKind, MetricType, MetricsStorage, QueryShape, TaskResult,
    TimeRange,
};

fn range() -> TimeRange {
    let start = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
    TimeRange::new(start, start + Duration::hours(1)).unwrap()
}

/// The plan lines that read a metrics table: the table aliased `m`, or
/// `task_metrics` read inside a subquery. (`SCAN m` over a co-routine reads
/// the subquery's rows, not a table.)
fn metric_steps(plan: &[String]) -> Vec<&String> {
    let m_is_subquery = plan
        .iter()
        .any(|line| line == "CO-ROUTINE m" || line == "MATERIALIZE m");
    plan.iter()
        .filter(|line| {
            let on_m = line.contains(" m ") || line.ends_with(" m");
            (on_m && !m_is_subquery)
                || line.starts_with("SEARCH task_metrics ")
                || line.starts_with("SCAN task_metrics")
        })
        .collect()
}

/// Every step reading the table searches it with one of `indexes`, and
/// each of them is used.
fn assert_indexed_by(
    store: &MetricsStorage,
    kind: MetricKind,
    shape: QueryShape,
    filter: &Filter,
    indexes: &[&str],
) {
    let plan = store.query_plan(kind, shape, filter).unwrap();
    let steps = metric_steps(&plan);
    assert!(!steps.is_empty(), "no step reads the table: {plan:?}");
    for step in &steps {
        assert!(
            step.starts_with("SEARCH "),
            "full scan for {kind} {shape:?} {filter:?}: {plan:?}"
        );
        assert!(
            indexes.iter().any(|index| step.contains(index)),
            "expected one of {indexes:?} for {kind} {shape:?} {filter:?}: {plan:?}"
        );
    }
    for index in indexes {
        assert!(
            steps.iter().any(|step| step.contains(index)),
            "{index} unused for {kind} {shape:?} {filter:?}: {plan:?}"
        );
    }
}

fn assert_indexed(
    store: &MetricsStorage,
    kind: MetricKind,
    shape: QueryShape,
    filter: &Filter,
    index: &str,
) {
    assert_indexed_by(store, kind, shape, filter, &[index]);
}

#[test]
fn task_queries_use_indexes() {
    let store = MetricsStorage::temporary().unwrap();
    let shapes = [
        QueryShape::Rows,
        QueryShape::Aggregate(AggregationType::Avg),
        QueryShape::Aggregate(AggregationType::Stddev),
        QueryShape::SuccessRate,
        QueryShape::Percentile,
    ];
    // Rows not yet in the agent index are read through the primary key
    // from the watermark on; the rest through the agent index (a swarm
    // through the ranges of its agents).
    let by_time = "PRIMARY KEY (timestamp>? AND timestamp<?)";
    let recent = "PRIMARY KEY (timestamp>?)";
    let by_agent = "idx_task_metrics_agent (agent=?)";
    let by_agent_in_range = "idx_task_metrics_agent (agent=? AND timestamp>? AND timestamp<?)";
    let by_task = "idx_task_metrics_task_id (task_id=?)";
    let by_task_in_range = "idx_task_metrics_task_id (task_id=? AND timestamp>? AND timestamp<?)";
    let cases: [(Filter, &[&str]); 9] = [
        (Filter::new().range(range()), &[by_time]),
        (Filter::new().agent("a"), &[by_agent, recent]),
        (
            Filter::new().agent("a").range(range()),
            &[by_agent_in_range, by_time],
        ),
        (
            Filter::new().swarm("s").range(range()),
            &[by_agent_in_range, by_time],
        ),
        (Filter::new().swarm("s"), &[by_agent, recent]),
        // A task id, alone or with anything else, is found through its
        // index (and the rows past the watermark through the time order).
        (Filter::new().task("t"), &[by_task, recent]),
        (
            Filter::new().task("t").range(range()),
            &[by_task_in_range, by_time],
        ),
        (
            Filter::new()
                .task("t")
                .agent("a")
                .result(TaskResult::Success),
            &[by_task, recent],
        ),
        (
            Filter::new().result(TaskResult::Failure).range(range()),
            &[by_time],
        ),
    ];
    for shape in shapes {
        for (filter, indexes) in &cases {
            assert_indexed_by(&store, MetricKind::Task, shape, filter, indexes);
        }
    }
}

#[test]
fn the_check_catches_a_full_scan() {
    // A result-only filter has no index of its own (results ride on the
    // time order), so it is the scan this test must be able to see.
    let store = MetricsStorage::temporary().unwrap();
    let filter = Filter::new().result(TaskResult::Failure);
    let plan = store
        .query_plan(MetricKind::Task, QueryShape::SuccessRate, &filter)
        .unwrap();
    assert!(
        metric_steps(&plan).iter().any(|l| l.starts_with("SCAN m")),
        "{plan:?}"
    );
}

#[test]
fn newest_first_needs_no_sort_on_the_hot_queries() {
    let store = MetricsStorage::temporary().unwrap();
    for filter in [
        Filter::new().range(range()),
        Filter::new().agent("a").range(range()),
        Filter::new().agent("a"),
        Filter::new(),
    ] {
        let plan = store
            .query_plan(MetricKind::Task, QueryShape::Rows, &filter)
            .unwrap();
        assert!(
            !plan.iter().any(|l| l.contains("TEMP B-TREE")),
            "rows are sorted after reading: {filter:?} {plan:?}"
        );
    }
}

#[test]
fn agent_and_swarm_queries_use_indexes() {
    let store = MetricsStorage::temporary().unwrap();
    for (kind, id_filter, by_id, by_type, by_time) in [
        (
            MetricKind::Agent,
            Filter::new().agent("a"),
            "idx_agent_metrics_agent",
            MetricType::AgentThroughput,
            "idx_agent_metrics_time",
        ),
        (
            MetricKind::Swarm,
            Filter::new().swarm("s"),
            "idx_swarm_metrics_swarm",
            MetricType::SwarmHealth,
            "idx_swarm_metrics_time",
        ),
    ] {
        for shape in [
            QueryShape::Rows,
            QueryShape::Aggregate(AggregationType::Avg),
        ] {
            assert_indexed(&store, kind, shape, &id_filter, by_id);
            assert_indexed(
                &store,
                kind,
                shape,
                &id_filter.clone().metric_type(by_type).range(range()),
                by_id,
            );
            assert_indexed(&store, kind, shape, &Filter::new().range(range()), by_time);
            assert_indexed(
                &store,
                kind,
                shape,
                &Filter::new().metric_type(by_type),
                &format!("idx_{kind}_metrics_type"),
            );
        }
    }
}
