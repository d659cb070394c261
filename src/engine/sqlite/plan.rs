//! SQLite's plans for the queries the file runs.

use rusqlite::params_from_iter;

use crate::engine::sqlite::aggregate::{aggregate_sql, percentile_sql, success_rate_sql};
use crate::engine::sqlite::functions::sql_function;
use crate::engine::sqlite::read::select_sql;
use crate::engine::sqlite::FileStore;
use crate::error::{Error, Result};
use crate::model::filter::{Filter, DEFAULT_LIMIT};
use crate::model::record::MetricKind;
use crate::model::shapes::QueryShape;

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
