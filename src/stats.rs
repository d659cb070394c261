//! What a store holds, and whether its file is sound.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::query::from_micros;
use crate::record::MetricKind;
use crate::storage::MetricsStorage;

/// Rows and time span of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TableStats {
    /// Rows in the table.
    pub rows: u64,
    /// The oldest timestamp, if any rows.
    pub oldest: Option<DateTime<Utc>>,
    /// The newest timestamp, if any rows.
    pub newest: Option<DateTime<Utc>>,
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
    /// The database file's size in bytes (the WAL not included).
    pub file_size: u64,
    /// The schema version recorded in the file.
    pub schema_version: i64,
}

impl MetricsStorage {
    /// Rows per table with their oldest and newest timestamps, the file
    /// size and the schema version.
    ///
    /// # Errors
    /// [`Error::Sqlite`] or [`Error::Pool`] when the read fails;
    /// [`Error::Io`] when the file's size cannot be read.
    pub fn stats(&self) -> Result<StoreStats> {
        let table = |kind: MetricKind| -> Result<TableStats> {
            let sql = format!(
                "SELECT count(*), min(timestamp), max(timestamp) FROM {}",
                kind.table()
            );
            let rows = self.read_rows(&sql, Vec::new(), "read statistics", |row| {
                let n: i64 = row.get(0).map_err(Error::sqlite("read statistics"))?;
                let oldest: Option<i64> = row.get(1).map_err(Error::sqlite("read statistics"))?;
                let newest: Option<i64> = row.get(2).map_err(Error::sqlite("read statistics"))?;
                Ok(TableStats {
                    rows: u64::try_from(n).unwrap_or(0),
                    oldest: oldest.and_then(from_micros),
                    newest: newest.and_then(from_micros),
                })
            })?;
            Ok(rows.into_iter().next().unwrap_or_default())
        };
        let file_size = self.file_size()?;
        Ok(StoreStats {
            task_metrics: table(MetricKind::Task)?,
            agent_metrics: table(MetricKind::Agent)?,
            swarm_metrics: table(MetricKind::Swarm)?,
            file_size,
            schema_version: self.schema_version()?,
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
    /// sound, otherwise the problems found.
    ///
    /// # Errors
    /// [`Error::Sqlite`] (or [`Error::NotADatabase`]-like failures
    /// reported by SQLite) when the check cannot run at all.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
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
