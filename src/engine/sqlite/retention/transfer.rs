//! Rollup rows in and out of the file, keyed by names rather than the
//! file's interned ids: what a copy moves between stores (see
//! `crate::ops::copy`).

use std::ops::ControlFlow;
use std::sync::Arc;

use rusqlite::types::Value as SqlValue;

use crate::engine::sqlite::rollup_codec::insert_sql;
use crate::engine::sqlite::rows::intern;
use crate::engine::sqlite::FileStore;
use crate::error::{Error, Result};
use crate::model::record::MetricKind;
use crate::rollup::row::{count_columns, rollup_table, RollupRecord};

impl FileStore {
    /// Visits every rollup row of the file, kind by kind, oldest bucket
    /// first, until `visit` breaks.
    pub(crate) fn each_rollup(
        &self,
        mut visit: impl FnMut(RollupRecord) -> ControlFlow<()>,
    ) -> Result<()> {
        let operation = "read rollups";
        self.snapshot(|snapshot| {
            for kind in MetricKind::ALL.iter().copied() {
                let (owner, swarm, metric_type) = match kind {
                    MetricKind::Task => (
                        "(SELECT name FROM agents WHERE id = r.agent)",
                        "(SELECT name FROM swarms WHERE id = r.swarm)",
                        "0",
                    ),
                    MetricKind::Agent => (
                        "(SELECT name FROM agents WHERE id = r.agent)",
                        "NULL",
                        "r.metric_type",
                    ),
                    MetricKind::Swarm => (
                        "(SELECT name FROM swarms WHERE id = r.swarm)",
                        "NULL",
                        "r.metric_type",
                    ),
                };
                let table = rollup_table(kind);
                let sql = format!(
                    "SELECT r.level, r.bucket, {owner}, {swarm}, {metric_type}, r.data \
                     FROM {table} r ORDER BY r.level, r.bucket"
                );
                let mut stopped = false;
                snapshot.each_until(&sql, Vec::new(), operation, |row| {
                    let get = |i| row.get::<_, i64>(i).map_err(Error::sqlite(operation));
                    let owner: Option<String> = row.get(2).map_err(Error::sqlite(operation))?;
                    let owner = owner.ok_or_else(|| Error::CorruptRow {
                        table,
                        reason: "a rollup of an agent or swarm with no name".to_owned(),
                    })?;
                    let record = RollupRecord {
                        kind,
                        level: get(0)?,
                        bucket: get(1)?,
                        owner,
                        swarm: row.get(3).map_err(Error::sqlite(operation))?,
                        metric_type: get(4)?,
                        data: row.get(5).map_err(Error::sqlite(operation))?,
                    };
                    let flow = visit(record);
                    stopped = flow.is_break();
                    Ok(flow)
                })?;
                if stopped {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Writes `records` into the file's rollup tables in one transaction,
    /// leaving any rollup row already there under the same key as it is;
    /// returns how many were new. Each record's data is checked first.
    pub(crate) fn insert_rollups(&self, records: Vec<RollupRecord>) -> Result<u64> {
        // Each record's data is decoded once, here, before anything is
        // written; the job needs only its counts.
        let records: Vec<(RollupRecord, [u64; 4])> = records
            .into_iter()
            .map(|record| {
                let counts = record.summary()?.counts();
                Ok((record, counts))
            })
            .collect::<Result<_>>()?;
        let records = Arc::new(records);
        self.writer()?.run(move |conn, cache| {
            let mut written = 0u64;
            for (record, counts) in records.iter() {
                let kind = record.kind;
                let owner_kind = match kind {
                    MetricKind::Swarm => MetricKind::Swarm,
                    _ => MetricKind::Agent,
                };
                let owner = intern(conn, cache, owner_kind, &record.owner)?;
                let second = match (kind, &record.swarm) {
                    (MetricKind::Task, Some(swarm)) => {
                        intern(conn, cache, MetricKind::Swarm, swarm)?
                    }
                    (MetricKind::Task, None) => 0,
                    _ => record.metric_type,
                };
                let mut values: Vec<SqlValue> = vec![
                    record.level.into(),
                    record.bucket.into(),
                    owner.into(),
                    second.into(),
                ];
                values.extend(
                    counts[..count_columns(kind).len()]
                        .iter()
                        .map(|&n| SqlValue::Integer(i64::try_from(n).unwrap_or(i64::MAX))),
                );
                values.push(SqlValue::Blob(record.data.clone()));
                written += conn
                    .prepare_cached(&insert_sql(kind, "INSERT OR IGNORE"))
                    .and_then(|mut s| s.execute(rusqlite::params_from_iter(values.iter())))
                    .map_err(Error::sqlite("write rollups"))? as u64;
            }
            Ok(written)
        })
    }
}
