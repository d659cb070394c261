//! [`MetricsStorage`]: opening a store, storing metrics and reading them
//! back.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection, Row};

use crate::checkpoint::Checkpointer;
use crate::error::{Error, Result};
use crate::pool::{OpenReaders, ReaderManager};
use crate::query::{from_micros, select_sql, select_sql_ordered, validate_limit, Filter};
use crate::record::{AgentMetric, MetricKind, Stored, SwarmMetric, TaskMetric, TaskResult};
use crate::schema::{classify_open_error, open_database, ConnectionSettings, Durability};
use crate::writer::{Output, Work, Writer};

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
    writer: Option<Writer>,
    closed: bool,
    /// Removes the folder of a [`MetricsStorage::temporary`] store; declared
    /// last so that it is dropped after every connection.
    _temporary: Option<tempfile::TempDir>,
}

/// Metrics of all three kinds, stored together by
/// [`MetricsStorage::store_batch`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricBatch {
    /// Task metrics.
    pub tasks: Vec<TaskMetric>,
    /// Agent metrics.
    pub agents: Vec<AgentMetric>,
    /// Swarm metrics.
    pub swarms: Vec<SwarmMetric>,
}

impl MetricBatch {
    /// How many metrics the batch holds.
    pub fn len(&self) -> usize {
        self.tasks.len() + self.agents.len() + self.swarms.len()
    }

    /// Whether the batch holds no metric.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What [`MetricsStorage::store_batch`] stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Task metrics that were new (the rest were already stored).
    pub new_tasks: usize,
    /// The ids given to the agent metrics, in order.
    pub agent_ids: Vec<i64>,
    /// The ids given to the swarm metrics, in order.
    pub swarm_ids: Vec<i64>,
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
#[derive(Debug, Clone)]
pub struct StorageBuilder {
    path: PathBuf,
    pool_size: u32,
    busy_timeout: Duration,
    durability: Durability,
    read_only: bool,
    create_dirs: bool,
    max_size: Option<u64>,
    index_batch_rows: usize,
}

impl StorageBuilder {
    /// The most reader connections open at once.
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size;
        self
    }

    /// How long a connection waits for another process's lock before
    /// failing.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How much a commit waits for the disk.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Opens without writing: stores fail with [`Error::ReadOnly`]. The file
    /// must exist and hold the current schema.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Caps the database file at about `bytes`: a store that would grow it
    /// further fails with [`Error::DatabaseFull`] and writes nothing, and
    /// the store stays usable (deleting old metrics makes room again).
    /// Without a cap the file grows until the disk is full, which fails
    /// the same way.
    pub fn max_size_bytes(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// How many task metrics stored one at a time wait, at most, before
    /// they join the agent index in one go. Each single store then writes
    /// the table's last page instead of a page of the agent index too;
    /// queries by agent or swarm read the waiting rows through the time
    /// order. Batches of 64 or more metrics join the index at once. Must
    /// be at least 1 ([`open`](Self::open) refuses 0).
    pub fn index_batch_rows(mut self, rows: usize) -> Self {
        self.index_batch_rows = rows;
        self
    }

    /// Whether to create the file's missing parent folders.
    pub fn create_dirs(mut self, create: bool) -> Self {
        self.create_dirs = create;
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
    /// folders, with the default options.
    ///
    /// # Errors
    /// As [`StorageBuilder::open`].
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
            path: path.as_ref().to_owned(),
            pool_size: 8,
            busy_timeout: Duration::from_secs(5),
            durability: Durability::Normal,
            read_only: false,
            create_dirs: true,
            max_size: None,
            index_batch_rows: crate::rows::DEFAULT_INDEX_BATCH_ROWS,
        }
    }

