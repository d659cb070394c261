//! Query plans: which index a query uses, for troubleshooting and for the
//! tests that guard against full scans.

use crate::engine::on_engine;
use crate::error::{Error, Result};
use crate::model::filter::Filter;
use crate::model::record::MetricKind;
use crate::storage::MetricsStorage;

pub use crate::model::shapes::QueryShape;

impl MetricsStorage {
    /// SQLite's `EXPLAIN QUERY PLAN` for the query the store runs for
    /// `shape` over `filter` on `kind`: one line per plan step, such as
    /// `SEARCH m USING INDEX idx_task_metrics_agent (agent=? AND timestamp>? AND timestamp<?)`.
    /// On PostgreSQL, `EXPLAIN (COSTS OFF)` of the query, a line per line.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the filter does not apply to `kind` or
    /// `SuccessRate` is asked of agent or swarm metrics; [`Error::Sqlite`]
    /// or [`Error::Pool`] when SQLite fails.
    pub fn query_plan(
        &self,
        kind: MetricKind,
        shape: QueryShape,
        filter: &Filter,
    ) -> Result<Vec<String>> {
        match shape {
            QueryShape::Rows | QueryShape::SuccessRate => filter.validate(kind, false)?,
            QueryShape::Aggregate(_) | QueryShape::Percentile => filter.validate(kind, true)?,
        }
        if shape == QueryShape::SuccessRate && kind != MetricKind::Task {
            return Err(Error::invalid(
                "kind",
                format!("success rates are computed from task metrics, not {kind} metrics"),
            ));
        }
        on_engine!(self.engine(), query_plan(kind, shape, filter))
    }
}
