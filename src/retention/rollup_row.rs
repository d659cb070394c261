//! The rollup row: which table holds each kind's rollups, their key and
//! measured columns, and how a [`Stat`] is written into and read back from
//! a measure's columns (`{p}_sum, {p}_min, {p}_max, {p}_mean, {p}_m2,
//! {p}_sketch`).

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::Row;

use crate::error::{Error, Result};
use crate::record::MetricKind;
use crate::stat::{decode_sketch, encode_sketch, Stat, Welford};

/// Columns each measure takes in a rollup row.
pub(super) const STAT_COLUMNS: usize = 6;

/// The table holding `kind`'s rollups.
pub(crate) fn rollup_table(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Task => "task_rollups",
        MetricKind::Agent => "agent_rollups",
        MetricKind::Swarm => "swarm_rollups",
    }
}

/// The measured columns of `kind`'s rollups (their prefixes), with whether
/// they hold integers.
pub(super) fn measures(kind: MetricKind) -> &'static [(&'static str, bool)] {
    match kind {
        MetricKind::Task => &[("duration", true), ("tokens", true), ("files", true)],
        _ => &[("value", false)],
    }
}

/// The rollup prefix of a raw column that aggregates read.
pub(crate) fn rollup_prefix(column: &str) -> &'static str {
    match column {
        "duration_ms" => "duration",
        "tokens_used" => "tokens",
        "files_changed" => "files",
        _ => "value",
    }
}

/// The key columns of `kind`'s rollups after `level, bucket`.
pub(super) fn key_columns(kind: MetricKind) -> &'static [&'static str] {
    match kind {
        MetricKind::Task => &["agent", "swarm", "result"],
        MetricKind::Agent => &["agent", "metric_type"],
        MetricKind::Swarm => &["swarm", "metric_type"],
    }
}

/// The columns of one measure, as a select or insert list, with `alias.`
/// before each when given; the sketch only when `sketch`.
pub(super) fn measure_columns(prefix: &str, alias: &str, sketch: bool) -> String {
    let mut columns = format!(
        "{alias}{prefix}_sum, {alias}{prefix}_min, {alias}{prefix}_max, \
         {alias}{prefix}_mean, {alias}{prefix}_m2"
    );
    if sketch {
        columns.push_str(&format!(", {alias}{prefix}_sketch"));
    }
    columns
}

/// The columns of every measure of `kind`, sketches included.
pub(super) fn all_measure_columns(kind: MetricKind) -> String {
    measures(kind)
        .iter()
        .map(|(prefix, _)| measure_columns(prefix, "", true))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stat of one measure for each of `kind`'s measured columns, empty,
/// with sketches.
pub(super) fn empty_stats(kind: MetricKind) -> Vec<Stat> {
    measures(kind)
        .iter()
        .map(|(_, int)| Stat::new(*int, true))
        .collect()
}

/// Reads a measure's columns (see [`measure_columns`]) from column `at`
/// on, for a rollup of `count` values.
pub(super) fn read_stat(
    row: &Row<'_>,
    count: u64,
    at: usize,
    int: bool,
    sketch: bool,
    table: &'static str,
) -> Result<Stat> {
    let col = |e: rusqlite::Error| Error::CorruptRow {
        table,
        reason: e.to_string(),
    };
    let mut s = Stat::new(int, false);
    if int {
        s.sum_int = read_sum(row, at, table)?;
        s.min_int = row.get(at + 1).map_err(col)?;
        s.max_int = row.get(at + 2).map_err(col)?;
        s.min = s.min_int as f64;
        s.max = s.max_int as f64;
    } else {
        s.sum_real = row.get(at).map_err(col)?;
        s.min = row.get(at + 1).map_err(col)?;
        s.max = row.get(at + 2).map_err(col)?;
    }
    s.welford = Welford {
        n: count,
        mean: row.get(at + 3).map_err(col)?,
        m2: row.get(at + 4).map_err(col)?,
    };
    if sketch {
        let bytes: Vec<u8> = row.get(at + 5).map_err(col)?;
        s.sketch = Some(decode_sketch(&bytes, table)?);
    }
    Ok(s)
}

/// An integer sum as stored: an SQLite integer while it fits 64 bits, and
/// beyond (a sum of several values near `i64::MAX`, each one storable) its
/// 16 little-endian bytes, so that every sum stays exact.
fn sum_value(sum: i128) -> SqlValue {
    match i64::try_from(sum) {
        Ok(sum) => SqlValue::Integer(sum),
        Err(_) => SqlValue::Blob(sum.to_le_bytes().to_vec()),
    }
}

/// The inverse of [`sum_value`], from column `at`.
fn read_sum(row: &Row<'_>, at: usize, table: &'static str) -> Result<i128> {
    let corrupt = |reason: String| Error::CorruptRow { table, reason };
    match row.get_ref(at).map_err(|e| corrupt(e.to_string()))? {
        ValueRef::Integer(sum) => Ok(i128::from(sum)),
        ValueRef::Blob(bytes) => bytes
            .try_into()
            .map(i128::from_le_bytes)
            .map_err(|_| corrupt(format!("a sum of {} bytes", bytes.len()))),
        other => Err(corrupt(format!("a sum of type {:?}", other.data_type()))),
    }
}

/// The values of a measure's columns for `stat`, in [`measure_columns`]
/// order, sketch included.
pub(super) fn stat_values(stat: &Stat) -> [SqlValue; STAT_COLUMNS] {
    let sketch = stat.sketch.as_ref().map(encode_sketch).unwrap_or_default();
    let w = stat.welford;
    if stat.int {
        [
            sum_value(stat.sum_int),
            SqlValue::Integer(stat.min_int),
            SqlValue::Integer(stat.max_int),
            SqlValue::Real(w.mean),
            SqlValue::Real(w.m2),
            SqlValue::Blob(sketch),
        ]
    } else {
        [
            SqlValue::Real(stat.sum_real),
            SqlValue::Real(stat.min),
            SqlValue::Real(stat.max),
            SqlValue::Real(w.mean),
            SqlValue::Real(w.m2),
            SqlValue::Blob(sketch),
        ]
    }
}
