//! The store on one SQLite file: the pool of readers, the single writer
//! and the checkpointer, and the ways a call reads the file (alone, in a
//! read transaction, or in the snapshot [`consistent`](FileStore::consistent)
//! pins).

pub(crate) mod aggregate;
mod alerts;
pub(crate) mod columns;
pub(crate) mod consistent;
pub(crate) mod filter;
pub(crate) mod functions;
mod grouped;
pub(crate) mod names;
pub(crate) mod open;
mod plan;
pub(crate) mod prices;
pub(crate) mod read;
pub(crate) mod retention;
pub(crate) mod rollup_codec;
pub(crate) mod rows;
mod series;
mod span;
mod stats;
mod store;
mod tally;
pub(crate) mod task_place;
mod tasks;
pub(crate) mod usage;
pub(crate) mod writer;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use r2d2::Pool;
use rusqlite::types::{FromSql, Value as SqlValue};
use rusqlite::{params_from_iter, Connection, Row};

use crate::engine::sqlite::names::{ModelNames, SwarmNames};
use crate::engine::sqlite::open::gate::ReadGate;
use crate::engine::sqlite::open::pool::{OpenReaders, Reader, ReaderManager};
use crate::engine::sqlite::open::settings::ConnectionSettings;
use crate::engine::sqlite::open::Options;
use crate::engine::sqlite::rows::{index_pending, Cache};
use crate::engine::sqlite::writer::checkpoint::{checkpoint_passive, truncate_wal, Checkpointer};
use crate::engine::sqlite::writer::{Writer, WriterOptions};
use crate::error::{Error, PoolError, Result};

/// A metrics store in one SQLite file.
pub(crate) struct FileStore {
    path: PathBuf,
    settings: ConnectionSettings,
    /// Taken out only while closing.
    readers: Option<Pool<ReaderManager>>,
    open_readers: Arc<OpenReaders>,
    /// What every read passes (see [`open::gate`]).
    gate: Arc<ReadGate>,
    /// `None` when opened read-only.
    writer: Option<Writer<Cache>>,
    /// The highest index watermark a reader has seen. The watermark only
    /// moves forward, so every task metric up to this one is indexed now,
    /// whatever was written since.
    watermark_seen: AtomicI64,
    /// The swarm names task metrics read so far named.
    pub(crate) swarm_names: SwarmNames,
    /// Models and providers read so far, by id.
    pub(crate) model_names: ModelNames,
    /// This store's number among the stores of the process, for
    /// [`consistent`](Self::consistent)'s pinned connection.
    id: u64,
    /// Removes the folder of a temporary store; declared last so that it
    /// is dropped after every connection.
    _temporary: Option<tempfile::TempDir>,
}

impl FileStore {
    /// Opens (or creates) the file `options` name, with task metrics
    /// joining the indexes `index_batch_rows` at a time.
    pub fn open(
        options: &Options,
        index_batch_rows: usize,
        temporary: Option<tempfile::TempDir>,
    ) -> Result<FileStore> {
        let path = options.path.clone();
        let opened = crate::engine::sqlite::open::open(options)?;
        let writer = match opened.checkpoint {
            None => None,
            Some(conn) => {
                let gate = Arc::clone(&opened.gate);
                let checkpointer = Checkpointer::start(conn, gate).map_err(|source| Error::Io {
                    operation: "start checkpoint thread",
                    path: path.clone(),
                    source,
                })?;
                let caches = Cache::new(index_batch_rows);
                let writer_options = WriterOptions {
                    checkpointer: Some(checkpointer),
                    busy_timeout: options.busy_timeout,
                    path: path.clone(),
                };
                Some(Writer::new(opened.first, caches, writer_options)?)
            }
        };
        Ok(FileStore {
            path,
            settings: opened.settings,
            readers: Some(opened.readers),
            open_readers: opened.open_readers,
            gate: opened.gate,
            writer,
            watermark_seen: AtomicI64::new(i64::MIN),
            swarm_names: SwarmNames::new("swarms"),
            model_names: ModelNames::new("models"),
            id: crate::engine::pinning::new_store_id(),
            _temporary: temporary,
        })
    }

    /// The database file.
    pub(crate) fn location(&self) -> &Path {
        &self.path
    }

    /// Whether the file was opened read-only.
    pub(crate) fn is_read_only(&self) -> bool {
        self.settings.read_only
    }

    /// A reader connection from the pool, through the read gate.
    pub(crate) fn reader(&self) -> Result<Reader> {
        match &self.readers {
            Some(pool) => Reader::check_out(&self.gate, pool).map_err(|source| Error::Pool {
                path: self.path.clone(),
                source: PoolError(source),
            }),
            None => Err(Error::Internal("the store was used while closing")),
        }
    }

