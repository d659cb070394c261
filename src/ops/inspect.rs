//! What a store holds, and whether its file is sound.

use crate::engine::on_engine;
use crate::error::Result;
use crate::model::record::MetricKind;
use crate::storage::MetricsStorage;

pub use crate::model::reports::{StoreStats, TableStats};

impl MetricsStorage {
    /// Rows per kind of metric, raw and rolled up, with their time spans,
    /// the sizes of the file and its write-ahead log, and the schema
    /// version. The counts come from one snapshot.
    ///
    /// # Errors
    /// [`Error::Sqlite`](crate::Error::Sqlite) or [`Error::Pool`](crate::Error::Pool) when the read fails;
    /// [`Error::Io`](crate::Error::Io) when the file's size cannot be read.
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
    /// [`Error::Sqlite`](crate::Error::Sqlite) or [`Error::Pool`](crate::Error::Pool) when the read fails.
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
    /// [`Error::Sqlite`](crate::Error::Sqlite) (or [`Error::NotADatabase`](crate::Error::NotADatabase)-like failures
    /// reported by SQLite) when the check cannot run at all.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        on_engine!(self.engine(), integrity_check())
    }
}
