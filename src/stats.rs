//! What a store holds, and whether its file is sound.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::query::from_micros;
use crate::record::MetricKind;
use crate::rollup_row::rollup_table;
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
        #[cfg(feature = "postgres")]
        if let Some(server) = self.postgres() {
            return self.consistent(|_| {
                let table = |kind| -> Result<TableStats> {
                    let (rows, oldest, newest) = server.table_span(kind)?;
                    let (hourly_rollups, daily_rollups, oldest_rollup) =
                        server.rollup_counts(kind)?;
                    Ok(TableStats {
                        rows,
                        oldest: oldest.and_then(from_micros),
                        newest: newest.and_then(from_micros),
                        hourly_rollups,
                        daily_rollups,
                        oldest_rollup: oldest_rollup.and_then(from_micros),
                    })
                };
                Ok(StoreStats {
                    task_metrics: table(MetricKind::Task)?,
                    agent_metrics: table(MetricKind::Agent)?,
                    swarm_metrics: table(MetricKind::Swarm)?,
                    file_size: server.size()?,
                    wal_size: 0,
                    schema_version: server.schema_version()?,
                })
            });
        }
        let operation = "read statistics";
        let table = |kind: MetricKind| -> Result<TableStats> {
            // The rollup levels: 1 hourly, 2 daily.
            let sql = format!(
                "SELECT count(*), min(timestamp), max(timestamp), \
                        (SELECT count(*) FROM {rollups} WHERE level = 1), \
                        (SELECT count(*) FROM {rollups} WHERE level = 2), \
                        (SELECT min(bucket) FROM {rollups}) \
                 FROM {table}",
                table = kind.table(),
                rollups = rollup_table(kind),
            );
            let rows = self.read_rows(&sql, Vec::new(), operation, |row| {
                let get = |i| {
                    row.get::<_, Option<i64>>(i)
                        .map_err(Error::sqlite(operation))
                };
                let count = |i| get(i).map(|n| n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0));
                Ok(TableStats {
                    rows: count(0)?,
                    oldest: get(1)?.and_then(from_micros),
                    newest: get(2)?.and_then(from_micros),
                    hourly_rollups: count(3)?,
                    daily_rollups: count(4)?,
                    oldest_rollup: get(5)?.and_then(from_micros),
                })
            })?;
            Ok(rows.into_iter().next().unwrap_or_default())
        };
        self.consistent(|store| {
            Ok(StoreStats {
                task_metrics: table(MetricKind::Task)?,
                agent_metrics: table(MetricKind::Agent)?,
                swarm_metrics: table(MetricKind::Swarm)?,
                file_size: store.file_size()?,
                wal_size: crate::open::wal_size(store.path()),
                schema_version: store.schema_version()?,
            })
        })
    }

    /// The database file's size in bytes (the WAL not included).
    pub(crate) fn file_size(&self) -> Result<u64> {
        std::fs::metadata(self.path())
            .map(|m| m.len())
            .map_err(|source| Error::Io {
                operation: "read file size",
                path: self.path().to_owned(),
                source,
            })
    }

    /// The schema version recorded in the file.
    ///
    /// # Errors
    /// [`Error::Sqlite`] or [`Error::Pool`] when the read fails.
    pub fn schema_version(&self) -> Result<i64> {
        #[cfg(feature = "postgres")]
        if let Some(server) = self.postgres() {
            return server.schema_version();
        }
        let version: Option<Option<i64>> = self.read(|s| {
            s.one(
                "SELECT max(version) FROM metrics_schema_info",
                Vec::new(),
                "read schema version",
            )
        })?;
        Ok(version.flatten().unwrap_or(0))
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
        #[cfg(feature = "postgres")]
        if let Some(server) = self.postgres() {
            return server.integrity_check();
        }
        let problems = self.read_rows(
            "PRAGMA integrity_check",
            Vec::new(),
            "check integrity",
            |row| {
                row.get::<_, String>(0)
                    .map_err(Error::sqlite("check integrity"))
            },
        )?;
        Ok(problems.into_iter().filter(|p| p != "ok").collect())
    }
}
