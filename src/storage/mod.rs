//! [`MetricsStorage`] itself: the type, its builder and its lifetime
//! (open, checkpoint, close), over the engine it was opened on.
//!
//! Each of the store's concerns adds its calls to the type in a file of its
//! own, as one `impl MetricsStorage` block: [`crate::storage::write`] (storing),
//! [`crate::query::read`] (rows back), [`crate::query::aggregate`], [`crate::query::analytics`],
//! [`crate::ops::retention`], [`crate::query::generic`], [`crate::ops::inspect`] and
//! [`crate::ops::plan`]. Each validates its arguments and then asks the engine
//! ([`crate::engine::Backend`]).

pub(crate) mod prices;
pub(crate) mod write;

use std::path::Path;
use std::time::Duration;

use crate::engine::sqlite::open::settings::Durability;
use crate::engine::sqlite::open::Options;
use crate::engine::sqlite::rows::DEFAULT_INDEX_BATCH_ROWS;
use crate::engine::sqlite::FileStore;
use crate::engine::{on_engine, Engine};
use crate::error::{Error, Result};

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
    engine: Engine,
    closed: bool,
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
///
/// On a PostgreSQL server only `pool_size` and `busy_timeout` apply (the
/// most connections, and how long a call waits for one); the others
/// concern a file, and opening a server with any of them set is refused
/// rather than ignored.
#[derive(Debug, Clone)]
pub struct StorageBuilder {
    file: Options,
    index_batch_rows: usize,
    /// The options set that apply to a file only, in the order set: a
    /// store on a server refuses them rather than ignore them.
    file_only: Vec<&'static str>,
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
        self.file_only.push("durability");
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
        self.file_only.push("max_size_bytes");
        self.file.max_size = Some(bytes);
        self
    }

    /// How many task metrics wait, at most, before they join the agent and
    /// task-id indexes in one go. Each single store then writes the
    /// table's last page instead of a page of each index too, and a group
    /// writes each index page once for all its rows; queries by task id,
    /// agent or swarm read the waiting rows through the time order. A
    /// batch of this many metrics or more joins the indexes at once. When
    /// several processes store into one file, each counts its own stores,
    /// so up to this many per process wait. Must be at least 1
    /// ([`open`](Self::open) refuses 0).
    pub fn index_batch_rows(mut self, rows: usize) -> Self {
        self.file_only.push("index_batch_rows");
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
        self.file_only.push("mmap_size");
        self.file.mmap_size = bytes;
        self
    }

    /// Whether to create the file's missing parent folders.
    pub fn create_dirs(mut self, create: bool) -> Self {
        self.file_only.push("create_dirs");
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
    /// [`Error::Sqlite`] for other SQLite failures. On a server:
    /// [`Error::InvalidInput`] naming an option that applies to a file
    /// only, [`Error::Unsupported`] for `read_only(true)`, and
    /// `Error::Postgres` or [`Error::Pool`] when the server cannot be
    /// reached or its schema made current.
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

    /// Options for opening the store at `path` (a file, or a PostgreSQL
    /// URL).
    pub fn builder(path: impl AsRef<Path>) -> StorageBuilder {
        StorageBuilder {
            file: Options::new(path.as_ref().to_owned()),
            index_batch_rows: DEFAULT_INDEX_BATCH_ROWS,
            file_only: Vec::new(),
        }
    }

    fn open_with(options: StorageBuilder, temporary: Option<tempfile::TempDir>) -> Result<Self> {
        if options.index_batch_rows == 0 {
            return Err(Error::invalid("index_batch_rows", "must be at least 1"));
        }
        let engine = match options.file.path.to_str().filter(|p| server_url(p)) {
            Some(url) => Engine::open_server(url, &options.file, &options.file_only)?,
            None => Engine::File(Box::new(FileStore::open(
                &options.file,
                options.index_batch_rows,
                temporary,
            )?)),
        };
        Ok(MetricsStorage {
            engine,
            closed: false,
        })
    }

    /// The engine the store was opened on.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether `location` names a PostgreSQL server (a `postgres://` or
    /// `postgresql://` URL) rather than a file: what [`open`](Self::open)
    /// opens on a server.
    pub fn names_a_server(location: impl AsRef<Path>) -> bool {
        location.as_ref().to_str().is_some_and(server_url)
    }

    /// The database file. For a store on PostgreSQL, the server as
    /// `postgres://user@host:port/db` (never with its password), which
    /// names no file: use it in messages only.
    pub fn path(&self) -> &Path {
        on_engine!(&self.engine, location())
    }

    /// Whether the store was opened read-only (never, on a server).
    pub fn is_read_only(&self) -> bool {
        on_engine!(&self.engine, is_read_only())
    }

    /// Runs `read` with every read of this store made on this thread
    /// inside it seeing one snapshot of the store: the data as it was at
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
    /// inside it see the snapshot: they read the store as it is. A nested
    /// call on the same store joins the outer snapshot. Keep the call
    /// short: on a file, while it is open, the write-ahead log cannot be
    /// checkpointed past the snapshot and grows with every store. On a
    /// server the snapshot is a repeatable-read transaction, and a store
    /// inside it that needs a new monthly partition is refused with
    /// [`Error::Unsupported`] (it would wait on the snapshot's locks).
    ///
    /// # Errors
    /// [`Error::Pool`] when no reader connection can be had,
    /// [`Error::Sqlite`] or `Error::Postgres` when the read transaction
    /// cannot begin, and any error `read` returns.
    pub fn consistent<T>(&self, read: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        on_engine!(&self.engine, consistent(|| read(self)))
    }

    /// On a file: puts the task metrics still waiting for the agent index
    /// into it, checkpoints the WAL into the database file and closes the
    /// store; afterwards the store is one file again. (A file at its size
    /// cap, with no room for the index entries, keeps them waiting: they
    /// are found all the same.) On a server: closes the connections.
    ///
    /// Dropping the store does the same, but cannot report failure.
    ///
    /// # Errors
    /// On a file, [`Error::Sqlite`] when indexing or the checkpoint fails;
    /// the store is closed all the same. Never on a server.
    pub fn close(mut self) -> Result<()> {
        self.shut_down()
    }

    /// What [`close`](Self::close) and drop do.
    fn shut_down(&mut self) -> Result<()> {
        self.closed = true;
        self.engine.close()
    }

    /// On a file, copies the WAL into the main file and truncates it. On
    /// a server, does nothing: the server checkpoints on its own.
    ///
    /// # Errors
    /// [`Error::Sqlite`] when the checkpoint fails (for example while
    /// another process holds a read transaction open).
    pub fn checkpoint(&self) -> Result<()> {
        on_engine!(&self.engine, checkpoint())
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
        let mut debug = f.debug_struct("MetricsStorage");
        debug.field("path", &self.path());
        debug.field("read_only", &self.is_read_only());
        if let Some(file) = self.engine.file() {
            debug.field("durability", &file.settings().durability);
        }
        debug.finish_non_exhaustive()
    }
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
