//! What the numeric calls answer: an aggregate, a percentile, a success
//! rate with its counts and interval; the same whichever kind of store
//! computed them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sketches_ddsketch::DDSketch;

use crate::error::Result;
use crate::model::filter::Filter;
use crate::model::record::{AggregationType, MetricKind, MetricType, TaskResult};
use crate::stats::interval::{Interval, IntervalMethod};
use crate::stats::running::{quantile, sketch_quantile, Stat};

/// The result of [`MetricsStorage::aggregate_metrics`](crate::MetricsStorage::aggregate_metrics).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Aggregate {
    /// How the values were combined.
    pub aggregation: AggregationType,
    /// What was aggregated: for task metrics the column (`task_duration`,
    /// `task_tokens` or `task_files`); for agent and swarm metrics the
    /// metric type filtered on, if any.
    pub metric_type: Option<MetricType>,
    /// How many values the selection held.
    pub count: u64,
    /// The aggregate; `None` when the selection is empty (and, for
    /// `stddev`, when it holds a single value).
    pub value: Option<f64>,
    /// For costs (`task_cost`, in USD): the selected tasks that have no
    /// cost, which `count` leaves out; `None` for other measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpriced: Option<u64>,
}

/// The result of [`MetricsStorage::percentile`](crate::MetricsStorage::percentile).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Percentile {
    /// The quantile asked for, in `[0, 1]` (0.95 for p95).
    pub q: f64,
    /// What was measured, as in [`Aggregate::metric_type`].
    pub metric_type: Option<MetricType>,
    /// How many values the selection held.
    pub count: u64,
    /// The quantile; `None` when the selection is empty.
    pub value: Option<f64>,
    /// True when part of the selection was read from rollups that keep
    /// statistics rather than values (past 512 metrics in a bucket): their
    /// sketches answer within 1% of the exact quantile.
    #[serde(default)]
    pub approximate: bool,
    /// As [`Aggregate::unpriced`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpriced: Option<u64>,
}

/// The outcome counts of a set of tasks and the share that succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SuccessRate {
    /// `success / total`, in `[0, 1]`; `None` when there were no tasks.
    pub rate: Option<f64>,
    /// Tasks that succeeded.
    pub success: u64,
    /// Tasks that failed.
    pub failure: u64,
    /// Tasks that timed out.
    pub timeout: u64,
    /// Tasks that were cancelled.
    pub cancelled: u64,
    /// All tasks.
    pub total: u64,
    /// The 95% Wilson score interval of `rate`; `None` when there were no
    /// tasks. [`interval`](Self::interval) gives others. A rate seen on
    /// few tasks has a wide interval: 1 success out of 1 is 20.7%–100%.
    #[serde(default)]
    pub interval: Option<Interval>,
}

impl SuccessRate {
    /// Adds `n` tasks with `result` and updates the rate and its interval.
    pub fn add(&mut self, result: TaskResult, n: u64) {
        match result {
            TaskResult::Success => self.success += n,
            TaskResult::Failure => self.failure += n,
            TaskResult::Timeout => self.timeout += n,
            TaskResult::Cancelled => self.cancelled += n,
        }
        self.total += n;
        self.rate = (self.total > 0).then(|| self.success as f64 / self.total as f64);
        self.interval = Interval::default_for(self.success, self.total);
    }

    /// The confidence interval of [`rate`](Self::rate) at `confidence`
    /// (e.g. [`DEFAULT_CONFIDENCE`](crate::DEFAULT_CONFIDENCE)); `None` when there were no tasks.
    ///
    /// ```
    /// use swarm_metrics::{IntervalMethod, SuccessRate, TaskResult};
    ///
    /// let mut rate = SuccessRate::default();
    /// rate.add(TaskResult::Success, 9);
    /// rate.add(TaskResult::Failure, 1);
    /// let ci = rate.interval(0.95, IntervalMethod::Wilson)?.unwrap();
    /// assert_eq!((ci.low * 1e4).round(), 5958.0);
    /// assert_eq!((ci.high * 1e4).round(), 9821.0);
    /// # Ok::<(), swarm_metrics::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) when `confidence` is not strictly between 0
    /// and 1.
    pub fn interval(&self, confidence: f64, method: IntervalMethod) -> Result<Option<Interval>> {
        Interval::for_proportion(self.success, self.total, confidence, method)
    }
}

// The aggregations of a stat live beside the answers they make, so
// that `stats` knows nothing of the model.
impl Stat {
    /// `aggregation` of the values; `None` when there are none (and, for
    /// the standard deviation, below two).
    pub fn value(&self, aggregation: AggregationType) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        match aggregation {
            AggregationType::Avg => Some(self.sum() / count as f64),
            AggregationType::Sum => Some(self.sum()),
            AggregationType::Count => Some(count as f64),
            AggregationType::Min => Some(self.extreme(false)),
            AggregationType::Max => Some(self.extreme(true)),
            AggregationType::Stddev => self.welford.sample_stddev(),
        }
    }
}

/// The column aggregated for `kind`, and the metric type the result names.
pub(crate) fn aggregated_column(
    kind: MetricKind,
    filter: &Filter,
) -> Result<(&'static str, Option<MetricType>)> {
    if kind != MetricKind::Task {
        return Ok(("value", filter.metric_type));
    }
    let column = filter.column.unwrap_or_default();
    Ok((column.sql(), Some(column.metric_type())))
}

/// Each group's values, and the sketch of what survives only as one.
pub(crate) type GroupValues = BTreeMap<Option<String>, (Vec<f64>, Option<DDSketch>)>;

/// `aggregation` of a merged stat.
pub(crate) fn finish(
    stat: &Stat,
    aggregation: AggregationType,
    metric_type: Option<MetricType>,
) -> Aggregate {
    Aggregate {
        aggregation,
        metric_type,
        count: stat.count(),
        value: stat.value(aggregation),
        unpriced: None,
    }
}

/// The quantiles `qs` of a selection: of its `values` exactly, or, when
/// part of it survives only as `sketch`, of the sketch with the values
/// added (approximate).
pub(crate) fn quantiles_of(
    values: &mut [f64],
    sketch: Option<DDSketch>,
    qs: &[f64],
    metric_type: Option<MetricType>,
) -> Vec<Percentile> {
    if let Some(mut sketch) = sketch {
        for v in values.iter() {
            sketch.add(*v);
        }
        let count = sketch.count() as u64;
        return qs
            .iter()
            .map(|&q| Percentile {
                q,
                metric_type,
                count,
                value: sketch_quantile(&sketch, q),
                approximate: true,
                unpriced: None,
            })
            .collect();
    }
    qs.iter()
        .map(|&q| Percentile {
            q,
            metric_type,
            count: values.len() as u64,
            value: quantile(values, q),
            approximate: false,
            unpriced: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_stats_stay_exact_past_64_bits() {
        let mut s = Stat::new(true, false);
        s.push_int(i64::MAX);
        s.push_int(i64::MAX);
        assert_eq!(s.sum_int, 2 * i128::from(i64::MAX));
        assert_eq!(s.value(AggregationType::Max), Some(i64::MAX as f64));
        assert_eq!(s.value(AggregationType::Count), Some(2.0));
        assert_eq!(Stat::new(true, false).value(AggregationType::Avg), None);
    }
}
