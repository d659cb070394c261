//! Aggregates, percentiles and success rates of a store's file.

use sketches_ddsketch::DDSketch;

use crate::engine::on_engine;
use crate::error::{Error, Result};
use crate::model::filter::Filter;
use crate::model::record::{AggregationType, MetricKind};
use crate::query::cost::measures_cost;
use crate::storage::MetricsStorage;

pub(crate) use crate::model::answer::{Aggregate, Percentile, SuccessRate};

impl MetricsStorage {
    /// Combines the values of the metrics of `kind` that match `filter`.
    ///
    /// Task metrics aggregate `duration_ms` unless `filter.metric_type`
    /// names another column (`task_tokens`, `task_files`, `task_cost`:
    /// costs in USD, with the tasks that have none counted apart as
    /// [`unpriced`](Aggregate::unpriced)); agent and swarm
    /// metrics aggregate `value`, of the metric type in the filter if any.
    /// Raw rows and rollups are read in one snapshot.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a filter field that does not apply to
    /// `kind`, or `task_result` (not numeric: see
    /// [`success_rate`](Self::success_rate)); [`Error::Sqlite`] or
    /// [`Error::Pool`] when the read fails.
    pub fn aggregate_metrics(
        &self,
        kind: MetricKind,
        aggregation: AggregationType,
        filter: &Filter,
    ) -> Result<Aggregate> {
        filter.validate(kind, true)?;
        if measures_cost(kind, filter) {
            return self.cost_aggregate(aggregation, filter);
        }
        on_engine!(self.engine(), aggregate(kind, aggregation, filter))
    }

    /// The `q` quantile (0.5 for the median, 0.95 for p95) of the values
    /// [`aggregate_metrics`](Self::aggregate_metrics) would combine, exact
    /// on the raw data.
    ///
    /// Uses numpy's default definition: with the `n` values sorted, the
    /// quantile lies at rank `q * (n - 1)`, interpolated linearly between
    /// the two closest ranks.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `q` outside `[0, 1]` (or NaN), and as
    /// [`aggregate_metrics`](Self::aggregate_metrics).
    pub fn percentile(&self, kind: MetricKind, q: f64, filter: &Filter) -> Result<Percentile> {
        Ok(self.percentiles(kind, &[q], filter)?[0])
    }

    /// Several quantiles of the same selection, read once; see
    /// [`percentile`](Self::percentile).
    ///
    /// # Errors
    /// As [`percentile`](Self::percentile); also for an empty `qs`.
    pub fn percentiles(
        &self,
        kind: MetricKind,
        qs: &[f64],
        filter: &Filter,
    ) -> Result<Vec<Percentile>> {
        if qs.is_empty() {
            return Err(Error::invalid("q", "at least one quantile is needed"));
        }
        for &q in qs {
            if !(0.0..=1.0).contains(&q) {
                return Err(Error::invalid("q", format!("must lie in [0, 1], got {q}")));
            }
        }
        filter.validate(kind, true)?;
        if measures_cost(kind, filter) {
            return self.cost_percentiles(qs, filter);
        }
        on_engine!(self.engine(), percentiles(kind, qs, filter))
    }

    /// The values of the selection (the column `filter.metric_type` picks
    /// for task metrics), raw rows and rollups read in one snapshot. When
    /// part of the selection survives only in rollups that keep sketches
    /// (past 512 metrics in a bucket), the sketch of that part comes too,
    /// and the values alone are not the whole selection.
    pub(crate) fn selected_values(
        &self,
        kind: MetricKind,
        filter: &Filter,
    ) -> Result<(Vec<f64>, Option<DDSketch>)> {
        filter.validate(kind, true)?;
        on_engine!(self.engine(), values(kind, filter))
    }

    /// The share of successful tasks among the tasks matching `filter`
    /// (typically an agent or a swarm and a time range), with the counts
    /// behind it. Raw rows and rollups are read in one snapshot.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a filter field that does not apply to
    /// task metrics; [`Error::Sqlite`] or [`Error::Pool`] when the read
    /// fails.
    pub fn success_rate(&self, filter: &Filter) -> Result<SuccessRate> {
        filter.validate(MetricKind::Task, false)?;
        on_engine!(self.engine(), success_rate(filter))
    }
}
