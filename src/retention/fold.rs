//! Folding: one chunk of raw rows into hourly rollups, or of hourly
//! rollups into daily ones, or dropping the oldest daily rollups, each in
//! one writer transaction. A chunk reads its rows, merges them into the
//! rollup rows, and deletes them, so every row is either raw or in exactly
//! one rollup.

use std::collections::BTreeMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension};

use super::rollup_row::{
    all_measure_columns, empty_stats, key_columns, measures, read_stat, rollup_table, stat_values,
    STAT_COLUMNS,
};
use super::{floor_to, DAY_US, HOUR_US};
use crate::error::{Error, Result};
use crate::record::MetricKind;
use crate::stat::Stat;
use crate::storage::each_row;

/// One step of retention, done as one writer job (one transaction).
#[derive(Debug, Clone, Copy)]
pub(super) enum Step {
    FoldRaw {
        kind: MetricKind,
        cutoff: i64,
        limit: i64,
    },
    FoldHourly {
        kind: MetricKind,
        cutoff: i64,
        limit: i64,
    },
    DropDaily {
        kind: MetricKind,
        cutoff: i64,
    },
}

impl Step {
    /// A query telling whether the step has anything to do, with its
    /// parameter.
    pub(super) fn has_work_sql(&self) -> (String, i64) {
        let (table, condition, cutoff) = match *self {
            Step::FoldRaw { kind, cutoff, .. } => (kind.table(), "timestamp < ?1", cutoff),
            Step::FoldHourly { kind, cutoff, .. } => {
                (rollup_table(kind), "level = 1 AND bucket < ?1", cutoff)
            }
            Step::DropDaily { kind, cutoff } => {
                (rollup_table(kind), "level = 2 AND bucket < ?1", cutoff)
            }
        };
        (
            format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE {condition})"),
            cutoff,
        )
    }

    /// Runs on the writer connection, inside the writer's transaction;
    /// returns how many rows it folded or dropped.
    pub(super) fn run(&self, conn: &Connection) -> Result<usize> {
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

/// Merges `add` into the rollup row at (`level`, `bucket`, `key`).
fn merge_into(
    conn: &Connection,
    kind: MetricKind,
    level: i64,
    bucket: i64,
    key: &[i64],
    add: &[Stat],
) -> Result<()> {
    let table = rollup_table(kind);
    let keys = key_columns(kind);
    let key_match: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} = ?{}", i + 3))
        .collect();
    let select = format!(
        "SELECT count, {} FROM {table} WHERE level = ?1 AND bucket = ?2 AND {}",
        all_measure_columns(kind),
        key_match.join(" AND ")
    );
    let mut params: Vec<SqlValue> = vec![level.into(), bucket.into()];
    params.extend(key.iter().map(|k| SqlValue::Integer(*k)));
    let existing = conn
        .prepare_cached(&select)
        .and_then(|mut s| {
            s.query_row(rusqlite::params_from_iter(params.iter()), |row| {
                Ok(measures(kind)
                    .iter()
                    .enumerate()
                    .map(|(i, (_, int))| {
                        let count = row.get::<_, i64>(0).unwrap_or(0) as u64;
                        read_stat(row, count, 1 + STAT_COLUMNS * i, *int, true, table)
                    })
                    .collect::<Vec<_>>())
            })
            .optional()
        })
        .map_err(Error::sqlite("read rollup"))?;
    let mut merged = match existing {
        Some(stats) => stats.into_iter().collect::<Result<Vec<_>>>()?,
        None => empty_stats(kind),
    };
    for (m, a) in merged.iter_mut().zip(add) {
        m.merge(a)?;
    }
    let mut values = params;
    values.push(SqlValue::Integer(
        i64::try_from(merged[0].count()).unwrap_or(i64::MAX),
    ));
    for s in &merged {
        values.extend(stat_values(s));
    }
    let placeholders: Vec<String> = (1..=values.len()).map(|i| format!("?{i}")).collect();
    let insert = format!(
        "INSERT OR REPLACE INTO {table} (level, bucket, {}, count, {}) VALUES ({})",
        keys.join(", "),
        all_measure_columns(kind),
        placeholders.join(", ")
    );
    conn.prepare_cached(&insert)
        .and_then(|mut s| s.execute(rusqlite::params_from_iter(values.iter())))
        .map_err(Error::sqlite("write rollup"))?;
    Ok(())
}

/// Rollups being built, by bucket and key: one stat per measure.
type Groups = BTreeMap<(i64, Vec<i64>), Vec<Stat>>;

/// Merges every group into its rollup row at `level`.
fn merge_groups(conn: &Connection, kind: MetricKind, level: i64, groups: &Groups) -> Result<()> {
    for ((bucket, key), stats) in groups {
        merge_into(conn, kind, level, *bucket, key, stats)?;
    }
    Ok(())
}

