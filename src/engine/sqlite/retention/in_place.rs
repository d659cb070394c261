//! Cleanup and vacuum written into the database file in place, without
//! the write-ahead log: the file's way out of a full disk (see
//! `MetricsStorage::cleanup_in_place`).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::engine::sqlite::open::schema::{classify_open_error, SCHEMA_VERSION};
use crate::engine::sqlite::open::{cannot_open, check_header, wal_size};
use crate::engine::sqlite::retention::cleanup::{delete_chunk, delete_rollup_chunk, DELETE_CHUNK};
use crate::engine::sqlite::retention::vacuum::{run_pragma, VACUUM_STEP_PAGES};
use crate::error::{Error, Result};
use crate::model::record::MetricKind;
use crate::model::reports::{CleanupReport, InPlaceReport, VacuumReport};
use crate::rollup::tiers::whole_buckets_before;

/// How long to wait for other connections to let go of the file.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Deletes every metric before `cutoff` (µs) from the file at `path` and
/// gives the freed pages back to the file system, in place.
pub(crate) fn cleanup(path: &Path, cutoff: i64) -> Result<InPlaceReport> {
    let conn = open_exclusive(path)?;
    let in_file = |e: Error| e.in_file(path);
    let bytes_before = size_on_disk(path)?;

    // The WAL's writes go into the main file first (in place when
    // their pages exist there), and the WAL is emptied.
    run_pragma(&conn, "PRAGMA wal_checkpoint(TRUNCATE)").map_err(|e| match e.in_file(path) {
        Error::DatabaseFull { path, .. } | Error::FileSystem { path, .. } => Error::NoRoomInPlace {
            wal_bytes: wal_size(&path),
            path,
        },
        other => other,
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
