//! Query plans: which index a query uses, for troubleshooting and for the
//! tests that guard against full scans.

use rusqlite::params_from_iter;

use crate::aggregate::{aggregate_sql, percentile_sql, success_rate_sql};
use crate::engine::on_engine;
use crate::engine::sqlite::FileStore;
use crate::error::{Error, Result};
pub use crate::model::shapes::QueryShape;
use crate::query::{Filter, DEFAULT_LIMIT};
use crate::read::select_sql;
use crate::record::MetricKind;
use crate::stat::sql_function;
use crate::storage::MetricsStorage;

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

impl FileStore {
    /// SQLite's `EXPLAIN QUERY PLAN` of the query of `shape`.
    pub(crate) fn query_plan(
        &self,
        kind: MetricKind,
        shape: QueryShape,
        filter: &Filter,
    ) -> Result<Vec<String>> {
        let (sql, params) = match shape {
            QueryShape::Rows => {
                let (sql, params) = select_sql(kind, filter, DEFAULT_LIMIT as i64);
                (sql.to_string(), params)
            }
            QueryShape::Aggregate(aggregation) => {
                aggregate_sql(kind, sql_function(aggregation), filter)?
            }
            QueryShape::Percentile => percentile_sql(kind, filter)?,
            QueryShape::SuccessRate => success_rate_sql(filter),
        };
        let conn = self.reader()?;
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .map_err(Error::sqlite("explain query"))?;
        let rows = stmt
            .query_map(params_from_iter(params), |row| row.get::<_, String>(3))
            .map_err(Error::sqlite("explain query"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Error::sqlite("explain query"))
    }
}
