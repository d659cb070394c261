//! Freeing space on a full disk: cleanup and vacuum written into the
//! database file in place, without the write-ahead log.
//!
//! Every ordinary write of a store goes through the WAL, which needs new
//! disk space for each changed page; on a full disk even a delete fails.
//! Deleting rows and vacuuming needs no new pages in the main file (freed
//! pages are reused, and the vacuum only moves pages down and truncates),
//! so with the rollback journal kept in memory instead of on disk, both
//! can run in place. What that costs: the memory journal rolls a failed
//! statement back, but a process killed in the middle of a transaction
//! leaves it half-written, so this is the way out of a full disk, not the
//! way to run maintenance.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use super::cleanup::{cutoff, CleanupReport};
use super::vacuum::VacuumReport;
use crate::engine::sqlite::open::schema::{classify_open_error, SCHEMA_VERSION};
use crate::engine::sqlite::open::{cannot_open, check_header, wal_size};
use crate::engine::sqlite::retention::cleanup::{delete_chunk, delete_rollup_chunk, DELETE_CHUNK};
use crate::engine::sqlite::retention::vacuum::{run_pragma, VACUUM_STEP_PAGES};
use crate::error::{Error, Result};
use crate::record::MetricKind;
use crate::storage::MetricsStorage;
use crate::tiers::whole_buckets_before;

/// How long to wait for other connections to let go of the file.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// What [`MetricsStorage::cleanup_in_place`] deleted, and the size of the
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

impl MetricsStorage {
    /// Frees space on a full disk: deletes every metric older than
    /// `retention_days` days (as
    /// [`cleanup_old_metrics`](Self::cleanup_old_metrics)) and gives the
    /// freed pages back to the file system, writing into the database file
    /// in place, so that no new disk space is needed.
    ///
    /// An ordinary store cannot do this: its writes go through the
    /// write-ahead log, which needs new space for every page it changes.
    /// This opens the file itself, exclusively, with the rollback journal
    /// in memory, and turns the WAL back on at the end.
    ///
    /// - No other process may have the store open meanwhile; stop them
    ///   first (it waits 5 s for them, then fails).
    /// - It is not safe against a crash: a process killed or a machine
    ///   stopping while it runs can leave the file damaged. Let it finish.
    /// - When the WAL still holds writes that the main file has no room
    ///   for (the disk filled while storing), nothing can be done in
    ///   place: free some space on the disk (any file will do), then run
    ///   an ordinary cleanup.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for 0 days; [`Error::CannotOpen`] for a
    /// missing file, or one that another process has open;
    /// [`Error::ForeignDatabase`], [`Error::NotADatabase`],
    /// [`Error::SchemaTooOld`] / [`Error::SchemaTooNew`] (a migration needs
    /// space: open the store normally once there is some);
    /// [`Error::NoRoomInPlace`] in the WAL case above;
    /// [`Error::DatabaseFull`] or [`Error::FileSystem`] when even this
    /// cannot be written.
    pub fn cleanup_in_place(path: impl AsRef<Path>, retention_days: u32) -> Result<InPlaceReport> {
        let path = path.as_ref();
        if MetricsStorage::names_a_server(path) {
            // A server frees space its own way: cleanup drops whole months.
            return Err(Error::Unsupported {
                operation: "cleanup in place (a file's remedy for a full disk)",
                backend: "PostgreSQL",
            });
        }
        let cutoff = cutoff(retention_days)?;
        let conn = open_exclusive(path)?;
        let in_file = |e: Error| e.in_file(path);
        let bytes_before = size_on_disk(path)?;

        // The WAL's writes go into the main file first (in place when
        // their pages exist there), and the WAL is emptied.
        run_pragma(&conn, "PRAGMA wal_checkpoint(TRUNCATE)").map_err(|e| {
            match e.in_file(path) {
                Error::DatabaseFull { path, .. } | Error::FileSystem { path, .. } => {
                    Error::NoRoomInPlace {
                        wal_bytes: wal_size(&path),
                        path,
                    }
                }
                other => other,
            }
        })?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = MEMORY", [], |r| r.get(0))
            .map_err(Error::sqlite("keep the journal in memory"))
            .map_err(in_file)?;
        if !mode.eq_ignore_ascii_case("memory") {
            return Err(cannot_open(
                path,
                &format!("the journal stayed in {mode} mode"),
            ));
        }

        let deleted = delete_old(&conn, cutoff).map_err(in_file);
        let vacuumed = deleted.and_then(|deleted| {
            vacuum_in_place(&conn).map_err(in_file)?;
            Ok(deleted)
        });
        // The WAL comes back whatever happened; the next ordinary open
        // would turn it on too.
        let wal = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            .map_err(Error::sqlite("turn the WAL back on"))
            .map_err(in_file);
        let deleted = vacuumed?;
        wal?;
        drop(conn);
        Ok(InPlaceReport {
            deleted,
            size: VacuumReport {
                bytes_before,
                bytes_after: size_on_disk(path)?,
            },
        })
    }
}

