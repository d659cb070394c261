//! The rollup row: which table holds each kind's rollups, their key and
//! count columns (`schema.sql` shows the tables; `crate::rollup::data` the
//! data), and a rollup row keyed by names ([`RollupRecord`]), as copies move them
//! between the file and a server. Used by retention, which writes and
//! reads them, by copies, and by the migration that copied older rollups
//! into them.

use crate::error::{Error, Result};
use crate::model::record::MetricKind;
use crate::rollup::data::{measure, RollupData};

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
        "tokens_used" => measure::TOKENS,
        "files_changed" => measure::FILES,
        "cost_micros" => measure::COST,
        "input_tokens" => measure::INPUT,
        "output_tokens" => measure::OUTPUT,
        "cache_read_tokens" => measure::CACHE_READ,
        "cache_write_tokens" => measure::CACHE_WRITE,
        _ => measure::DURATION,
    }
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
    pub(crate) fn summary(&self) -> Result<RollupData> {
        if !(1..=2).contains(&self.level) {
            return Err(Error::CorruptRow {
                table: rollup_table(self.kind),
                reason: format!("rollup level {}", self.level),
            });
        }
        RollupData::decode(&self.data, self.kind, rollup_table(self.kind))
    }
}