    /// The single writer, or [`Error::ReadOnly`].
    pub(crate) fn writer(&self) -> Result<&Writer<Cache>> {
        self.writer.as_ref().ok_or_else(|| Error::ReadOnly {
            path: self.path.clone(),
        })
    }

    /// Runs `read` with every read of this store on this thread seeing one
    /// snapshot of the file; see
    /// [`MetricsStorage::consistent`](crate::MetricsStorage::consistent).
    pub(crate) fn consistent<T>(&self, read: impl FnOnce() -> Result<T>) -> Result<T> {
        if crate::engine::pinning::is_pinned(self.id) {
            return read();
        }
        let conn = self.reader()?;
        // BEGIN alone takes no snapshot; the first read does. Reading the
        // schema version here fixes the snapshot at the start of the call.
        let begun = conn.execute_batch("BEGIN").and_then(|()| {
            conn.query_row("SELECT max(version) FROM metrics_schema_info", [], |_| {
                Ok(())
            })
        });
        if let Err(e) = begun {
            // The connection goes back to the pool: it must not keep a
            // transaction (and an old snapshot) open there.
            let _ = conn.execute_batch("ROLLBACK");
            return Err(Error::sqlite("begin a consistent read")(e).in_file(self.location()));
        }
        let _pin = crate::engine::sqlite::consistent::pin(self.id, conn);
        read()
    }

    /// Runs `read` on one pooled reader connection inside one read
    /// transaction: every statement it runs sees the same snapshot of the
    /// file, whatever is written meanwhile.
    pub(crate) fn snapshot<T>(&self, read: impl FnOnce(&Snapshot<'_>) -> Result<T>) -> Result<T> {
        self.read(|snapshot| {
            if snapshot.pinned {
                // Inside `consistent`: its transaction is already open.
                return read(snapshot);
            }
            let statement = |sql, operation| {
                snapshot
                    .conn
                    .prepare_cached(sql)
                    .and_then(|mut s| s.execute([]))
                    .map_err(Error::sqlite(operation))
            };
            statement("BEGIN", "begin read")?;
            let result = read(snapshot);
            // A read transaction has nothing to commit; ending it lets the
            // WAL be checkpointed past it.
            let end = statement("COMMIT", "end read");
            let value = result?;
            end?;
            Ok(value)
        })
    }

    /// Runs `read` on one pooled reader connection, without a read
    /// transaction around it: each statement sees a consistent snapshot of
    /// its own. Inside [`consistent`](Self::consistent), on its pinned
    /// connection instead, in its snapshot.
    pub(crate) fn read<T>(&self, read: impl FnOnce(&Snapshot<'_>) -> Result<T>) -> Result<T> {
        if let Some(conn) = crate::engine::sqlite::consistent::pinned(self.id) {
            return read(&Snapshot {
                conn: &conn,
                pinned: true,
            })
            .map_err(|e| e.in_file(&self.path));
        }
        self.read_now(read)
    }

    /// As [`read`](Self::read), but always on a fresh connection: the file
    /// as it is now, also inside [`consistent`](Self::consistent). For the
    /// checks maintenance makes before it writes.
    pub(crate) fn read_now<T>(&self, read: impl FnOnce(&Snapshot<'_>) -> Result<T>) -> Result<T> {
        let conn = self.reader()?;
        read(&Snapshot {
            conn: &conn,
            pinned: false,
        })
        .map_err(|e| e.in_file(&self.path))
    }

    /// An index watermark at or after `at` (µs), read from the file only
    /// when none seen so far is: every task metric up to the answer is in
    /// the agent and task-id indexes.
    pub(crate) fn watermark_from(&self, snapshot: &Snapshot<'_>, at: i64) -> Result<i64> {
        let seen = self.watermark_seen.load(Ordering::Relaxed);
        // A pinned snapshot may be older than the watermark seen since: it
        // must read its own.
        if at <= seen && !snapshot.pinned {
            return Ok(seen);
        }
        let now: i64 = snapshot
            .one(
                "SELECT watermark FROM task_index_state",
                Vec::new(),
                "read the index watermark",
            )?
            .unwrap_or(i64::MIN);
        self.watermark_seen.fetch_max(now, Ordering::Relaxed);
        Ok(now)
    }

    /// Runs one read query on a pooled connection and maps every row.
    pub(crate) fn read_rows<T>(
        &self,
        sql: &str,
        params: Vec<SqlValue>,
        operation: &'static str,
        map: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.read(|snapshot| snapshot.rows(sql, params, operation, map))
    }

    /// Indexes the waiting task metrics, checkpoints the WAL and closes
    /// every connection; see [`MetricsStorage::close`](crate::MetricsStorage::close).
    /// Every step runs, and the first failure is reported.
    pub fn shut_down(&mut self) -> Result<()> {
        // Waiting rows are read through the time order whether or not they
        // are in the indexes: a file at its size cap closes with them
        // waiting rather than fail.
        let indexed = match self.index_pending() {
            Err(Error::DatabaseFull { .. }) => Ok(()),
            other => other,
        };
        if let Some(writer) = &self.writer {
            writer.stop_checkpointer();
        }
        let checkpoint = self.checkpoint();
        self.close_readers();
        indexed.and(checkpoint)
    }

    /// Puts the task metrics still waiting for the agent index into it, so
    /// that the closed file serves agent and swarm queries from the index
    /// alone.
    fn index_pending(&self) -> Result<()> {
        match &self.writer {
            Some(writer) => writer.run(index_pending),
            None => Ok(()),
        }
    }

    /// Closes every reader connection, so that the writer, dropped after
    /// them, is the last connection: SQLite then checkpoints once more and
    /// removes the WAL and shared-memory files.
    fn close_readers(&mut self) {
        drop(self.readers.take());
        // r2d2 may still hold a connection on one of its threads for a
        // moment; it lets go as soon as that thread's job ends.
        self.open_readers.wait_all_closed(Duration::from_secs(5));
    }

    /// Copies the WAL into the main file and truncates it.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        let Some(writer) = &self.writer else {
            return Ok(());
        };
        writer.with_connection(|conn| {
            checkpoint_passive(conn)
                .and_then(|()| truncate_wal(conn, self.settings.busy_timeout))
                .map(drop)
                .map_err(Error::sqlite("checkpoint"))
        })
    }

    /// The settings every connection of the file got.
    pub fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }
}

