//! The pragmas and functions every connection of a store gets.

use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How much a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = NORMAL`: a committed store survives the process being
    /// killed; the last commits may be lost if the machine loses power.
    #[default]
    Normal,
    /// `synchronous = FULL`: every commit is flushed to the disk before the
    /// store returns; survives power loss too, at the cost of an fsync per
    /// commit.
    Full,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        }
    }
}

/// The largest WAL file kept when the log starts over; a larger one is
/// truncated to this size (see `writer::checkpoint`).
const JOURNAL_SIZE_LIMIT: i64 = 24 * 1024 * 1024;

/// Per-connection settings, applied to the writer and every pooled reader.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionSettings {
    pub busy_timeout: Duration,
    pub durability: Durability,
    pub read_only: bool,
    /// Bytes of the file readers map into memory (`PRAGMA mmap_size`).
    pub mmap_size: u64,
}

impl ConnectionSettings {
    pub fn flags(&self) -> OpenFlags {
        let base = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        if self.read_only {
            base | OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            base | OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        }
    }

    /// Pragmas and functions for one connection; `reader` connections are
    /// additionally made query-only, so only the writer ever writes.
    pub fn apply(&self, conn: &Connection, reader: bool) -> rusqlite::Result<()> {
        conn.busy_timeout(self.busy_timeout)?;
        conn.pragma_update(None, "synchronous", self.durability.pragma())?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        if reader || self.read_only {
            conn.pragma_update(None, "query_only", "ON")?;
            // Reading pages from the map instead of copying each one out
            // of the file with a system call: a point query that misses
            // the connection's small page cache costs a third less.
            let mmap = i64::try_from(self.mmap_size).unwrap_or(i64::MAX);
            conn.pragma_update(None, "mmap_size", mmap)?;
        } else {
            conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
        }
        conn.set_prepared_statement_cache_capacity(64);
        crate::engine::sqlite::functions::register_functions(conn)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rusqlite::Connection;

    use super::*;
    use crate::MetricsStorage;

    #[test]
    fn every_connection_gets_the_same_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        for (durability, level) in [(Durability::Normal, 1), (Durability::Full, 2)] {
            let store = MetricsStorage::builder(dir.path().join(format!("{level}.db")))
                .durability(durability)
                .busy_timeout(Duration::from_millis(1234))
                .open()
                .unwrap();
            let check = |conn: &Connection, reader: bool| {
                let get = |pragma: &str| -> i64 {
                    conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
                        .unwrap()
                };
                assert_eq!(get("synchronous"), level);
                assert_eq!(get("foreign_keys"), 1);
                assert_eq!(get("busy_timeout"), 1234);
                assert_eq!(get("query_only"), i64::from(reader));
                // Readers map the file; the writer reads through its cache.
                assert_eq!(get("mmap_size") > 0, reader);
                let mode: String = conn
                    .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(mode, "wal");
            };
            let file = store.engine().file().unwrap();
            check(&file.reader().unwrap(), true);
            file.writer()
                .unwrap()
                .with_connection(|conn| {
                    check(conn, false);
                    Ok(())
                })
                .unwrap();
        }
    }
}
