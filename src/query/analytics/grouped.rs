//! Results per agent, swarm, result or metric type.

use crate::engine::on_engine;
use crate::error::Result;
use crate::model::answer::GroupValues;
use crate::model::answer::{Aggregate, Percentile, SuccessRate};
use crate::model::filter::{Filter, GroupBy};
use crate::model::record::{AggregationType, MetricKind};
use crate::model::shapes::GroupRead;
use crate::query::analytics::validate_q;
use crate::query::cost::measures_cost;
use crate::storage::MetricsStorage;

pub use crate::model::analytics::Grouped;

impl MetricsStorage {
    /// [`aggregate_metrics`](Self::aggregate_metrics) for every group at
    /// once, sorted by key (no key first).
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) when the grouping or a filter field does not
    /// apply to `kind`; otherwise as `aggregate_metrics`.
    pub fn aggregate_by(
        &self,
        kind: MetricKind,
        aggregation: AggregationType,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<Grouped<Aggregate>>> {
        let read = GroupRead::checked(kind, group_by, filter)?;
        if measures_cost(kind, filter) {
            return self.cost_aggregate_by(&read, aggregation);
        }
        on_engine!(self.engine(), aggregate_by(&read, aggregation))
    }

    /// [`percentile`](Self::percentile) for every group at once, sorted by
    /// key (no key first): the p95 duration of each agent, say.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for `q` outside `[0, 1]`, or when the
    /// grouping or a filter field does not apply to `kind`; otherwise as
    /// `percentile`.
    pub fn percentile_by(
        &self,
        kind: MetricKind,
        q: f64,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<Grouped<Percentile>>> {
        validate_q(q)?;
        let read = GroupRead::checked(kind, group_by, filter)?;
        if measures_cost(kind, filter) {
            return self.cost_percentile_by(&read, q);
        }
        on_engine!(self.engine(), percentile_by(&read, q))
    }

    /// The values of each group of the selection (durations of task
    /// metrics by default, see [`Filter::column`]), raw rows and rollups
    /// read in one snapshot, each with the sketch of what survives only as
    /// one; see [`selected_values`](Self::selected_values).
    pub(crate) fn values_by_group(
        &self,
        kind: MetricKind,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<GroupValues> {
        let read = GroupRead::checked(kind, group_by, filter)?;
        on_engine!(self.engine(), values_by_group(&read))
    }

    /// [`success_rate`](Self::success_rate) for every agent, swarm or
    /// result at once, best first by the lower bound of each rate's 95%
    /// interval (so a rate seen on few tasks does not come first), then by
    /// the rate, then by key.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for `GroupBy::MetricType` or a filter field
    /// that does not apply to task metrics; otherwise as `success_rate`.
    pub fn success_rate_by(
        &self,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<Grouped<SuccessRate>>> {
        filter.validate(MetricKind::Task, false)?;
        group_by.validate(MetricKind::Task)?;
        let mut out = on_engine!(self.engine(), success_rate_by(group_by, filter))?;
        best_first(&mut out);
        Ok(out)
    }
}

/// Orders success rates best first by what can be trusted of each: the
/// lower bound of its interval, then the rate, then the key. Keys are
/// unique, so an unstable sort (no extra memory) is exact.
fn best_first(groups: &mut [Grouped<SuccessRate>]) {
    groups.sort_unstable_by(|a, b| {
        let low = |g: &Grouped<SuccessRate>| g.value.interval.map_or(-1.0, |ci| ci.low);
        let rate = |g: &Grouped<SuccessRate>| g.value.rate.unwrap_or(-1.0);
        low(b)
            .total_cmp(&low(a))
            .then(rate(b).total_cmp(&rate(a)))
            .then_with(|| a.key.cmp(&b.key))
    });
}