/// A reader connection inside [`FileStore::snapshot`]'s read
/// transaction, or alone for one statement.
pub(crate) struct Snapshot<'a> {
    conn: &'a Connection,
    /// Whether this is [`FileStore::consistent`]'s connection, with its
    /// read transaction open.
    pinned: bool,
}

impl Snapshot<'_> {
    /// Runs a read query and maps every row.
    pub fn rows<T>(
        &self,
        sql: &str,
        params: Vec<SqlValue>,
        operation: &'static str,
        mut map: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.each(sql, params, operation, |row| {
            out.push(map(row)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first column of the first row of a read query, if any row.
    pub fn one<T: FromSql>(
        &self,
        sql: &str,
        params: Vec<SqlValue>,
        operation: &'static str,
    ) -> Result<Option<T>> {
        let mut first = None;
        self.each(sql, params, operation, |row| {
            if first.is_none() {
                first = Some(row.get(0).map_err(Error::sqlite(operation))?);
            }
            Ok(())
        })?;
        Ok(first)
    }

    /// Runs a read query and hands each row to `visit`.
    pub fn each(
        &self,
        sql: &str,
        params: Vec<SqlValue>,
        operation: &'static str,
        visit: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        each_row(self.conn, sql, params, operation, visit)
    }

    /// Runs a read query and hands each row to `visit` until it says stop.
    pub fn each_until(
        &self,
        sql: &str,
        params: Vec<SqlValue>,
        operation: &'static str,
        visit: impl FnMut(&Row<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        each_row_until(self.conn, sql, params, operation, visit)
    }
}

/// Runs a query on `conn` (a reader, or the writer inside a job) and
/// hands each row to `visit`, stopping at the first error.
pub(crate) fn each_row(
    conn: &Connection,
    sql: &str,
    params: Vec<SqlValue>,
    operation: &'static str,
    mut visit: impl FnMut(&Row<'_>) -> Result<()>,
) -> Result<()> {
    each_row_until(conn, sql, params, operation, |row| {
        visit(row).map(|()| ControlFlow::Continue(()))
    })
}

/// [`each_row`], also stopping when `visit` says stop.
pub(crate) fn each_row_until(
    conn: &Connection,
    sql: &str,
    params: Vec<SqlValue>,
    operation: &'static str,
    mut visit: impl FnMut(&Row<'_>) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(sql).map_err(Error::sqlite(operation))?;
    let mut rows = stmt
        .query(params_from_iter(params))
        .map_err(Error::sqlite(operation))?;
    while let Some(row) = rows.next().map_err(Error::sqlite(operation))? {
        if visit(row)?.is_break() {
            break;
        }
    }
    Ok(())
}
