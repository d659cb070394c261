//! Reading metrics back as rows: the `SELECT` lists and the decoders that
//! turn their rows into records, side by side.

use std::ops::ControlFlow;

use crate::engine::on_engine;
use crate::error::{Error, Result};
use crate::model::filter::Filter;
use crate::model::record::{AgentMetric, MetricKind, Stored, SwarmMetric, TaskMetric};
use crate::storage::MetricsStorage;

pub(crate) use crate::model::shapes::RowOrder;

impl MetricsStorage {
    /// Task metrics matching `filter`, newest first (metrics that share a
    /// timestamp by task id, last first), at most `limit`
    /// ([`DEFAULT_LIMIT`](crate::DEFAULT_LIMIT) is the reference's 1000).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a limit of 0 or a filter field that does
    /// not apply to task metrics; [`Error::Sqlite`] or [`Error::Pool`] when
    /// the read fails.
    pub fn get_task_metrics(&self, filter: &Filter, limit: usize) -> Result<Vec<TaskMetric>> {
        self.get_task_metrics_ordered(filter, limit, RowOrder::NewestFirst)
    }

    /// Task metrics matching `filter` in another order, at most `limit`.
    pub(crate) fn get_task_metrics_ordered(
        &self,
        filter: &Filter,
        limit: usize,
        order: RowOrder,
    ) -> Result<Vec<TaskMetric>> {
        filter.validate(MetricKind::Task, false)?;
        let limit = validate_limit(limit)?;
        on_engine!(self.engine(), task_rows(filter, limit, order))
    }
}

impl MetricsStorage {
    /// Agent metrics matching `filter`, newest first, at most `limit`.
    ///
    /// # Errors
    /// As [`get_task_metrics`](Self::get_task_metrics).
    pub fn get_agent_metrics(
        &self,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Stored<AgentMetric>>> {
        filter.validate(MetricKind::Agent, false)?;
        let limit = validate_limit(limit)?;
        on_engine!(self.engine(), agent_rows(filter, limit))
    }

    /// Swarm metrics matching `filter`, newest first, at most `limit`.
    ///
    /// # Errors
    /// As [`get_task_metrics`](Self::get_task_metrics).
    pub fn get_swarm_metrics(
        &self,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Stored<SwarmMetric>>> {
        filter.validate(MetricKind::Swarm, false)?;
        let limit = validate_limit(limit)?;
        on_engine!(self.engine(), swarm_rows(filter, limit))
    }

    /// Hands every task metric matching `filter` to `visit`, oldest first,
    /// without holding them all in memory (for exports). `visit` says
    /// whether to go on: `ControlFlow::Break(b)` stops at once, and `b` is
    /// returned as `Some(b)` (a write error of the caller's, say); `None`
    /// means every metric was visited.
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use swarm_metrics::{Filter, MetricsStorage, TaskMetric, TaskResult};
    ///
    /// let store = MetricsStorage::temporary()?;
    /// let tasks: Vec<_> = (0..5)
    ///     .map(|i| TaskMetric::new(format!("t{i}"), "a", i, TaskResult::Success))
    ///     .collect();
    /// store.store_task_metrics(&tasks)?;
    /// let mut seen = 0;
    /// let stopped = store.for_each_task_metric(&Filter::new(), |_| {
    ///     seen += 1;
    ///     if seen == 3 { ControlFlow::Break("enough") } else { ControlFlow::Continue(()) }
    /// })?;
    /// assert_eq!((seen, stopped), (3, Some("enough")));
    /// # Ok::<(), swarm_metrics::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a filter field that does not apply to
    /// task metrics; [`Error::Sqlite`] or [`Error::Pool`] when the read
    /// fails.
    pub fn for_each_task_metric<B>(
        &self,
        filter: &Filter,
        visit: impl FnMut(TaskMetric) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        filter.validate(MetricKind::Task, false)?;
        on_engine!(self.engine(), each_task(filter, visit))
    }

    /// Hands every agent metric matching `filter` to `visit`, oldest
    /// first; see [`for_each_task_metric`](Self::for_each_task_metric).
    ///
    /// # Errors
    /// As [`for_each_task_metric`](Self::for_each_task_metric).
    pub fn for_each_agent_metric<B>(
        &self,
        filter: &Filter,
        visit: impl FnMut(Stored<AgentMetric>) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        filter.validate(MetricKind::Agent, false)?;
        on_engine!(self.engine(), each_agent(filter, visit))
    }

    /// Hands every swarm metric matching `filter` to `visit`, oldest
    /// first; see [`for_each_task_metric`](Self::for_each_task_metric).
    ///
    /// # Errors
    /// As [`for_each_task_metric`](Self::for_each_task_metric).
    pub fn for_each_swarm_metric<B>(
        &self,
        filter: &Filter,
        visit: impl FnMut(Stored<SwarmMetric>) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        filter.validate(MetricKind::Swarm, false)?;
        on_engine!(self.engine(), each_swarm(filter, visit))
    }
}

/// Checks a query's row limit.
pub(crate) fn validate_limit(limit: usize) -> Result<i64> {
    if limit == 0 {
        return Err(Error::invalid("limit", "must be at least 1"));
    }
    Ok(i64::try_from(limit).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_must_be_positive() {
        assert_eq!(
            validate_limit(0).unwrap_err().to_string(),
            "invalid limit: must be at least 1"
        );
        assert_eq!(validate_limit(usize::MAX).unwrap(), i64::MAX);
    }
}
