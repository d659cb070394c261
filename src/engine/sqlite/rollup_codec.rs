//! A rollup row in the file: its counts and summary read from a row, and
//! the statement and values that write one (the columns are named in
//! `crate::rollup::row`).

use rusqlite::types::Value as SqlValue;
use rusqlite::Row;

use crate::error::{Error, Result};
use crate::model::record::MetricKind;
use crate::rollup::data::RollupData;
use crate::rollup::row::{count_columns, key_columns, rollup_table};

/// The counts read from the count columns starting at `at`: per task
/// result, or in the first place alone for agent and swarm metrics.
pub(crate) fn read_counts(
    row: &Row<'_>,
    at: usize,
    kind: MetricKind,
    table: &'static str,
) -> Result<[u64; 4]> {
    let mut counts = [0; 4];
    for (i, count) in counts
        .iter_mut()
        .enumerate()
        .take(count_columns(kind).len())
    {
        let n: i64 = row.get(at + i).map_err(|e| Error::CorruptRow {
            table,
            reason: e.to_string(),
        })?;
        *count = u64::try_from(n).map_err(|_| Error::CorruptRow {
            table,
            reason: format!("negative count {n}"),
        })?;
    }
    Ok(counts)
}

/// The summary in column `at`.
pub(crate) fn read_summary(
    row: &Row<'_>,
    at: usize,
    kind: MetricKind,
    table: &'static str,
) -> Result<RollupData> {
    let data = row
        .get_ref(at)
        .and_then(|v| v.as_blob().map_err(Into::into))
        .map_err(|e| Error::CorruptRow {
            table,
            reason: format!("data: {e}"),
        })?;
    RollupData::decode(data, kind, table)
}

/// The statement writing one rollup row of `kind`: `verb` is `INSERT OR
/// REPLACE` (a fold merging into it) or `INSERT OR IGNORE` (a copy, which
/// keeps a row already there); the parameters are level, bucket, the key
/// columns, then [`row_values`] or the counts and data alike.
pub(crate) fn insert_sql(kind: MetricKind, verb: &str) -> String {
    let keys = key_columns(kind);
    let counts = count_columns(kind);
    let placeholders: Vec<String> = (1..=2 + keys.len() + counts.len() + 1)
        .map(|i| format!("?{i}"))
        .collect();
    format!(
        "{verb} INTO {} (level, bucket, {}, {}, data) VALUES ({})",
        rollup_table(kind),
        keys.join(", "),
        counts.join(", "),
        placeholders.join(", ")
    )
}

/// The values of a row's count columns and data, in that order.
pub(crate) fn row_values(summary: &RollupData, kind: MetricKind) -> Vec<SqlValue> {
    let counts = summary.counts();
    let mut values: Vec<SqlValue> = counts[..count_columns(kind).len()]
        .iter()
        .map(|&n| SqlValue::Integer(i64::try_from(n).unwrap_or(i64::MAX)))
        .collect();
    values.push(SqlValue::Blob(summary.encode()));
    values
}
