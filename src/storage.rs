//! [`MetricsStorage`] itself: the type, its builder, its lifetime (open,
//! checkpoint, close) and the two ways in, the writer and the readers.
//!
//! Each of the store's concerns adds its calls to the type in a file of its
//! own, as one `impl MetricsStorage` block: [`crate::store`] (storing),
//! [`crate::read`] (rows back), [`crate::aggregate`], [`crate::analytics`],
//! [`crate::retention`], [`crate::generic`], [`crate::stats`] and
//! [`crate::plan`].

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use r2d2::{Pool, PooledConnection};
use rusqlite::types::{FromSql, Value as SqlValue};
use rusqlite::{params_from_iter, Connection, Row};

use crate::error::{Error, PoolError, Result};
use crate::open::pool::{OpenReaders, ReaderManager};
use crate::open::settings::{ConnectionSettings, Durability};
use crate::open::Options;
use crate::rows::{index_pending, Cache, DEFAULT_INDEX_BATCH_ROWS};
use crate::writer::checkpoint::{checkpoint_passive, truncate_wal, Checkpointer};
use crate::writer::{Writer, WriterOptions};

/// Whether `location` names a PostgreSQL server (a `postgres://` or
/// `postgresql://` URL) rather than a file; known also without the
/// `postgres` feature, so that such a URL is never taken for a file name.
fn server_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// Where [`MetricsStorage::open_default`] keeps its file, relative to the
/// current folder (the reference's location).
pub const DEFAULT_PATH: &str = ".swarm/metrics.db";

/// An embedded metrics store in one SQLite file.
///
/// Synchronous, `Send + Sync`: share it across threads by reference or in
/// an `Arc`. Reads use a pool of connections, one per thread at a time;
/// writes go through a single writer that commits concurrent stores
/// together (group commit), so callers never fight over SQLite's write lock
/// and every store that returns `Ok` is committed.
///
/// ```
/// use swarm_metrics::{Filter, MetricsStorage, TaskMetric, TaskResult};
///
/// let store = MetricsStorage::temporary()?;
/// store.store_task_metric(&TaskMetric::new("task-1", "agent-1", 1500, TaskResult::Success))?;
/// let rows = store.get_task_metrics(&Filter::new().agent("agent-1"), 100)?;
/// assert_eq!(rows.len(), 1);
/// # Ok::<(), swarm_metrics::Error>(())
/// ```
pub struct MetricsStorage {
    path: PathBuf,
    settings: ConnectionSettings,
    /// Taken out only while closing.
    readers: Option<Pool<ReaderManager>>,
    open_readers: Arc<OpenReaders>,
    /// `None` when opened read-only.
    writer: Option<Writer<Cache>>,
    /// The highest index watermark a reader has seen. The watermark only
    /// moves forward, so every task metric up to this one is indexed now,
    /// whatever was written since.
    watermark_seen: AtomicI64,
    /// The swarm names task metrics read so far named.
    pub(crate) swarm_names: crate::names::SwarmNames,
    /// This store's number among the stores of the process, for
    /// [`MetricsStorage::consistent`]'s pinned connection.
    id: u64,
    /// For a store on a PostgreSQL server, the server; the SQLite parts
    /// are then empty and unused.
    #[cfg(feature = "postgres")]
    postgres: Option<crate::postgres::PgStore>,
    closed: bool,
    /// Removes the folder of a [`MetricsStorage::temporary`] store; declared
    /// last so that it is dropped after every connection.
    _temporary: Option<tempfile::TempDir>,
}

/// Options for opening a [`MetricsStorage`]; start from
/// [`MetricsStorage::builder`].
///
/// | option | default |
/// |---|---|
/// | [`pool_size`](Self::pool_size) | 8 reader connections |
/// | [`busy_timeout`](Self::busy_timeout) | 5 seconds |
/// | [`durability`](Self::durability) | [`Durability::Normal`] |
/// | [`read_only`](Self::read_only) | `false` |
/// | [`create_dirs`](Self::create_dirs) | `true` |
/// | [`max_size_bytes`](Self::max_size_bytes) | no cap |
/// | [`index_batch_rows`](Self::index_batch_rows) | 4096 |
/// | [`mmap_size`](Self::mmap_size) | 1 GiB |
#[derive(Debug, Clone)]
pub struct StorageBuilder {
    file: Options,
    index_batch_rows: usize,
}

impl StorageBuilder {
    /// The most reader connections open at once.
    pub fn pool_size(mut self, size: u32) -> Self {
        self.file.pool_size = size;
        self
    }

