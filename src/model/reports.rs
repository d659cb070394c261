//! What maintenance and inspection report: rows deleted, bytes before and
//! after a vacuum, and what a store holds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::record::MetricKind;

/// How many rows [`MetricsStorage::cleanup_old_metrics`](crate::MetricsStorage::cleanup_old_metrics) deleted, per
/// table (serialized with the table names, as the reference's dict).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CleanupReport {
    /// Rows deleted from `task_metrics`.
    pub task_metrics: u64,
    /// Rows deleted from `agent_metrics`.
    pub agent_metrics: u64,
    /// Rows deleted from `swarm_metrics`.
    pub swarm_metrics: u64,
    /// Rollup rows (of tiered retention) deleted: those wholly older than
    /// the horizon. Left out of the JSON form when 0, which keeps the
    /// reference's shape for stores without rollups.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rollups: u64,
    /// Transitions of the alert history older than the horizon. Left out
    /// of the JSON form when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub alert_transitions: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl CleanupReport {
    /// Records `n` rows for `kind`'s table.
    pub(crate) fn set(&mut self, kind: MetricKind, n: u64) {
        match kind {
            MetricKind::Task => self.task_metrics = n,
            MetricKind::Agent => self.agent_metrics = n,
            MetricKind::Swarm => self.swarm_metrics = n,
        }
    }

    /// A report of the rows per kind.
    #[cfg(feature = "postgres")]
    pub(crate) fn of(rows: Vec<(MetricKind, u64)>) -> Self {
        let mut report = CleanupReport::default();
        for (kind, n) in rows {
            report.set(kind, n);
        }
        report
    }

    /// All metric rows deleted (rollups not included).
    pub fn total(&self) -> u64 {
        self.task_metrics + self.agent_metrics + self.swarm_metrics
    }
}

/// The database file's size before and after a vacuum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VacuumReport {
    /// Bytes before.
    pub bytes_before: u64,
    /// Bytes after.
    pub bytes_after: u64,
}

/// Rows and time span of one kind of metric, raw and rolled up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TableStats {
    /// Raw rows in the table.
    pub rows: u64,
    /// The oldest raw row's timestamp, if any rows.
    pub oldest: Option<DateTime<Utc>>,
    /// The newest raw row's timestamp, if any rows.
    pub newest: Option<DateTime<Utc>>,
    /// Hourly rollup rows (tiered retention's middle tier).
    #[serde(default)]
    pub hourly_rollups: u64,
    /// Daily rollup rows (its last tier).
    #[serde(default)]
    pub daily_rollups: u64,
    /// The start of the oldest rollup's hour or day: the oldest data kept,
    /// when older than `oldest`.
    #[serde(default)]
    pub oldest_rollup: Option<DateTime<Utc>>,
}

/// An overview of a store, from [`MetricsStorage::stats`](crate::MetricsStorage::stats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoreStats {
    /// `task_metrics`.
    pub task_metrics: TableStats,
    /// `agent_metrics`.
    pub agent_metrics: TableStats,
    /// `swarm_metrics`.
    pub swarm_metrics: TableStats,
    /// The database file's size in bytes (the WAL not included); on
    /// PostgreSQL, the bytes the metric tables take, indexes included.
    pub file_size: u64,
    /// The write-ahead log's size in bytes: writes not yet copied into
    /// the file, or space kept for the next ones (0 when closed cleanly).
    #[serde(default)]
    pub wal_size: u64,
    /// The schema version recorded in the file.
    pub schema_version: i64,
}

impl TableStats {
    /// The oldest data kept, raw or rolled up.
    pub fn oldest_data(&self) -> Option<DateTime<Utc>> {
        match (self.oldest, self.oldest_rollup) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What [`MetricsStorage::cleanup_in_place`](crate::MetricsStorage::cleanup_in_place) deleted, and the size of the
/// database and its WAL before and after.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InPlaceReport {
    /// The rows deleted, per table.
    #[serde(flatten)]
    pub deleted: CleanupReport,
    /// The bytes of the database file and its WAL, before and after.
    #[serde(flatten)]
    pub size: VacuumReport,
}
