//! Folding: one chunk of raw rows into hourly rollups, or of hourly
//! rollups into daily ones, or dropping the oldest daily rollups, each in
//! one writer transaction. A chunk reads its rows, merges them into the
//! rollup rows, and deletes them, so every row is either raw or in exactly
//! one rollup.

use std::collections::BTreeMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension};

use crate::engine::backlog_condition;
use crate::engine::sqlite::each_row;
use crate::engine::sqlite::rollup_codec::{insert_sql, read_summary, row_values};
use crate::engine::sqlite::usage::UsageCell;
use crate::error::{Error, Result};
use crate::model::record::MetricKind;
use crate::rollup::data::{RollupData, TaskValues};
use crate::rollup::row::{key_columns, rollup_table};
use crate::rollup::tiers::floor_to;
use crate::rollup::tiers::{Step, DAY_US, HOUR_US};

impl Step {
    /// A query telling whether the step has anything to do, with its
    /// parameter.
    pub(crate) fn has_work_sql(&self) -> (String, i64) {
        let backlog = self.backlog();
        (
            format!(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE {})",
                backlog.table,
                backlog_condition(&backlog, "?1")
            ),
            backlog.cutoff,
        )
    }

    /// Runs on the writer connection, inside the writer's transaction;
    /// returns how many rows it folded or dropped.
    pub(crate) fn run(&self, conn: &Connection) -> Result<usize> {
        match *self {
            Step::FoldRaw {
                kind,
                cutoff,
                limit,
            } => fold_raw(conn, kind, cutoff, limit),
            Step::FoldHourly {
                kind,
                cutoff,
                limit,
            } => fold_hourly(conn, kind, cutoff, limit),
            Step::DropDaily { kind, cutoff } => conn
                .execute(
                    &format!(
                        "DELETE FROM {} WHERE level = 2 AND bucket < ?1",
                        rollup_table(kind)
                    ),
                    [cutoff],
                )
                .map_err(Error::sqlite("drop daily rollups")),
        }
    }
}

/// Rollups being built, by bucket and key.
type Groups = BTreeMap<(i64, Vec<i64>), RollupData>;

/// Merges every group into its rollup row at `level`.
fn merge_groups(conn: &Connection, kind: MetricKind, level: i64, groups: Groups) -> Result<()> {
    for ((bucket, key), summary) in groups {
        merge_into(conn, kind, level, bucket, &key, summary)?;
    }
    Ok(())
}

/// Merges `add` into the rollup row at (`level`, `bucket`, `key`).
fn merge_into(
    conn: &Connection,
    kind: MetricKind,
    level: i64,
    bucket: i64,
    key: &[i64],
    mut add: RollupData,
) -> Result<()> {
    let table = rollup_table(kind);
    let keys = key_columns(kind);
    let key_match: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} = ?{}", i + 3))
        .collect();
    let select = format!(
        "SELECT data FROM {table} WHERE level = ?1 AND bucket = ?2 AND {}",
        key_match.join(" AND ")
    );
    let mut params: Vec<SqlValue> = vec![level.into(), bucket.into()];
    params.extend(key.iter().map(|k| SqlValue::Integer(*k)));
    let existing = conn
        .prepare_cached(&select)
        .and_then(|mut s| {
            s.query_row(rusqlite::params_from_iter(params.iter()), |row| {
                Ok(read_summary(row, 0, kind, table))
            })
            .optional()
        })
        .map_err(Error::sqlite("read rollup"))?;
    let merged = match existing {
        Some(summary) => {
            let mut summary = summary?;
            summary.merge(&mut add)?;
            summary
        }
        None => add,
    };
    let mut values = params;
    values.extend(row_values(&merged, kind));
    conn.prepare_cached(&insert_sql(kind, "INSERT OR REPLACE"))
        .and_then(|mut s| s.execute(rusqlite::params_from_iter(values.iter())))
        .map_err(Error::sqlite("write rollup"))?;
    Ok(())
}