    /// How long a connection waits for another process's lock before
    /// failing.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.file.busy_timeout = timeout;
        self
    }

    /// How much a commit waits for the disk.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.file.durability = durability;
        self
    }

    /// Opens without writing: stores fail with [`Error::ReadOnly`]. The file
    /// must exist and hold the current schema.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.file.read_only = read_only;
        self
    }

    /// Caps the database file at about `bytes`: a store that would grow it
    /// further fails with [`Error::DatabaseFull`] and writes nothing, and
    /// the store stays usable (deleting old metrics makes room again).
    /// Without a cap the file grows until the disk is full, which fails
    /// the same way.
    pub fn max_size_bytes(mut self, bytes: u64) -> Self {
        self.file.max_size = Some(bytes);
        self
    }

    /// How many task metrics wait, at most, before they join the agent and
    /// task-id indexes in one go. Each single store then writes the
    /// table's last page instead of a page of each index too, and a group
    /// writes each index page once for all its rows; queries by task id,
    /// agent or swarm read the waiting rows through the time order. A
    /// batch of this many metrics or more joins the indexes at once. Must
    /// be at least 1 ([`open`](Self::open) refuses 0).
    pub fn index_batch_rows(mut self, rows: usize) -> Self {
        self.index_batch_rows = rows;
        self
    }

    /// How much of the file reader connections map into memory (SQLite's
    /// `mmap_size`); 0 reads every page with a system call instead.
    ///
    /// A read that misses a connection's page cache then costs a memory
    /// access rather than a copy out of the operating system's cache:
    /// about a third off a point query over a file larger than the cache.
    /// The mapped pages are the operating system's file cache, shared by
    /// every connection and process, and count towards the process's
    /// resident size. The price: SQLite cannot turn a failed read of a
    /// mapped page (a disk error, or the file cut short by something
    /// other than SQLite) into an error; the operating system stops the
    /// process instead. Set 0 for a file on storage that may fail that
    /// way, such as a network file system (where SQLite's locking is not
    /// to be trusted either).
    pub fn mmap_size(mut self, bytes: u64) -> Self {
        self.file.mmap_size = bytes;
        self
    }

    /// Whether to create the file's missing parent folders.
    pub fn create_dirs(mut self, create: bool) -> Self {
        self.file.create_dirs = create;
        self
    }

    /// Opens the store.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a pool size or index batch of 0;
    /// [`Error::Io`] when a parent folder cannot be created;
    /// [`Error::CannotOpen`] when the file cannot be opened or created (a
    /// folder, a missing file in read-only mode, no permission);
    /// [`Error::NotADatabase`], [`Error::ForeignDatabase`],
    /// [`Error::SchemaTooNew`] or [`Error::SchemaTooOld`] when the file is
    /// not a store this version can use (it is left untouched);
    /// [`Error::Sqlite`] for other SQLite failures.
    pub fn open(self) -> Result<MetricsStorage> {
        MetricsStorage::open_with(self, None)
    }
}

