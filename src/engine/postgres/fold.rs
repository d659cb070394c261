//! Tiered retention on PostgreSQL: the same steps as on SQLite, done the
//! server's way. A month's partition wholly before the raw horizon is
//! folded into hourly rollups and dropped whole in one transaction; only
//! the partition the horizon cuts through is folded row by row, in chunks
//! that delete exactly the rows they fold (`DELETE … RETURNING`).
//!
//! Folds take a transaction-scoped advisory lock, so that hosts running
//! retention at once fold one after the other and no rollup is merged
//! from the same rows twice. A folded partition is locked against writes
//! (`SHARE`) while it is read, so that no row stored meanwhile goes with
//! it.

use std::collections::BTreeMap;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Row, Transaction};

use super::read::split_of;
use super::retention::Partition;
use super::rollups::key_columns;
use super::Columns;
use super::PgStore;
use crate::engine::backlog_condition;
use crate::error::{Error, Result};
use crate::model::record::MetricKind;
use crate::rollup::data::{RollupData, TaskValues};
use crate::rollup::row::{count_columns, rollup_table};
use crate::rollup::tiers::{Step, DAY_US, HOUR_US};

/// A key for `pg_advisory_xact_lock` held by every fold: "swarm-rt".
const RETENTION_LOCK: i64 = 0x7377_6172_6d2d_7274;

/// How often a fold tries to drop its folded partition when readers hold
/// the table past the lock timeout, before it gives up (and rolls back).
const DROP_ATTEMPTS: u32 = 5;

/// The second key column of a rollup: a task's swarm ('' for none), or an
/// agent or swarm metric's type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Second {
    Name(String),
    Code(i16),
}

/// Rollups being built, by bucket and key.
type Groups = BTreeMap<(i64, String, Second), RollupData>;

/// The columns a raw row is folded from, after `timestamp` and the key.
fn raw_columns(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Task => {
            "m.timestamp, m.agent_id, coalesce(m.swarm_id, ''), m.result, \
             m.duration_ms, m.tokens_used, m.files_changed, m.cost_micros, m.input_tokens, \
             m.cache_read_tokens, m.cache_write_tokens"
        }
        MetricKind::Agent => "m.timestamp, m.agent_id, m.metric_type, m.value",
        MetricKind::Swarm => "m.timestamp, m.swarm_id, m.metric_type, m.value",
    }
}

/// Adds a raw row (of [`raw_columns`]) to its hourly group.
fn fold_row(groups: &mut Groups, kind: MetricKind, row: &Row) -> Result<()> {
    let timestamp: i64 = row.column(0)?;
    let bucket = timestamp.div_euclid(HOUR_US) * HOUR_US;
    let name: String = row.column(1)?;
    match kind {
        MetricKind::Task => {
            let swarm: String = row.column(2)?;
            let result: i16 = row.column(3)?;
            let task = task_values(row)?;
            groups
                .entry((bucket, name, Second::Name(swarm)))
                .or_insert_with(|| RollupData::new(kind))
                .push_task(usize::try_from(result).unwrap_or(usize::MAX), &task)
        }
        _ => {
            let metric_type: i16 = row.column(2)?;
            groups
                .entry((bucket, name, Second::Code(metric_type)))
                .or_insert_with(|| RollupData::new(kind))
                .push_value(row.column(3)?)
        }
    }
}

/// What a task row (of [`raw_columns`]) adds to its rollup.
fn task_values(row: &Row) -> Result<TaskValues> {
    let corrupt = |reason: String| Error::CorruptRow {
        table: "task_metrics",
        reason,
    };
    let count = |i: usize| -> Result<Option<u64>> {
        let n: Option<i64> = row.column(i)?;
        n.map(|n| u64::try_from(n).map_err(|_| corrupt(format!("a negative count {n}"))))
            .transpose()
    };
    let tokens_used: i64 = row.column(5)?;
    let total = u64::try_from(tokens_used)
        .map_err(|_| corrupt(format!("a negative count {tokens_used}")))?;
    let split = split_of(row, total, 8)?;
    Ok(TaskValues {
        duration_ms: row.column(4)?,
        tokens_used,
        files_changed: row.column(6)?,
        cost: count(7)?,
        split,
    })
}

impl PgStore {
    /// Runs one step of tiered retention: returns what it folded or
    /// dropped, and whether the step may have more to do.
    pub(crate) fn retention_step(&self, step: &Step) -> Result<(usize, bool)> {
        match *step {
            Step::FoldRaw {
                kind,
                cutoff,
                limit,
            } => {
                let table = kind.table();
                let whole = self
                    .partitions_of(table)?
                    .into_iter()
                    .find(|p| p.next <= cutoff);
                match whole {
                    Some(partition) => Ok((self.fold_partition(kind, &partition)?, true)),
                    None => {
                        let n = self.fold_raw_chunk(kind, cutoff, limit)?;
                        Ok((n, n as i64 >= limit))
                    }
                }
            }
            Step::FoldHourly {
                kind,
                cutoff,
                limit,
            } => {
                let n = self.fold_hourly_chunk(kind, cutoff, limit)?;
                Ok((n, n as i64 >= limit))
            }
            Step::DropDaily { kind, cutoff } => {
                let n = self.in_fold(|tx| {
                    tx.execute(
                        &format!(
                            "DELETE FROM {} WHERE level = 2 AND bucket < $1",
                            rollup_table(kind)
                        ),
                        &[&cutoff],
                    )
                    .map_err(self.error("drop daily rollups"))
                })?;
                Ok((usize::try_from(n).unwrap_or(usize::MAX), false))
            }
        }
    }

