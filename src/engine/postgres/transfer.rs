//! Rollup rows in and out of the server, keyed by names: what a copy
//! moves between stores (see `crate::ops::copy`).

use std::ops::ControlFlow;

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;

use super::rollups::key_columns;
use super::Columns;
use super::PgStore;
use crate::error::Result;
use crate::model::record::MetricKind;
use crate::rollup::row::{count_columns, rollup_table, RollupRecord};

impl PgStore {
    /// Visits every rollup row, kind by kind, oldest bucket first, until
    /// `visit` breaks.
    pub fn for_each_rollup(
        &self,
        mut visit: impl FnMut(RollupRecord) -> ControlFlow<()>,
    ) -> Result<()> {
        let mut conn = self.read_conn()?;
        for kind in MetricKind::ALL.iter().copied() {
            let [owner, second] = key_columns(kind);
            let (swarm, metric_type) = match kind {
                MetricKind::Task => (format!("NULLIF({second}, '')"), "0::bigint".to_owned()),
                _ => ("NULL::text".to_owned(), format!("{second}::bigint")),
            };
            let sql = format!(
                "SELECT level::bigint, bucket, {owner}, {swarm}, {metric_type}, data \
                 FROM {} ORDER BY level, bucket",
                rollup_table(kind)
            );
            let mut rows = conn
                .query_raw(&sql, std::iter::empty::<&(dyn ToSql + Sync)>())
                .map_err(self.error("read rollups"))?;
            while let Some(row) = rows.next().map_err(self.error("read rollups"))? {
                let record = RollupRecord {
                    kind,
                    level: row.column(0)?,
                    bucket: row.column(1)?,
                    owner: row.column(2)?,
                    swarm: row.column(3)?,
                    metric_type: row.column(4)?,
                    data: row.column(5)?,
                };
                if visit(record).is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Writes `records` in one transaction, leaving any rollup row already
    /// there under the same key as it is; returns how many were new. Each
    /// record's data is checked first.
    pub fn write_rollups(&self, records: &[RollupRecord]) -> Result<u64> {
        let mut summaries = Vec::with_capacity(records.len());
        for record in records {
            summaries.push(record.summary()?);
        }
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(self.error("write rollups"))?;
        let mut written = 0;
        // One prepared insert per kind of rollup, made on first use.
        let mut statements: [Option<postgres::Statement>; 3] = [None, None, None];
        for (record, summary) in records.iter().zip(&summaries) {
            let kind = record.kind;
            let [owner, second] = key_columns(kind);
            let counts = count_columns(kind);
            let level = i16::try_from(record.level).unwrap_or(0);
            let swarm = record.swarm.clone().unwrap_or_default();
            let metric_type = i16::try_from(record.metric_type).unwrap_or(i16::MAX);
            let n: Vec<i64> = summary.counts()[..counts.len()]
                .iter()
                .map(|&n| i64::try_from(n).unwrap_or(i64::MAX))
                .collect();
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&level, &record.bucket, &record.owner];
            match kind {
                MetricKind::Task => params.push(&swarm),
                _ => params.push(&metric_type),
            }
            for count in &n {
                params.push(count);
            }
            params.push(&record.data);
            let slot = MetricKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
            let statement = match &statements[slot] {
                Some(statement) => statement.clone(),
                None => {
                    let placeholders: Vec<String> =
                        (1..=params.len()).map(|i| format!("${i}")).collect();
                    let sql = format!(
                        "INSERT INTO {} (level, bucket, {owner}, {second}, {}, data) VALUES ({}) \
                         ON CONFLICT DO NOTHING",
                        rollup_table(kind),
                        counts.join(", "),
                        placeholders.join(", ")
                    );
                    let statement = tx.prepare(&sql).map_err(self.error("write rollups"))?;
                    statements[slot] = Some(statement.clone());
                    statement
                }
            };
            written += tx
                .execute(&statement, &params)
                .map_err(self.error("write rollups"))?;
        }
        tx.commit().map_err(self.error("write rollups"))?;
        Ok(written)
    }
}