/// Opens an existing store of the current schema with an exclusive lock,
/// which also keeps SQLite's WAL index in memory instead of the `-shm`
/// file (which a full disk may have no room for).
fn open_exclusive(path: &Path) -> Result<Connection> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(cannot_open(path, "not a regular file")),
        Err(_) => return Err(cannot_open(path, "no such file")),
    }
    check_header(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| classify_open_error(path, source, "open database"))?;
    conn.busy_timeout(LOCK_WAIT)
        .map_err(Error::sqlite("set busy timeout"))?;
    conn.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |_| Ok(()))
        .map_err(Error::sqlite("lock the database"))?;
    // The first read takes the lock.
    let version: Option<i64> = conn
        .query_row("SELECT max(version) FROM metrics_schema_info", [], |r| {
            r.get(0)
        })
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                cannot_open(
                    path,
                    "another process has the store open: stop it before freeing space in place",
                )
            }
            _ => classify_open_error(path, e, "read schema"),
        })?;
    match version {
        Some(v) if v == SCHEMA_VERSION => Ok(conn),
        Some(v) if v > SCHEMA_VERSION => Err(Error::SchemaTooNew {
            path: path.to_owned(),
            found: v,
            supported: SCHEMA_VERSION,
        }),
        found => Err(Error::SchemaTooOld {
            path: path.to_owned(),
            found: found.unwrap_or(0),
            current: SCHEMA_VERSION,
        }),
    }
}

/// Deletes, a chunk per transaction, every metric before `cutoff` (µs) and
/// every rollup wholly before it.
fn delete_old(conn: &Connection, cutoff: i64) -> Result<CleanupReport> {
    let mut report = CleanupReport::default();
    for kind in MetricKind::ALL {
        let rows = repeat_while_full(conn, DELETE_CHUNK as usize, || {
            delete_chunk(conn, *kind, cutoff, DELETE_CHUNK)
        })?;
        report.set(*kind, rows);
        for (level, last_bucket) in whole_buckets_before(cutoff) {
            report.rollups += repeat_while_full(conn, 1, || {
                delete_rollup_chunk(conn, *kind, level, last_bucket)
            })?;
        }
    }
    Ok(report)
}

/// Runs `chunk` in a transaction of its own, again and again while it
/// does `full` rows or more; returns the rows done.
fn repeat_while_full(
    conn: &Connection,
    full: usize,
    mut chunk: impl FnMut() -> Result<usize>,
) -> Result<u64> {
    let mut total = 0;
    loop {
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(Error::sqlite("clean up old metrics"))?;
        let done = match chunk() {
            Ok(done) => done,
            Err(e) => {
                // Fails only when SQLite rolled back already.
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        };
        conn.execute_batch("COMMIT")
            .map_err(Error::sqlite("clean up old metrics"))?;
        total += done as u64;
        if done < full {
            return Ok(total);
        }
    }
}

/// Gives every free page back to the file system, a step per transaction.
/// A file made without incremental vacuum (by another tool) keeps its
/// free pages for reuse: rebuilding it would need free space.
fn vacuum_in_place(conn: &Connection) -> Result<()> {
    let free_pages = || -> Result<i64> {
        conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .map_err(Error::sqlite("vacuum"))
    };
    let mut free = free_pages()?;
    while free > 0 {
        run_pragma(
            conn,
            &format!("PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})"),
        )?;
        let left = free_pages()?;
        if left >= free {
            break;
        }
        free = left;
    }
    Ok(())
}

/// The bytes of the database file and its WAL.
fn size_on_disk(path: &Path) -> Result<u64> {
    let main = std::fs::metadata(path).map_err(|source| Error::Io {
        operation: "read file size",
        path: path.to_owned(),
        source,
    })?;
    let wal = wal_size(path);
    Ok(main.len() + wal)
}