    /// Whether `step` would find anything to do now.
    pub(crate) fn has_retention_work(&self, step: &Step) -> Result<bool> {
        let backlog = step.backlog();
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {})",
            backlog.table,
            backlog_condition(&backlog, "$1")
        );
        self.read_conn()?
            .query_one(&sql, &[&backlog.cutoff])
            .map_err(self.error("read retention work"))?
            .column(0)
    }

    /// Runs `fold` in a transaction holding the retention lock.
    pub(super) fn in_fold<T>(
        &self,
        fold: impl FnOnce(&mut Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn()?;
        let mut tx = conn
            .transaction()
            .map_err(self.error("begin a retention step"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&RETENTION_LOCK])
            .map_err(self.error("lock retention"))?;
        let done = fold(&mut tx)?;
        tx.commit().map_err(self.error("commit a retention step"))?;
        Ok(done)
    }

    /// Folds every row of `partition` into hourly rollups and drops it.
    fn fold_partition(&self, kind: MetricKind, partition: &Partition) -> Result<usize> {
        let name = &partition.name;
        // Another host may have folded and dropped it while this one
        // waited for the retention lock: then there is nothing to do.
        let n = self.in_retention(name, |tx| {
            tx.batch_execute(&format!("LOCK TABLE \"{name}\" IN SHARE MODE"))
                .map_err(self.error("lock a partition"))?;
            let mut groups = Groups::new();
            let mut n = 0u64;
            let sql = format!("SELECT {} FROM \"{name}\" m", raw_columns(kind));
            let mut rows = tx
                .query_raw(&sql, std::iter::empty::<&(dyn ToSql + Sync)>())
                .map_err(self.error("fold a partition"))?;
            while let Some(row) = rows.next().map_err(self.error("fold a partition"))? {
                fold_row(&mut groups, kind, &row)?;
                n += 1;
            }
            drop(rows);
            self.merge_groups(tx, kind, 1, groups)?;
            self.drop_partition(tx, name)?;
            Ok(n)
        })?;
        self.forget_partition(kind.table(), partition.first)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Drops a folded partition, waiting out readers that hold its table
    /// (each try bounded by the lock timeout, so that the reads queued
    /// behind the drop are not held long).
    fn drop_partition(&self, tx: &mut Transaction<'_>, name: &str) -> Result<()> {
        let mut attempt = 1;
        loop {
            let dropped = tx.batch_execute(&format!(
                "SAVEPOINT drop_partition; \
                 SET LOCAL lock_timeout = {}; \
                 DROP TABLE \"{name}\"; \
                 RELEASE SAVEPOINT drop_partition",
                self.lock_timeout.as_millis()
            ));
            match dropped {
                Ok(()) => return Ok(()),
                Err(e)
                    if attempt < DROP_ATTEMPTS
                        && e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) =>
                {
                    tx.batch_execute("ROLLBACK TO SAVEPOINT drop_partition")
                        .map_err(self.error("drop a folded partition"))?;
                    std::thread::sleep(Duration::from_millis(50 * u64::from(attempt)));
                    attempt += 1;
                }
                Err(e) => return Err(self.error("drop a folded partition")(e)),
            }
        }
    }

    /// Folds the oldest `limit` raw rows before `cutoff` into hourly
    /// rollups, deleting exactly them.
    fn fold_raw_chunk(&self, kind: MetricKind, cutoff: i64, limit: i64) -> Result<usize> {
        let table = kind.table();
        let (identity, order) = match kind {
            MetricKind::Task => ("task_id, timestamp", "timestamp, task_id"),
            MetricKind::Agent => (
                "agent_id, metric_type, timestamp, value",
                "timestamp, metric_id",
            ),
            MetricKind::Swarm => (
                "swarm_id, metric_type, timestamp, value",
                "timestamp, metric_id",
            ),
        };
        let sql = format!(
            "DELETE FROM {table} m WHERE ({identity}) IN \
                 (SELECT {identity} FROM {table} WHERE timestamp < $1 ORDER BY {order} LIMIT $2) \
             RETURNING {}",
            raw_columns(kind)
        );
        self.in_fold(|tx| {
            let rows = tx
                .query(&sql, &[&cutoff, &limit])
                .map_err(self.error("fold metrics"))?;
            let mut groups = Groups::new();
            for row in &rows {
                fold_row(&mut groups, kind, row)?;
            }
            self.merge_groups(tx, kind, 1, groups)?;
            Ok(rows.len())
        })
    }

    /// Folds the oldest `limit` hourly rollups before `cutoff` into daily
    /// ones, deleting exactly them.
    fn fold_hourly_chunk(&self, kind: MetricKind, cutoff: i64, limit: i64) -> Result<usize> {
        let table = rollup_table(kind);
        let [first, second] = key_columns(kind);
        let sql = format!(
            "DELETE FROM {table} WHERE (level, bucket, {first}, {second}) IN \
                 (SELECT level, bucket, {first}, {second} FROM {table} \
                  WHERE level = 1 AND bucket < $1 ORDER BY bucket, {first}, {second} LIMIT $2) \
             RETURNING bucket, {first}, {second}, data"
        );
        self.in_fold(|tx| {
            let rows = tx
                .query(&sql, &[&cutoff, &limit])
                .map_err(self.error("fold rollups"))?;
            let mut groups = Groups::new();
            for row in &rows {
                let bucket: i64 = row.column(0)?;
                let day = bucket.div_euclid(DAY_US) * DAY_US;
                let mut summary = RollupData::decode(row.column(3)?, kind, table)?;
                groups
                    .entry((day, row.column(1)?, second_of(row, 2, kind)?))
                    .or_insert_with(|| RollupData::new(kind))
                    .merge(&mut summary)?;
            }
            self.merge_groups(tx, kind, 2, groups)?;
            Ok(rows.len())
        })
    }

    /// Merges every group into its rollup row at `level`: the rows there
    /// are read once for the buckets the groups span, merged in memory,
    /// and written back in batches.
    fn merge_groups(
        &self,
        tx: &mut Transaction<'_>,
        kind: MetricKind,
        level: i16,
        mut groups: Groups,
    ) -> Result<()> {
        let (Some(first), Some(last)) = (groups.keys().next(), groups.keys().next_back()) else {
            return Ok(());
        };
        let (first, last) = (first.0, last.0);
        let table = rollup_table(kind);
        let [key1, key2] = key_columns(kind);
        let existing = tx
            .query(
                &format!(
                    "SELECT bucket, {key1}, {key2}, data FROM {table} \
                     WHERE level = $1 AND bucket BETWEEN $2 AND $3"
                ),
                &[&level, &first, &last],
            )
            .map_err(self.error("read rollups"))?;
        for row in existing {
            let key = (row.column(0)?, row.column(1)?, second_of(&row, 2, kind)?);
            if let Some(group) = groups.get_mut(&key) {
                let mut old = RollupData::decode(row.column(3)?, kind, table)?;
                old.merge(group)?;
                *group = old;
            }
        }
        let counts = count_columns(kind);
        let upsert = format!(
            "INSERT INTO {table} (level, bucket, {key1}, {key2}, {counts}, data) \
             SELECT $1, * FROM unnest($2::bigint[], $3::text[], {second_type}, {count_arrays}, \
                                      ${data}::bytea[]) \
             ON CONFLICT (level, bucket, {key1}, {key2}) DO UPDATE SET {updates}, \
                 data = EXCLUDED.data",
            counts = counts.join(", "),
            second_type = match kind {
                MetricKind::Task => "$4::text[]",
                _ => "$4::smallint[]",
            },
            count_arrays = (0..counts.len())
                .map(|i| format!("${}::bigint[]", 5 + i))
                .collect::<Vec<_>>()
                .join(", "),
            data = 5 + counts.len(),
            updates = counts
                .iter()
                .map(|c| format!("{c} = EXCLUDED.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let groups: Vec<_> = groups.into_iter().collect();
        for batch in groups.chunks(5_000) {
            let buckets: Vec<i64> = batch.iter().map(|((b, _, _), _)| *b).collect();
            let names: Vec<&str> = batch.iter().map(|((_, n, _), _)| n.as_str()).collect();
            let swarms: Vec<&str> = batch
                .iter()
                .map(|((_, _, s), _)| match s {
                    Second::Name(name) => name.as_str(),
                    Second::Code(_) => "",
                })
                .collect();
            let types: Vec<i16> = batch
                .iter()
                .map(|((_, _, s), _)| match s {
                    Second::Code(code) => *code,
                    Second::Name(_) => 0,
                })
                .collect();
            let per_class: Vec<Vec<i64>> = (0..counts.len())
                .map(|class| {
                    batch
                        .iter()
                        .map(|(_, s)| i64::try_from(s.counts()[class]).unwrap_or(i64::MAX))
                        .collect()
                })
                .collect();
            let data: Vec<Vec<u8>> = batch.iter().map(|(_, s)| s.encode()).collect();
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&level, &buckets, &names];
            match kind {
                MetricKind::Task => params.push(&swarms),
                _ => params.push(&types),
            }
            for class in &per_class {
                params.push(class);
            }
            params.push(&data);
            tx.execute(&upsert, &params)
                .map_err(self.error("write rollups"))?;
        }
        Ok(())
    }
}

/// The second key column of a rollup row at `at`.
fn second_of(row: &Row, at: usize, kind: MetricKind) -> Result<Second> {
    Ok(match kind {
        MetricKind::Task => Second::Name(row.column(at)?),
        _ => Second::Code(row.column(at)?),
    })
}