/// Folds the oldest chunk of raw rows before `cutoff` into hourly rollups
/// and deletes them. Returns how many rows it folded.
fn fold_raw(conn: &Connection, kind: MetricKind, cutoff: i64, limit: i64) -> Result<usize> {
    let (table, within) = (kind.table(), within_timestamp(kind));
    let columns = match kind {
        MetricKind::Task => {
            "agent, coalesce(swarm, 0), result, duration_ms, tokens_used, \
             CASE WHEN files_changed < 0 THEN ~files_changed ELSE files_changed END, usage"
        }
        MetricKind::Agent => "agent, metric_type, value",
        MetricKind::Swarm => "swarm, metric_type, value",
    };
    let select = format!(
        "SELECT timestamp, {within}, {columns} FROM {table} WHERE timestamp < ?1 \
         ORDER BY timestamp, {within} LIMIT ?2"
    );
    let mut groups = Groups::new();
    // The key of the last row folded.
    let mut last: Option<(i64, i64)> = None;
    let mut n = 0;
    let params = vec![cutoff.into(), limit.into()];
    each_row(conn, &select, params, "fold metrics", |row| {
        let get = |i: usize| row.get::<_, i64>(i).map_err(Error::sqlite("fold metrics"));
        let ts = get(0)?;
        last = Some((ts, get(1)?));
        n += 1;
        let bucket = floor_to(ts, HOUR_US);
        let key = vec![get(2)?, get(3)?];
        let summary = groups
            .entry((bucket, key))
            .or_insert_with(|| RollupData::new(kind));
        match kind {
            MetricKind::Task => {
                let result = usize::try_from(get(4)?).unwrap_or(usize::MAX);
                let tokens_used = get(6)?;
                let usage: Option<Vec<u8>> = row.get(8).map_err(Error::sqlite("fold metrics"))?;
                let cell = match usage {
                    Some(blob) => {
                        UsageCell::decode(&blob, u64::try_from(tokens_used).unwrap_or(0))?
                    }
                    None => UsageCell::default(),
                };
                summary.push_task(
                    result,
                    &TaskValues {
                        duration_ms: get(5)?,
                        tokens_used,
                        files_changed: get(7)?,
                        cost: cell.cost.map(|c| c.micros),
                        split: cell.split,
                    },
                )
            }
            _ => {
                let value: f64 = row.get(4).map_err(Error::sqlite("fold metrics"))?;
                summary.push_value(value)
            }
        }
    })?;
    merge_groups(conn, kind, 1, groups)?;
    if let Some(last) = last {
        conn.prepare_cached(&up_to_sql(kind))
            .and_then(|mut s| s.execute(last))
            .map_err(Error::sqlite("fold metrics"))?;
    }
    Ok(n)
}

/// The column that orders the raw rows of `kind` sharing a timestamp:
/// with the timestamp, the table's key.
pub(crate) fn within_timestamp(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Task => "seq",
        MetricKind::Agent | MetricKind::Swarm => "metric_id",
    }
}

/// The statement deleting the raw rows of `kind` up to the key
/// `(?1, ?2)`, one contiguous run of the time-ordered key.
pub(crate) fn up_to_sql(kind: MetricKind) -> String {
    format!(
        "DELETE FROM {} WHERE (timestamp, {}) <= (?1, ?2)",
        kind.table(),
        within_timestamp(kind)
    )
}

/// Folds the oldest chunk of hourly rollups before `cutoff` into daily
/// ones and deletes them.
fn fold_hourly(conn: &Connection, kind: MetricKind, cutoff: i64, limit: i64) -> Result<usize> {
    let table = rollup_table(kind);
    let keys = key_columns(kind);
    let select = format!(
        "SELECT bucket, {keys}, data FROM {table} WHERE level = 1 AND bucket < ?1 \
         ORDER BY bucket, {keys} LIMIT ?2",
        keys = keys.join(", "),
    );
    let mut groups = Groups::new();
    let mut last: Option<Vec<i64>> = None;
    let mut n = 0;
    let params = vec![cutoff.into(), limit.into()];
    each_row(conn, &select, params, "fold rollups", |row| {
        let get = |i: usize| row.get::<_, i64>(i).map_err(Error::sqlite("fold rollups"));
        let bucket = get(0)?;
        let key: Vec<i64> = (1..=keys.len()).map(get).collect::<Result<_>>()?;
        let mut summary = read_summary(row, 1 + keys.len(), kind, table)?;
        let mut full = vec![bucket];
        full.extend(&key);
        last = Some(full);
        n += 1;
        let day = floor_to(bucket, DAY_US);
        groups
            .entry((day, key))
            .or_insert_with(|| RollupData::new(kind))
            .merge(&mut summary)
    })?;
    merge_groups(conn, kind, 2, groups)?;
    if let Some(last) = last {
        let columns = format!("bucket, {}", keys.join(", "));
        let placeholders: Vec<String> = (1..=last.len()).map(|i| format!("?{i}")).collect();
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE level = 1 AND ({columns}) <= ({})",
            placeholders.join(", ")
        ))
        .and_then(|mut s| s.execute(rusqlite::params_from_iter(last.iter())))
        .map_err(Error::sqlite("fold rollups"))?;
    }
    Ok(n)
}
