//! The rollup row: which table holds each kind's rollups, their key and
//! count columns, and how a [`Summary`] is read from and written into a
//! row (`schema.sql` shows the tables; `crate::summary` the data), and a
//! rollup row keyed by names ([`RollupRecord`]), as copies move them
//! between the file and a server. Used by retention, which writes and
//! reads them, by copies, and by the migration that copied older rollups
//! into them.

use rusqlite::types::Value as SqlValue;
use rusqlite::Row;

use crate::error::{Error, Result};
use crate::record::MetricKind;
use crate::summary::Summary;

/// The table holding `kind`'s rollups.
pub(crate) fn rollup_table(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Task => "task_summaries",
        MetricKind::Agent => "agent_summaries",
        MetricKind::Swarm => "swarm_summaries",
    }
}

/// The key columns of `kind`'s rollups after `level, bucket`.
pub(crate) fn key_columns(kind: MetricKind) -> &'static [&'static str] {
    match kind {
        MetricKind::Task => &["agent", "swarm"],
        MetricKind::Agent => &["agent", "metric_type"],
        MetricKind::Swarm => &["swarm", "metric_type"],
    }
}

/// The count columns of `kind`'s rollups: tasks per result, in result
/// code order, or the number of agent or swarm metrics.
pub(crate) fn count_columns(kind: MetricKind) -> &'static [&'static str] {
    match kind {
        MetricKind::Task => &["success", "failure", "timeout", "cancelled"],
        _ => &["count"],
    }
}

/// Which measure of a summary holds a raw column's values.
pub(crate) fn measure_of(column: &str) -> usize {
    match column {
        "tokens_used" => 1,
        "files_changed" => 2,
        _ => 0,
    }
}

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
) -> Result<Summary> {
    let data = row
        .get_ref(at)
        .and_then(|v| v.as_blob().map_err(Into::into))
        .map_err(|e| Error::CorruptRow {
            table,
            reason: format!("data: {e}"),
        })?;
    Summary::decode(data, kind, table)
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
pub(crate) fn row_values(summary: &Summary, kind: MetricKind) -> Vec<SqlValue> {
    let counts = summary.counts();
    let mut values: Vec<SqlValue> = counts[..count_columns(kind).len()]
        .iter()
        .map(|&n| SqlValue::Integer(i64::try_from(n).unwrap_or(i64::MAX)))
        .collect();
    values.push(SqlValue::Blob(summary.encode()));
    values
}

/// One rollup row with its keys as names, as a copy moves it between
/// stores: the file keys rollups by interned ids, a server by the ids
/// themselves.
#[derive(Debug, Clone)]
pub(crate) struct RollupRecord {
    pub kind: MetricKind,
    /// 1 hourly, 2 daily.
    pub level: i64,
    /// The start of its hour or day (µs).
    pub bucket: i64,
    /// The agent (task and agent rollups) or swarm (swarm rollups).
    pub owner: String,
    /// A task rollup's swarm; `None` for tasks without one, and for agent
    /// and swarm rollups.
    pub swarm: Option<String>,
    /// An agent or swarm rollup's metric type code; 0 for task rollups.
    pub metric_type: i64,
    /// The encoded summary.
    pub data: Vec<u8>,
}

impl RollupRecord {
    /// The summary the record's data holds, checked.
    pub(crate) fn summary(&self) -> Result<Summary> {
        if !(1..=2).contains(&self.level) {
            return Err(Error::CorruptRow {
                table: rollup_table(self.kind),
                reason: format!("rollup level {}", self.level),
            });
        }
        Summary::decode(&self.data, self.kind, rollup_table(self.kind))
    }
}