/// Folds the oldest chunk of raw rows before `cutoff` into hourly rollups
/// and deletes them. Returns how many rows it folded.
fn fold_raw(conn: &Connection, kind: MetricKind, cutoff: i64, limit: i64) -> Result<usize> {
    let (table, order_key, select) = match kind {
        MetricKind::Task => (
            "task_metrics",
            "task_id",
            "SELECT timestamp, task_id, agent, coalesce(swarm, 0), result, duration_ms, tokens_used, files_changed \
             FROM task_metrics WHERE timestamp < ?1 ORDER BY timestamp, task_id LIMIT ?2",
        ),
        MetricKind::Agent => (
            "agent_metrics",
            "metric_id",
            "SELECT timestamp, metric_id, agent, metric_type, value \
             FROM agent_metrics WHERE timestamp < ?1 ORDER BY timestamp, metric_id LIMIT ?2",
        ),
        MetricKind::Swarm => (
            "swarm_metrics",
            "metric_id",
            "SELECT timestamp, metric_id, swarm, metric_type, value \
             FROM swarm_metrics WHERE timestamp < ?1 ORDER BY timestamp, metric_id LIMIT ?2",
        ),
    };
    let mut groups = Groups::new();
    // The key of the last row folded: a timestamp and the task id or
    // metric id that orders rows within it.
    let mut last: Option<(i64, SqlValue)> = None;
    let mut n = 0;
    let params = vec![cutoff.into(), limit.into()];
    each_row(conn, select, params, "fold metrics", |row| {
        let get = |i: usize| row.get::<_, i64>(i).map_err(Error::sqlite("fold metrics"));
        let ts = get(0)?;
        let within: SqlValue = row.get(1).map_err(Error::sqlite("fold metrics"))?;
        last = Some((ts, within));
        n += 1;
        let bucket = floor_to(ts, HOUR_US);
        match kind {
            MetricKind::Task => {
                let key = vec![get(2)?, get(3)?, get(4)?];
                let r = groups
                    .entry((bucket, key))
                    .or_insert_with(|| empty_stats(kind));
                r[0].push_int(get(5)?);
                r[1].push_int(get(6)?);
                r[2].push_int(get(7)?);
            }
            _ => {
                let key = vec![get(2)?, get(3)?];
                let value: f64 = row.get(4).map_err(Error::sqlite("fold metrics"))?;
                groups
                    .entry((bucket, key))
                    .or_insert_with(|| empty_stats(kind))[0]
                    .push_real(value);
            }
        }
        Ok(())
    })?;
    merge_groups(conn, kind, 1, &groups)?;
    if let Some((ts, k)) = last {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE (timestamp, {order_key}) <= (?1, ?2)"
        ))
        .and_then(|mut s| s.execute((ts, k)))
        .map_err(Error::sqlite("fold metrics"))?;
    }
    Ok(n)
}

/// Folds the oldest chunk of hourly rollups before `cutoff` into daily
/// ones and deletes them.
fn fold_hourly(conn: &Connection, kind: MetricKind, cutoff: i64, limit: i64) -> Result<usize> {
    let table = rollup_table(kind);
    let keys = key_columns(kind);
    let select = format!(
        "SELECT bucket, {}, count, {} FROM {table} WHERE level = 1 AND bucket < ?1 \
         ORDER BY bucket, {} LIMIT ?2",
        keys.join(", "),
        all_measure_columns(kind),
        keys.join(", ")
    );
    let mut groups = Groups::new();
    let mut last: Option<Vec<i64>> = None;
    let mut n = 0;
    let params = vec![cutoff.into(), limit.into()];
    each_row(conn, &select, params, "fold rollups", |row| {
        let get = |i: usize| row.get::<_, i64>(i).map_err(Error::sqlite("fold rollups"));
        let bucket = get(0)?;
        let key: Vec<i64> = (1..=keys.len()).map(get).collect::<Result<_>>()?;
        let count = get(1 + keys.len())? as u64;
        let stats: Vec<Stat> = measures(kind)
            .iter()
            .enumerate()
            .map(|(i, (_, int))| {
                read_stat(
                    row,
                    count,
                    2 + keys.len() + STAT_COLUMNS * i,
                    *int,
                    true,
                    table,
                )
            })
            .collect::<Result<_>>()?;
        let mut full = vec![bucket];
        full.extend(&key);
        last = Some(full);
        n += 1;
        let day = floor_to(bucket, DAY_US);
        let r = groups
            .entry((day, key))
            .or_insert_with(|| empty_stats(kind));
        for (m, s) in r.iter_mut().zip(&stats) {
            m.merge(s)?;
        }
        Ok(())
    })?;
    merge_groups(conn, kind, 2, &groups)?;
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
