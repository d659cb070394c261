//! What a file says of itself: its tables' rows and spans, its sizes, its
//! schema version and SQLite's integrity check.

use super::FileStore;
use crate::error::{Error, Result};
use crate::model::filter::from_micros;
use crate::model::record::MetricKind;
use crate::model::reports::TableStats;
use crate::rollup::row::rollup_table;
use crate::rollup::tiers::{DAILY, HOURLY};

impl FileStore {
    /// Rows, time span and rollups of one kind's table.
    pub(crate) fn table_stats(&self, kind: MetricKind) -> Result<TableStats> {
        let operation = "read statistics";
        let sql = format!(
            "SELECT count(*), min(timestamp), max(timestamp), \
                    (SELECT count(*) FROM {rollups} WHERE level = {HOURLY}), \
                    (SELECT count(*) FROM {rollups} WHERE level = {DAILY}), \
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
    }

    /// The database file's size in bytes (the WAL not included).
    pub(crate) fn file_size(&self) -> Result<u64> {
        std::fs::metadata(self.location())
            .map(|m| m.len())
            .map_err(|source| Error::Io {
                operation: "read file size",
                path: self.location().to_owned(),
                source,
            })
    }

    /// The sizes of the file and of its write-ahead log.
    pub(crate) fn sizes(&self) -> Result<(u64, u64)> {
        Ok((
            self.file_size()?,
            crate::engine::sqlite::open::wal_size(self.location()),
        ))
    }

    /// The schema version recorded in the file.
    pub(crate) fn schema_version(&self) -> Result<i64> {
        let version: Option<Option<i64>> = self.read(|s| {
            s.one(
                "SELECT max(version) FROM metrics_schema_info",
                Vec::new(),
                "read schema version",
            )
        })?;
        Ok(version.flatten().unwrap_or(0))
    }

    /// SQLite's `PRAGMA integrity_check`, without its "ok".
    pub(crate) fn integrity_check(&self) -> Result<Vec<String>> {
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

    /// SQLite's quick check: the problems found, none when the file is
    /// sound as far as a check that reads each page once can tell.
    pub(crate) fn quick_check(&self) -> Result<Vec<String>> {
        let problems =
            self.read_rows("PRAGMA quick_check", Vec::new(), "check the file", |row| {
                row.get::<_, String>(0)
                    .map_err(Error::sqlite("check the file"))
            })?;
        Ok(problems.into_iter().filter(|p| p != "ok").collect())
    }

    /// The newest task's instant (µs) of each swarm (`None`: tasks
    /// without a swarm).
    pub(crate) fn last_task_by_swarm(&self) -> Result<Vec<(Option<String>, i64)>> {
        let operation = "read the last task of each swarm";
        self.read_rows(
            "SELECT (SELECT name FROM swarms WHERE id = m.swarm), max(m.timestamp) \
             FROM task_metrics m GROUP BY m.swarm",
            Vec::new(),
            operation,
            |row| {
                let swarm: Option<String> = row.get(0).map_err(Error::sqlite(operation))?;
                let at: i64 = row.get(1).map_err(Error::sqlite(operation))?;
                Ok((swarm, at))
            },
        )
    }
}