    fn open_with(options: StorageBuilder, temporary: Option<tempfile::TempDir>) -> Result<Self> {
        if options.pool_size == 0 {
            return Err(Error::invalid("pool_size", "must be at least 1"));
        }
        if options.index_batch_rows == 0 {
            return Err(Error::invalid("index_batch_rows", "must be at least 1"));
        }
        let path = options.path;
        if path.as_os_str().is_empty() {
            return Err(Error::invalid("path", "must not be empty"));
        }
        if path.is_dir() {
            return Err(Error::CannotOpen {
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some("the path is a folder".to_owned()),
                ),
                path,
            });
        }
        if options.read_only && !path.exists() {
            return Err(Error::CannotOpen {
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some("no such file (a read-only store is never created)".to_owned()),
                ),
                path,
            });
        }
        if options.create_dirs && !options.read_only {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                    operation: "create parent folder",
                    path: parent.to_owned(),
                    source,
                })?;
            }
        }
        let settings = ConnectionSettings {
            busy_timeout: options.busy_timeout,
            durability: options.durability,
            read_only: options.read_only,
        };
        let (first, target) = match open_database(&path, &settings) {
            Err(Error::ReadOnly { .. } | Error::CannotOpen { .. })
                if settings.read_only && !side_file(&path, "-wal").exists() =>
            {
                // A WAL database in a folder this process cannot write:
                // SQLite cannot create the shared-memory file it reads
                // through. With no WAL file there is nothing but the main
                // file to read, so read it as immutable.
                let target = immutable_uri(&path);
                (
                    open_database(Path::new(&target), &settings)?,
                    PathBuf::from(target),
                )
            }
            other => (other?, path.clone()),
        };
        if let Some(bytes) = options.max_size {
            let page_size: i64 = first
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .map_err(Error::sqlite("read page size"))?;
            let pages = i64::try_from(bytes).unwrap_or(i64::MAX) / page_size.max(1);
            first
                .query_row(
                    &format!("PRAGMA max_page_count = {}", pages.max(1)),
                    [],
                    |_| Ok(()),
                )
                .map_err(Error::sqlite("cap database size"))?;
        }
        let writer = if settings.read_only {
            None
        } else {
            let conn = Connection::open_with_flags(&path, settings.flags())
                .and_then(|conn| settings.apply(&conn, false).map(|()| conn))
                .map_err(|source| {
                    classify_open_error(&path, source, "open checkpoint connection")
                })?;
            let checkpointer = Checkpointer::start(conn).map_err(|source| Error::Io {
                operation: "start checkpoint thread",
                path: path.clone(),
                source,
            })?;
            Some(Writer::new(
                first,
                Some(checkpointer),
                options.index_batch_rows,
            )?)
        };
        let open_readers = Arc::new(OpenReaders::default());
        let manager = ReaderManager::new(
            SqliteConnectionManager::file(&target)
                .with_flags(settings.flags())
                .with_init(move |conn| settings.apply(conn, true)),
            Arc::clone(&open_readers),
        );
        let readers = Pool::builder()
            .max_size(options.pool_size)
            .min_idle(Some(0))
            .connection_timeout(options.busy_timeout.max(Duration::from_secs(1)))
            .build(manager)?;
        Ok(MetricsStorage {
            path,
            settings,
            readers: Some(readers),
            open_readers,
            writer,
            closed: false,
            _temporary: temporary,
        })
    }

    /// The database file.
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
            Some(pool) => Ok(pool.get()?),
            None => Err(Error::Internal("the store was used while closing")),
        }
    }

    /// The single writer, or [`Error::ReadOnly`].
    pub(crate) fn writer(&self) -> Result<&Writer> {
        self.writer.as_ref().ok_or_else(|| Error::ReadOnly {
            path: self.path.clone(),
        })
    }

    /// Stores one task metric; returns `false` when a metric with the same
    /// `task_id` and `timestamp` was already stored (it is left as it was:
    /// a retried store is never counted twice).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad field (nothing is written);
    /// [`Error::ReadOnly`]; [`Error::Sqlite`] when the write fails.
    pub fn store_task_metric(&self, metric: &TaskMetric) -> Result<bool> {
        self.store_task_metrics(std::slice::from_ref(metric))
            .map(|n| n == 1)
    }

    /// Stores task metrics in one transaction: all or nothing. Returns how
    /// many were new (see [`store_task_metric`](Self::store_task_metric)).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad record (nothing is
    /// written); [`Error::ReadOnly`]; [`Error::Sqlite`] when the write fails
    /// (nothing is written).
    pub fn store_task_metrics(&self, metrics: &[TaskMetric]) -> Result<usize> {
        for (i, metric) in metrics.iter().enumerate() {
            metric
                .validate()
                .map_err(|e| in_batch(e, i, metrics.len()))?;
        }
        let writer = self.writer()?;
        if metrics.is_empty() {
            return Ok(0);
        }
        match writer.submit(Work::Tasks(Cow::Borrowed(metrics)))? {
            Output::Tasks(n) => Ok(n),
            _ => unreachable_output(),
        }
    }

    /// Stores one agent metric and returns its id.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad field (nothing is written);
    /// [`Error::ReadOnly`]; [`Error::Sqlite`] when the write fails.
    pub fn store_agent_metric(&self, metric: &AgentMetric) -> Result<i64> {
        self.store_agent_metrics(std::slice::from_ref(metric))
            .map(|ids| ids[0])
    }

    /// Stores agent metrics in one transaction, all or nothing, and returns
    /// their ids in order.
    ///
    /// # Errors
    /// As [`store_task_metrics`](Self::store_task_metrics).
    pub fn store_agent_metrics(&self, metrics: &[AgentMetric]) -> Result<Vec<i64>> {
        for (i, metric) in metrics.iter().enumerate() {
            metric.entity().map_err(|e| in_batch(e, i, metrics.len()))?;
        }
        self.submit_entities(metrics.is_empty(), Work::Agents(Cow::Borrowed(metrics)))
    }

    /// Stores one swarm metric and returns its id.
    ///
    /// # Errors
    /// As [`store_agent_metric`](Self::store_agent_metric).
    pub fn store_swarm_metric(&self, metric: &SwarmMetric) -> Result<i64> {
        self.store_swarm_metrics(std::slice::from_ref(metric))
            .map(|ids| ids[0])
    }

    /// Stores swarm metrics in one transaction, all or nothing, and returns
    /// their ids in order.
    ///
    /// # Errors
    /// As [`store_task_metrics`](Self::store_task_metrics).
    pub fn store_swarm_metrics(&self, metrics: &[SwarmMetric]) -> Result<Vec<i64>> {
        for (i, metric) in metrics.iter().enumerate() {
            metric.entity().map_err(|e| in_batch(e, i, metrics.len()))?;
        }
        self.submit_entities(metrics.is_empty(), Work::Swarms(Cow::Borrowed(metrics)))
    }

    fn submit_entities(&self, empty: bool, work: Work<'_>) -> Result<Vec<i64>> {
        let writer = self.writer()?;
        if empty {
            return Ok(Vec::new());
        }
        match writer.submit(work)? {
            Output::Ids(ids) => Ok(ids),
            _ => unreachable_output(),
        }
    }

    /// Task metrics matching `filter`, newest first (metrics that share a
    /// timestamp by task id, last first), at most `limit`
    /// ([`DEFAULT_LIMIT`](crate::DEFAULT_LIMIT) is the reference's 1000).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a limit of 0 or a filter field that does
    /// not apply to task metrics; [`Error::Sqlite`] or [`Error::Pool`] when
    /// the read fails.
    pub fn get_task_metrics(&self, filter: &Filter, limit: usize) -> Result<Vec<TaskMetric>> {
        filter.validate(MetricKind::Task, false)?;
        let limit = validate_limit(limit)?;
        let (sql, params) = select_sql(MetricKind::Task, filter, limit);
        self.read_rows(&sql, params, "query task metrics", task_from_row)
    }

    /// Task metrics matching `filter` in another order (an SQL `ORDER BY`
    /// list over the table aliased `m`), at most `limit`.
    pub(crate) fn get_task_metrics_ordered(
        &self,
        filter: &Filter,
        limit: usize,
        order: &str,
    ) -> Result<Vec<TaskMetric>> {
        filter.validate(MetricKind::Task, false)?;
        let limit = validate_limit(limit)?;
        let (sql, params) = select_sql_ordered(MetricKind::Task, filter, limit, order);
        self.read_rows(&sql, params, "query task metrics", task_from_row)
    }

    /// Agent metrics matching `filter`, newest first, at most `limit`.
    ///
    /// # Errors
    /// As [`get_task_metrics`](Self::get_task_metrics).
    pub fn get_agent_metrics(
        &self,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Stored<AgentMetric>>> {
        self.get_entities(MetricKind::Agent, filter, limit, agent_from_row)
    }

    /// Swarm metrics matching `filter`, newest first, at most `limit`.
    ///
    /// # Errors
    /// As [`get_task_metrics`](Self::get_task_metrics).
    pub fn get_swarm_metrics(
        &self,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Stored<SwarmMetric>>> {
        self.get_entities(MetricKind::Swarm, filter, limit, swarm_from_row)
    }

    fn get_entities<T>(
        &self,
        kind: MetricKind,
        filter: &Filter,
        limit: usize,
        map: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        filter.validate(kind, false)?;
        let limit = validate_limit(limit)?;
        let (sql, params) = select_sql(kind, filter, limit);
        let operation = match kind {
            MetricKind::Swarm => "query swarm metrics",
            _ => "query agent metrics",
        };
        self.read_rows(&sql, params, operation, map)
    }

    /// Runs a read query on a pooled connection and maps every row.
    pub(crate) fn read_rows<T>(
        &self,
        sql: &str,
        params: Vec<SqlValue>,
        operation: &'static str,
        mut map: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.read_each(sql, params, operation, |row| {
            out.push(map(row)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Runs a read query and hands each row to `visit`, without collecting
    /// them; one read transaction sees a consistent snapshot throughout.
    pub(crate) fn read_each(
        &self,
        sql: &str,
        params: Vec<SqlValue>,
        operation: &'static str,
        mut visit: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(sql).map_err(Error::sqlite(operation))?;
        let mut rows = stmt
            .query(params_from_iter(params))
            .map_err(Error::sqlite(operation))?;
        while let Some(row) = rows.next().map_err(Error::sqlite(operation))? {
            visit(row)?;
        }
        Ok(())
    }

    /// Hands every task metric matching `filter` to `visit`, oldest first,
    /// without holding them all in memory (for exports). Stops at the
    /// first error `visit` returns.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a filter field that does not apply to
    /// task metrics; what `visit` returns; [`Error::Sqlite`] or
    /// [`Error::Pool`] when the read fails.
    pub fn for_each_task_metric(
        &self,
        filter: &Filter,
        mut visit: impl FnMut(TaskMetric) -> Result<()>,
    ) -> Result<()> {
        filter.validate(MetricKind::Task, false)?;
        let (sql, params) =
            select_sql_ordered(MetricKind::Task, filter, i64::MAX, "m.timestamp, m.task_id");
        self.read_each(&sql, params, "read task metrics", |row| {
            visit(task_from_row(row)?)
        })
    }

    /// Hands every agent metric matching `filter` to `visit`, oldest
    /// first; see [`for_each_task_metric`](Self::for_each_task_metric).
    ///
    /// # Errors
    /// As [`for_each_task_metric`](Self::for_each_task_metric).
    pub fn for_each_agent_metric(
        &self,
        filter: &Filter,
        mut visit: impl FnMut(Stored<AgentMetric>) -> Result<()>,
    ) -> Result<()> {
        filter.validate(MetricKind::Agent, false)?;
        let (sql, params) = select_sql_ordered(
            MetricKind::Agent,
            filter,
            i64::MAX,
            "m.timestamp, m.metric_id",
        );
        self.read_each(&sql, params, "read agent metrics", |row| {
            visit(agent_from_row(row)?)
        })
    }

    /// Hands every swarm metric matching `filter` to `visit`, oldest
    /// first; see [`for_each_task_metric`](Self::for_each_task_metric).
    ///
    /// # Errors
    /// As [`for_each_task_metric`](Self::for_each_task_metric).
    pub fn for_each_swarm_metric(
        &self,
        filter: &Filter,
        mut visit: impl FnMut(Stored<SwarmMetric>) -> Result<()>,
    ) -> Result<()> {
        filter.validate(MetricKind::Swarm, false)?;
        let (sql, params) = select_sql_ordered(
            MetricKind::Swarm,
            filter,
            i64::MAX,
            "m.timestamp, m.metric_id",
        );
        self.read_each(&sql, params, "read swarm metrics", |row| {
            visit(swarm_from_row(row)?)
        })
    }

    /// Stores task, agent and swarm metrics together in one transaction:
    /// all or nothing. Returns how many task metrics were new and the ids
    /// of the agent and swarm metrics.
    ///
    /// # Errors
    /// As [`store_task_metrics`](Self::store_task_metrics).
    pub fn store_batch(&self, batch: &MetricBatch) -> Result<BatchReport> {
        for (i, metric) in batch.tasks.iter().enumerate() {
            metric
                .validate()
                .map_err(|e| in_batch(e, i, batch.tasks.len()))?;
        }
        for (i, metric) in batch.agents.iter().enumerate() {
            metric
                .entity()
                .map_err(|e| in_batch(e, i, batch.agents.len()))?;
        }
        for (i, metric) in batch.swarms.iter().enumerate() {
            metric
                .entity()
                .map_err(|e| in_batch(e, i, batch.swarms.len()))?;
        }
        let writer = self.writer()?;
        if batch.is_empty() {
            return Ok(BatchReport::default());
        }
        match writer.submit(Work::Mixed(Cow::Borrowed(batch)))? {
            Output::Mixed(report) => Ok(report),
            _ => unreachable_output(),
        }
    }

    /// Puts the task metrics still waiting for the agent index into it,
    /// checkpoints the WAL into the database file and closes the store:
    /// afterwards the store is one file again.
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
        let indexed = self.index_pending();
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
            Some(writer) => writer.submit(Work::IndexPending).map(drop),
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
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
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

/// `path` with `suffix` appended, e.g. the `-wal` file of a database.
fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// An SQLite URI opening `path` read-only as immutable (no locks, no
/// shared-memory file).
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            '%' => uri.push_str("%25"),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    uri
}

/// Names the position of a bad record in a batch.
fn in_batch(error: Error, index: usize, len: usize) -> Error {
    match error {
        Error::InvalidInput { field, reason } if len > 1 => Error::InvalidInput {
            field,
            reason: format!("{reason} (record {index} of the batch; nothing was stored)"),
        },
        other => other,
    }
}

fn unreachable_output<T>() -> Result<T> {
    Err(Error::Internal(
        "the writer answered with another kind of output",
    ))
}

fn corrupt(table: &'static str, reason: impl Into<String>) -> Error {
    Error::CorruptRow {
        table,
        reason: reason.into(),
    }
}

fn column<T: rusqlite::types::FromSql>(
    row: &Row<'_>,
    index: usize,
    table: &'static str,
) -> Result<T> {
    row.get(index)
        .map_err(|e| corrupt(table, format!("column {index}: {e}")))
}

fn timestamp_column(
    row: &Row<'_>,
    index: usize,
    table: &'static str,
) -> Result<chrono::DateTime<chrono::Utc>> {
    let us: i64 = column(row, index, table)?;
    from_micros(us).ok_or_else(|| corrupt(table, format!("timestamp {us} out of range")))
}

fn count_column(row: &Row<'_>, index: usize, table: &'static str) -> Result<u64> {
    let n: i64 = column(row, index, table)?;
    u64::try_from(n).map_err(|_| corrupt(table, format!("negative count {n}")))
}

fn task_from_row(row: &Row<'_>) -> Result<TaskMetric> {
    const TABLE: &str = "task_metrics";
    let code: i64 = column(row, 4, TABLE)?;
    let result = TaskResult::from_code(code)
        .ok_or_else(|| corrupt(TABLE, format!("unknown result code {code}")))?;
    Ok(TaskMetric {
        task_id: column(row, 0, TABLE)?,
        agent_id: column(row, 1, TABLE)?,
        swarm_id: column(row, 2, TABLE)?,
        duration_ms: count_column(row, 3, TABLE)?,
        result,
        tokens_used: count_column(row, 5, TABLE)?,
        files_changed: count_column(row, 6, TABLE)?,
        timestamp: timestamp_column(row, 7, TABLE)?,
    })
}

fn agent_from_row(row: &Row<'_>) -> Result<Stored<AgentMetric>> {
    let (metric_id, agent_id, metric_type, value, metadata, timestamp) =
        entity_fields(row, "agent_metrics")?;
    Ok(Stored {
        metric_id,
        metric: AgentMetric {
            agent_id,
            metric_type,
            value,
            metadata,
            timestamp,
        },
    })
}

fn swarm_from_row(row: &Row<'_>) -> Result<Stored<SwarmMetric>> {
    let (metric_id, swarm_id, metric_type, value, metadata, timestamp) =
        entity_fields(row, "swarm_metrics")?;
    Ok(Stored {
        metric_id,
        metric: SwarmMetric {
            swarm_id,
            metric_type,
            value,
            metadata,
            timestamp,
        },
    })
}

type EntityFields = (
    i64,
    String,
    crate::record::MetricType,
    f64,
    Option<serde_json::Value>,
    chrono::DateTime<chrono::Utc>,
);

fn entity_fields(row: &Row<'_>, table: &'static str) -> Result<EntityFields> {
    let code: i64 = column(row, 2, table)?;
    let metric_type = crate::record::MetricType::from_code(code)
        .ok_or_else(|| corrupt(table, format!("unknown metric type code {code}")))?;
    let metadata: Option<String> = column(row, 4, table)?;
    let metadata = metadata
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| corrupt(table, format!("metadata is not JSON: {e}")))?;
    Ok((
        column(row, 0, table)?,
        column(row, 1, table)?,
        metric_type,
        column(row, 3, table)?,
        metadata,
        timestamp_column(row, 5, table)?,
    ))
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
