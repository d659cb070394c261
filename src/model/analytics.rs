//! The answers of the analytics calls: groups, time series, rankings,
//! summaries and outliers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::answer::{Aggregate, Percentile, SuccessRate};
use crate::model::filter::Filter;
use crate::model::record::{AggregationType, MetricKind, TaskMetric};
use crate::stats::interval::Interval;

/// The median.
pub const P50: f64 = 0.50;
/// The 90th percentile.
pub const P90: f64 = 0.90;
/// The 95th percentile.
pub const P95: f64 = 0.95;
/// The 99th percentile.
pub const P99: f64 = 0.99;

/// What a time series measures in each bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// An aggregate of the values, as [`MetricsStorage::aggregate_metrics`](crate::MetricsStorage::aggregate_metrics).
    Aggregate(AggregationType),
    /// A quantile of the values, as [`MetricsStorage::percentile`](crate::MetricsStorage::percentile).
    Percentile(f64),
    /// The success rate of tasks, as [`MetricsStorage::success_rate`](crate::MetricsStorage::success_rate).
    SuccessRate,
}

/// What one bucket of a series holds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BucketValue {
    /// For [`Measure::Aggregate`].
    Aggregate(Aggregate),
    /// For [`Measure::Percentile`].
    Percentile(Percentile),
    /// For [`Measure::SuccessRate`].
    SuccessRate(SuccessRate),
}

/// One bucket of a time series: `[start, start + width)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Bucket {
    /// The first instant of the bucket, aligned to multiples of the width
    /// since the Unix epoch (so minutes, hours and days start on UTC
    /// boundaries).
    pub start: DateTime<Utc>,
    /// The measure over the bucket's metrics.
    pub value: BucketValue,
}

/// What a [time series](crate::MetricsStorage::series) does with buckets that
/// hold no metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyBuckets {
    /// Leaves them out.
    #[default]
    Skip,
    /// Gives them as empty results: count 0, no value.
    Zero,
}

/// One series being read: what, over which metrics, in which buckets.
pub(crate) struct SeriesRead<'a> {
    pub kind: MetricKind,
    pub filter: &'a Filter,
    /// The bucket width in microseconds.
    pub width: i64,
}

/// One group's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Grouped<T> {
    /// The group's key: an agent or swarm id, a result or a metric type;
    /// `None` for tasks without a swarm.
    pub key: Option<String>,
    /// The result for that group.
    #[serde(flatten)]
    pub value: T,
}

/// What agents are ranked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// The share of successful tasks, ordered by what can be trusted of
    /// it: best first by the lower bound of its 95% Wilson interval, worst
    /// first by the upper bound. So 99 successes of 100 rank above 1 of 1,
    /// whose interval reaches down to 20.7%. The score is the rate itself.
    SuccessRate,
    /// The share of successful tasks as observed, however few the tasks.
    RawSuccessRate,
    /// Tasks per hour over the filter's time range (or, without one, over
    /// the span from the oldest to the newest matching task).
    Throughput,
    /// The mean task duration.
    AvgDuration,
    /// The mean tokens per task.
    AvgTokens,
    /// What a success costs: the cost of the agent's tasks (USD) over its
    /// successes; an agent without a success ranks last (its score is
    /// infinite), and an agent none of whose tasks has a cost is left
    /// out (it is not free, only unpriced).
    CostPerSuccess,
}

/// Which end of a ranking comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// The best first: the highest success rate or throughput, the lowest
    /// average duration or tokens.
    #[default]
    BestFirst,
    /// The worst first.
    WorstFirst,
}

/// One agent in a ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Ranked {
    /// The agent.
    pub agent_id: String,
    /// Its score by the ranking's measure.
    pub score: f64,
    /// Its tasks in the selection.
    pub tasks: u64,
    /// The 95% Wilson interval of its success rate, whatever the ranking.
    #[serde(default)]
    pub interval: Option<Interval>,
    /// Ranked by cost per success: its tasks without a cost, which the
    /// score leaves out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpriced: Option<u64>,
}

/// Statistics of task durations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DurationStats {
    /// The mean.
    pub avg: Option<f64>,
    /// The median.
    pub p50: Option<f64>,
    /// The 95th percentile.
    pub p95: Option<f64>,
    /// The 99th percentile.
    pub p99: Option<f64>,
    /// The longest.
    pub max: Option<f64>,
    /// True when part of the selection was read from rollups that keep
    /// sketches rather than values: the percentiles are then within 1%.
    #[serde(default)]
    pub approximate: bool,
}

/// One call's overview of a swarm, an agent or everything over a range.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Summary {
    /// Tasks in the selection.
    pub tasks: u64,
    /// Their success rate and outcome counts.
    pub success_rate: SuccessRate,
    /// Their durations.
    pub duration_ms: DurationStats,
    /// Tokens used in all.
    pub tokens_total: u64,
    /// Tokens per task (`None` without tasks).
    pub tokens_per_task: Option<f64>,
    /// Files changed in all.
    pub files_changed_total: u64,
    /// What the tasks with a cost cost in all, in USD (`None` when none
    /// has one).
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// The tasks without a cost.
    #[serde(default)]
    pub unpriced: u64,
}

/// A task whose duration lies outside its agent's Tukey fences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Outlier {
    /// The task.
    pub task: TaskMetric,
    /// Its agent's first quartile of durations over the selection.
    pub q1: f64,
    /// Its agent's third quartile.
    pub q3: f64,
    /// `q1 - 1.5 * (q3 - q1)`.
    pub low_fence: f64,
    /// `q3 + 1.5 * (q3 - q1)`.
    pub high_fence: f64,
}

/// `floor(t / width) * width`, also for times before 1970.
pub(crate) fn bucket_of(t: i64, width: i64) -> i64 {
    t.div_euclid(width) * width
}
