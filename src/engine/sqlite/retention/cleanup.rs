//! Plain cleanup on the file: deleting old metrics and rollups in bounded
//! chunks, one writer job each.

use rusqlite::{Connection, OptionalExtension};

use super::fold::{up_to_sql, within_timestamp};
use super::in_chunks;
use crate::engine::sqlite::rows::Cache;
use crate::engine::sqlite::writer::Writer;
use crate::engine::sqlite::FileStore;
use crate::error::{Error, Result};
use crate::model::record::MetricKind;
use crate::model::reports::CleanupReport;
use crate::rollup::row::rollup_table;
use crate::rollup::tiers::whole_buckets_before;

/// Rows deleted per transaction: small enough that concurrent stores wait
/// for one chunk at most (a few milliseconds), never for the whole cleanup.
pub(crate) const DELETE_CHUNK: i64 = 5_000;

impl FileStore {
    /// Deletes every metric before `cutoff` (µs) from the file, and the
    /// rollups that end by then, in bounded chunks.
    pub(crate) fn delete_before(&self, cutoff: i64) -> Result<CleanupReport> {
        let writer = self.writer()?;
        let mut report = CleanupReport::default();
        for kind in MetricKind::ALL {
            report.set(*kind, delete_before(writer, *kind, cutoff)?);
            report.rollups += delete_rollups_before(writer, *kind, cutoff)?;
        }
        Ok(report)
    }

    /// What [`delete_before`](Self::delete_before) would delete now.
    pub(crate) fn count_before(&self, cutoff: i64) -> Result<CleanupReport> {
        self.snapshot(|snapshot| {
            let count = |sql: String, params: Vec<i64>| -> Result<u64> {
                let params = params.into_iter().map(Into::into).collect();
                let n: Option<i64> = snapshot.one(&sql, params, "count old metrics")?;
                Ok(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
            };
            let mut report = CleanupReport::default();
            for kind in MetricKind::ALL {
                let sql = format!("SELECT count(*) FROM {} WHERE timestamp < ?1", kind.table());
                report.set(*kind, count(sql, vec![cutoff])?);
                for (level, last_bucket) in whole_buckets_before(cutoff) {
                    let sql = format!(
                        "SELECT count(*) FROM {} WHERE level = ?1 AND bucket <= ?2",
                        rollup_table(*kind)
                    );
                    report.rollups += count(sql, vec![level, last_bucket])?;
                }
            }
            Ok(report)
        })
    }
}

/// Deletes the rows of `kind` older than `cutoff` (µs), one chunk per
/// writer job, so that stores queued meanwhile go first.
fn delete_before(writer: &Writer<Cache>, kind: MetricKind, cutoff: i64) -> Result<u64> {
    in_chunks(writer, DELETE_CHUNK as usize, move |conn| {
        delete_chunk(conn, kind, cutoff, DELETE_CHUNK)
    })
}

/// Rollup buckets deleted per transaction.
const DELETE_BUCKETS: i64 = 24;

/// Deletes the rollups of `kind` that end at or before `cutoff` (µs), a
/// few buckets per writer job.
fn delete_rollups_before(writer: &Writer<Cache>, kind: MetricKind, cutoff: i64) -> Result<u64> {
    let mut total = 0;
    for (level, last_bucket) in whole_buckets_before(cutoff) {
        // A chunk is a number of buckets, not of rows: go on while any row
        // goes.
        total += in_chunks(writer, 1, move |conn| {
            delete_rollup_chunk(conn, kind, level, last_bucket)
        })?;
    }
    Ok(total)
}

/// Deletes the rollups of `kind` of the oldest [`DELETE_BUCKETS`] buckets
/// of `level` up to `last_bucket`; returns how many rows went.
pub(crate) fn delete_rollup_chunk(
    conn: &Connection,
    kind: MetricKind,
    level: i64,
    last_bucket: i64,
) -> Result<usize> {
    let table = rollup_table(kind);
    let sql = format!(
        "DELETE FROM {table} WHERE level = ?1 AND bucket IN \
         (SELECT DISTINCT bucket FROM {table} WHERE level = ?1 AND bucket <= ?2 \
          ORDER BY bucket LIMIT ?3)"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.execute((level, last_bucket, DELETE_BUCKETS)))
        .map_err(Error::sqlite("clean up old rollups"))
}

/// Deletes the `limit` oldest rows of `kind` older than `cutoff`, or all of
/// them if fewer: finds the last row of the chunk, then deletes the key
/// range up to it, one contiguous run of the time-ordered key.
pub(crate) fn delete_chunk(
    conn: &Connection,
    kind: MetricKind,
    cutoff: i64,
    limit: i64,
) -> Result<usize> {
    let (table, within) = (kind.table(), within_timestamp(kind));
    let boundary = format!(
        "SELECT timestamp, {within} FROM {table} WHERE timestamp < ?1 \
         ORDER BY timestamp, {within} LIMIT 1 OFFSET ?2"
    );
    let last: Option<(i64, i64)> = conn
        .prepare_cached(&boundary)
        .and_then(|mut s| {
            s.query_row((cutoff, limit - 1), |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(Error::sqlite("clean up old metrics"))?;
    let deleted = match last {
        Some(last) => conn
            .prepare_cached(&up_to_sql(kind))
            .and_then(|mut s| s.execute(last)),
        None => conn
            .prepare_cached(&format!("DELETE FROM {table} WHERE timestamp < ?1"))
            .and_then(|mut s| s.execute([cutoff])),
    };
    deleted.map_err(Error::sqlite("clean up old metrics"))
}
