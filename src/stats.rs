//! What a store holds, and whether its file is sound.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::on_engine;
use crate::error::Result;
use crate::record::MetricKind;
use crate::storage::MetricsStorage;

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

impl TableStats {
    /// The oldest data kept, raw or rolled up.
    pub fn oldest_data(&self) -> Option<DateTime<Utc>> {
        match (self.oldest, self.oldest_rollup) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// An overview of a store, from [`MetricsStorage::stats`].
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

impl MetricsStorage {
    /// Rows per kind of metric, raw and rolled up, with their time spans,
    /// the sizes of the file and its write-ahead log, and the schema
    /// version. The counts come from one snapshot.
    ///
    /// # Errors
    /// [`Error::Sqlite`] or [`Error::Pool`] when the read fails;
    /// [`Error::Io`] when the file's size cannot be read.
    pub fn stats(&self) -> Result<StoreStats> {
        self.consistent(|store| {
            let engine = store.engine();
            let (file_size, wal_size) = on_engine!(engine, sizes())?;
            Ok(StoreStats {
                task_metrics: on_engine!(engine, table_stats(MetricKind::Task))?,
                agent_metrics: on_engine!(engine, table_stats(MetricKind::Agent))?,
                swarm_metrics: on_engine!(engine, table_stats(MetricKind::Swarm))?,
                file_size,
                wal_size,
                schema_version: on_engine!(engine, schema_version())?,
            })
        })
    }

    /// The schema version recorded in the file.
    ///
    /// # Errors
    /// [`Error::Sqlite`] or [`Error::Pool`] when the read fails.
    pub fn schema_version(&self) -> Result<i64> {
        on_engine!(self.engine(), schema_version())
    }

    /// SQLite's `PRAGMA integrity_check`: an empty list when the file is
    /// sound, otherwise the problems found. On PostgreSQL: the schema
    /// version, every partition being one calendar month, and, where the
    /// `amcheck` extension is installed, every b-tree index of the
    /// partitions.
    ///
    /// # Errors
    /// [`Error::Sqlite`] (or [`Error::NotADatabase`]-like failures
    /// reported by SQLite) when the check cannot run at all.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        on_engine!(self.engine(), integrity_check())
    }
}