impl MetricsStorage {
    /// Opens (or creates) the store at `path`, creating missing parent
    /// folders, with the default options. A `postgres://` (or
    /// `postgresql://`) URL opens the store on that PostgreSQL server
    /// instead (feature `postgres`): the same type, the same calls and
    /// answers, apart from those that work on a file only (see the
    /// README's PostgreSQL section).
    ///
    /// # Errors
    /// As [`StorageBuilder::open`]; for a URL without the `postgres`
    /// feature, [`Error::InvalidInput`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder(path).open()
    }

    /// Opens (or creates) `.swarm/metrics.db` under the current folder.
    ///
    /// # Errors
    /// As [`StorageBuilder::open`].
    pub fn open_default() -> Result<Self> {
        Self::open(DEFAULT_PATH)
    }

    /// A new store in a unique temporary file, removed when the store is
    /// dropped: for tests, each with its own database.
    ///
    /// # Errors
    /// [`Error::Io`] when no temporary folder can be created; otherwise as
    /// [`StorageBuilder::open`].
    pub fn temporary() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("swarm-metrics-")
            .tempdir()
            .map_err(|source| Error::Io {
                operation: "create temporary folder",
                path: std::env::temp_dir(),
                source,
            })?;
        let builder = Self::builder(dir.path().join("metrics.db"));
        Self::open_with(builder, Some(dir))
    }

    /// Options for opening the store at `path`.
    pub fn builder(path: impl AsRef<Path>) -> StorageBuilder {
        StorageBuilder {
            file: Options::new(path.as_ref().to_owned()),
            index_batch_rows: DEFAULT_INDEX_BATCH_ROWS,
        }
    }

    fn open_with(options: StorageBuilder, temporary: Option<tempfile::TempDir>) -> Result<Self> {
        if options.index_batch_rows == 0 {
            return Err(Error::invalid("index_batch_rows", "must be at least 1"));
        }
        if let Some(url) = options.file.path.to_str().filter(|p| server_url(p)) {
            return Self::open_server(url, &options);
        }
        let path = options.file.path.clone();
        let opened = crate::open::open(&options.file)?;
        let writer = match opened.checkpoint {
            None => None,
            Some(conn) => {
                let checkpointer = Checkpointer::start(conn).map_err(|source| Error::Io {
                    operation: "start checkpoint thread",
                    path: path.clone(),
                    source,
                })?;
                let caches = Cache::new(options.index_batch_rows);
                let writer_options = WriterOptions {
                    checkpointer: Some(checkpointer),
                    busy_timeout: options.file.busy_timeout,
                    path: path.clone(),
                };
                Some(Writer::new(opened.first, caches, writer_options)?)
            }
        };
        Ok(MetricsStorage {
            path,
            settings: opened.settings,
            readers: Some(opened.readers),
            open_readers: opened.open_readers,
            writer,
            watermark_seen: AtomicI64::new(i64::MIN),
            swarm_names: Default::default(),
            id: crate::consistent::new_store_id(),
            #[cfg(feature = "postgres")]
            postgres: None,
            closed: false,
            _temporary: temporary,
        })
    }

    /// Opens the store on the PostgreSQL server `url` names.
    #[cfg(feature = "postgres")]
    fn open_server(url: &str, options: &StorageBuilder) -> Result<Self> {
        if options.file.read_only {
            return Err(Error::Unsupported {
                operation: "opening read-only",
                backend: "PostgreSQL",
            });
        }
        let server =
            crate::postgres::PgStore::open(url, options.file.pool_size, options.file.busy_timeout)?;
        Ok(MetricsStorage {
            path: PathBuf::from(server.server()),
            settings: ConnectionSettings {
                busy_timeout: options.file.busy_timeout,
                durability: options.file.durability,
                read_only: false,
                mmap_size: options.file.mmap_size,
            },
            readers: None,
            open_readers: Arc::default(),
            writer: None,
            watermark_seen: AtomicI64::new(i64::MIN),
            swarm_names: Default::default(),
            id: crate::consistent::new_store_id(),
            postgres: Some(server),
            closed: false,
            _temporary: None,
        })
    }

    /// A PostgreSQL URL without the `postgres` feature: refused, rather
    /// than taken for a file name.
    #[cfg(not(feature = "postgres"))]
    fn open_server(_url: &str, _options: &StorageBuilder) -> Result<Self> {
        Err(Error::invalid(
            "path",
            "a PostgreSQL URL needs swarm-metrics built with the `postgres` feature",
        ))
    }

    /// The PostgreSQL server of a store opened by URL.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(&self) -> Option<&crate::postgres::PgStore> {
        self.postgres.as_ref()
    }

    /// The error of a call this kind of store does not offer yet.
    fn unsupported(operation: &'static str) -> Error {
        Error::Unsupported {
            operation,
            backend: "PostgreSQL",
        }
    }

    /// Whether `location` names a PostgreSQL server (a `postgres://` or
    /// `postgresql://` URL) rather than a file: what [`open`](Self::open)
    /// opens on a server.
    pub fn names_a_server(location: impl AsRef<Path>) -> bool {
        location.as_ref().to_str().is_some_and(server_url)
    }

    /// The database file; for a store on PostgreSQL, the server as
    /// `postgres://user@host:port/db` (never with its password).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the store was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.settings.read_only
    }

    /// A reader connection from the pool.
    pub(crate) fn reader(&self) -> Result<PooledConnection<ReaderManager>> {
        match &self.readers {
            Some(pool) => pool.get().map_err(|source| Error::Pool {
                path: self.path.clone(),
                source: PoolError(source),
            }),
            None if self.on_server() => Err(Self::unsupported("this call")),
            None => Err(Error::Internal("the store was used while closing")),
        }
    }

    /// Whether this store is on a PostgreSQL server.
    fn on_server(&self) -> bool {
        #[cfg(feature = "postgres")]
        return self.postgres.is_some();
        #[cfg(not(feature = "postgres"))]
        false
    }

    /// The single writer, or [`Error::ReadOnly`].
    pub(crate) fn writer(&self) -> Result<&Writer<Cache>> {
        if self.on_server() {
            return Err(Self::unsupported("this call"));
        }
        self.writer.as_ref().ok_or_else(|| Error::ReadOnly {
            path: self.path.clone(),
        })
    }

    /// Runs `read` with every read of this store made on this thread
    /// inside it seeing one snapshot of the file: the file as it was at
    /// the first read, whatever other threads and processes store, fold or
    /// delete meanwhile. Use it when several answers must add up, as the
    /// parts of a report or a dashboard do: the tasks of a success rate,
    /// of a leaderboard and of a series are then the same tasks.
    ///
    /// ```
    /// use swarm_metrics::{Filter, GroupBy, MetricsStorage, TaskMetric, TaskResult};
    ///
    /// let store = MetricsStorage::temporary()?;
    /// store.store_task_metric(&TaskMetric::new("t-1", "a-1", 120, TaskResult::Success))?;
    /// let (all, by_agent) = store.consistent(|store| {
    ///     let all = store.success_rate(&Filter::new())?;
    ///     let by_agent = store.success_rate_by(GroupBy::Agent, &Filter::new())?;
    ///     Ok((all, by_agent))
    /// })?;
    /// assert_eq!(all.total, by_agent.iter().map(|g| g.value.total).sum::<u64>());
    /// # Ok::<(), swarm_metrics::Error>(())
    /// ```
    ///
    /// One pooled reader connection is held for the whole call. Other
    /// threads are not affected. Stores made inside `read` are committed
    /// as usual, but the reads inside do not see them, as in any read
    /// transaction; nor do maintenance calls (retention, cleanup) made
    /// inside it see the snapshot: they read the file as it is. A nested
    /// call on the same store joins the outer snapshot. Keep the call
    /// short: while it is open, the write-ahead log cannot be
    /// checkpointed past the snapshot and grows with every store.
    ///
    /// # Errors
    /// [`Error::Pool`] when no reader connection can be had,
    /// [`Error::Sqlite`] when the read transaction cannot begin, and any
    /// error `read` returns.
    pub fn consistent<T>(&self, read: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        #[cfg(feature = "postgres")]
        if let Some(server) = self.postgres() {
            return server.consistent(|| read(self));
        }
        if crate::consistent::pinned(self.id).is_some() {
            return read(self);
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
            return Err(Error::sqlite("begin a consistent read")(e).in_file(self.path()));
        }
        let _pin = crate::consistent::pin(self.id, conn);
        read(self)
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
        if let Some(conn) = crate::consistent::pinned(self.id) {
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

    /// Puts the task metrics still waiting for the agent index into it,
    /// checkpoints the WAL into the database file and closes the store:
    /// afterwards the store is one file again. (A file at its size cap,
    /// with no room for the index entries, keeps them waiting: they are
    /// found all the same.)
    ///
    /// Dropping the store does the same, but cannot report failure.
    ///
    /// # Errors
    /// [`Error::Sqlite`] when indexing or the checkpoint fails; the store is
    /// closed all the same.
    pub fn close(mut self) -> Result<()> {
        self.shut_down()
    }

    /// What [`close`](Self::close) and drop do: every step runs, and the
    /// first failure is reported.
    fn shut_down(&mut self) -> Result<()> {
        self.closed = true;
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
    ///
    /// # Errors
    /// [`Error::Sqlite`] when the checkpoint fails (for example while
    /// another process holds a read transaction open).
    pub fn checkpoint(&self) -> Result<()> {
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
}

impl Drop for MetricsStorage {
    fn drop(&mut self) {
        if !self.closed {
            // Best effort: SQLite checkpoints again when the last
            // connection closes.
            let _ = self.shut_down();
        }
    }
}

impl std::fmt::Debug for MetricsStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsStorage")
            .field("path", &self.path)
            .field("read_only", &self.settings.read_only)
            .field("durability", &self.settings.durability)
            .finish_non_exhaustive()
    }
}

/// A reader connection inside [`MetricsStorage::snapshot`]'s read
/// transaction, or alone for one statement.
pub(crate) struct Snapshot<'a> {
    conn: &'a Connection,
    /// Whether this is [`MetricsStorage::consistent`]'s connection, with
    /// its read transaction open.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn storage_is_send_and_sync() {
        assert_send_sync::<MetricsStorage>();
    }

    #[test]
    fn temporary_stores_are_separate_and_removed_on_drop() {
        use crate::{Filter, TaskMetric, TaskResult};
        let a = MetricsStorage::temporary().unwrap();
        let b = MetricsStorage::temporary().unwrap();
        assert_ne!(a.path(), b.path());
        let folder = a.path().parent().unwrap().to_owned();
        a.store_task_metric(&TaskMetric::new("t", "a", 1, TaskResult::Success))
            .unwrap();
        assert!(b.get_task_metrics(&Filter::new(), 10).unwrap().is_empty());
        drop(a);
        assert!(!folder.exists());
    }

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
            check(&store.reader().unwrap(), true);
            store
                .writer()
                .unwrap()
                .with_connection(|conn| {
                    check(conn, false);
                    Ok(())
                })
                .unwrap();
        }
    }

    #[test]
    fn pool_size_zero_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = MetricsStorage::builder(dir.path().join("m.db"))
            .pool_size(0)
            .open()
            .unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "pool_size",
                ..
            }
        ));
    }
}
