//! The values an answer takes on a server: raw rows and rollups read in
//! one snapshot, as doubles, with the sketch of what survives only as one.

use postgres::Client;
use sketches_ddsketch::DDSketch;

use super::filter::Where;
use super::Columns;
use super::PgStore;
use crate::error::Result;
use crate::model::answer::aggregated_column;
use crate::model::filter::Filter;
use crate::model::record::MetricKind;
use crate::rollup::rolled::RollupRead;

impl PgStore {
    /// The values `aggregate` would combine, as doubles, in no order,
    /// raw rows and rollups read in one snapshot; with the sketch of what
    /// survives only as one (see `MetricsStorage::selected_values`).
    pub(crate) fn values(
        &self,
        kind: MetricKind,
        filter: &Filter,
    ) -> Result<(Vec<f64>, Option<DDSketch>)> {
        self.with_rollups(kind, filter, |client, rollups| {
            self.values_in(client, kind, filter, rollups)
        })
    }

    /// [`values`](Self::values) on `client`, taking in the rollups when
    /// `rollups`.
    pub(super) fn values_in(
        &self,
        client: &mut Client,
        kind: MetricKind,
        filter: &Filter,
        rollups: bool,
    ) -> Result<(Vec<f64>, Option<DDSketch>)> {
        let (column, _) = aggregated_column(kind, filter)?;
        let w = Where::of(kind, filter);
        let sql = format!(
            "SELECT m.{column}::float8 FROM {} m WHERE {}",
            kind.table(),
            w.clause
        );
        // A task without a cost has none: NULL, left out.
        let mut values: Vec<f64> = client
            .query_typed(&sql, &w.params())
            .map_err(self.error("read values"))?
            .iter()
            .filter_map(|row| row.column::<Option<f64>>(0).transpose())
            .collect::<Result<_>>()?;
        let mut sketch = None;
        if rollups {
            let read = RollupRead::column(kind, filter, None, column, true);
            if let Some(rolled) = self.merge_rollups(client, &read)?.remove(&None) {
                values.extend(rolled.values);
                sketch = rolled.sketch;
            }
        }
        Ok((values, sketch))
    }

    /// Rows, oldest and newest timestamp (µs) of `kind`'s table.
    pub fn table_span(&self, kind: MetricKind) -> Result<(u64, Option<i64>, Option<i64>)> {
        let sql = format!(
            "SELECT count(*), min(timestamp), max(timestamp) FROM {}",
            kind.table()
        );
        let row = self
            .read_conn()?
            .query_one(&sql, &[])
            .map_err(self.error("read statistics"))?;
        Ok((
            u64::try_from(row.column::<i64>(0)?).unwrap_or(0),
            row.column(1)?,
            row.column(2)?,
        ))
    }

    /// Bytes the metric and rollup tables take on the server, indexes
    /// included.
    pub fn size(&self) -> Result<u64> {
        let row = self
            .read_conn()?
            .query_one(
                "SELECT ((SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) \
                         FROM pg_inherits i \
                         WHERE i.inhparent IN ('task_metrics'::regclass, \
                                               'agent_metrics'::regclass, \
                                               'swarm_metrics'::regclass)) \
                      + pg_total_relation_size('task_summaries') \
                      + pg_total_relation_size('agent_summaries') \
                      + pg_total_relation_size('swarm_summaries'))::bigint",
                &[],
            )
            .map_err(self.error("read statistics"))?;
        Ok(u64::try_from(row.column::<i64>(0)?).unwrap_or(0))
    }
}
