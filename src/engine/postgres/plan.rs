//! Query plans on a server: PostgreSQL's `EXPLAIN` of the query a call
//! runs.

use super::filter::Where;
use super::read::{aggregate_sql, percentiles_sql, success_rate_sql, tasks_sql, PlannedQuery};
use super::Columns;
use super::PgStore;
use crate::error::Result;
use crate::model::filter::Filter;
use crate::model::record::MetricKind;

impl PgStore {
    /// PostgreSQL's `EXPLAIN` (without costs) of the query the store runs
    /// for `query` over `filter` on `kind`: one line per plan step.
    pub fn explain(
        &self,
        kind: MetricKind,
        query: PlannedQuery,
        filter: &Filter,
    ) -> Result<Vec<String>> {
        let (sql, w) = match query {
            PlannedQuery::Rows if kind == MetricKind::Task => {
                tasks_sql(filter, 1000, "m.timestamp DESC, m.task_id DESC")
            }
            PlannedQuery::Rows => {
                let (table, id) = PgStore::entity_table(kind);
                let w = Where::of(kind, filter);
                let sql = format!(
                    "SELECT m.metric_id, m.{id}, m.metric_type, m.value, m.metadata, m.timestamp \
                     FROM {table} m WHERE {} ORDER BY m.timestamp DESC, m.metric_id DESC LIMIT 1000",
                    w.clause
                );
                (sql, w)
            }
            PlannedQuery::Aggregate(aggregation) => aggregate_sql(kind, aggregation, filter)?,
            PlannedQuery::SuccessRate => success_rate_sql(filter),
            PlannedQuery::Percentile => percentiles_sql(kind, filter)?,
        };
        self.read_conn()?
            .query_typed(&format!("EXPLAIN (COSTS OFF) {sql}"), &w.params())
            .map_err(self.error("explain query"))?
            .iter()
            .map(|row| row.column(0))
            .collect()
    }
}
