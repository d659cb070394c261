//! The single writer and its group commit.
//!
//! SQLite lets one connection write at a time, and a connection that finds
//! the lock taken sleeps in its busy handler. So every write of this store
//! goes through one connection, and concurrent stores share its
//! transactions. A caller that is alone, with no other store under way,
//! writes on its own thread, with its own records, with no hand-off.
//! Concurrent callers queue up; the group-commit thread then writes
//! everything queued in one transaction and commits once, so under load one
//! commit serves many stores. Each caller returns only after the commit
//! that holds its records, so `Ok` always means committed.
//!
//! Under load the group-commit thread is the bottleneck, so it does as
//! little else as it can. It wakes only the first caller of a committed
//! group; each woken caller wakes two more, so the rest of the wake-ups run
//! on the callers' threads, in parallel with the next group's write. Before
//! it starts a group, it yields a few times while callers of the previous
//! group are still on their way back, so that they join this group rather
//! than make a small one of their own.
//!
//! Jobs of a group are written without savepoints; if one fails, the
//! transaction is rolled back and the group is written again with one
//! savepoint per job, so that the failing job is undone alone and no batch
//! is ever half-written.
//!
//! Retention deletes go through the same queue, one bounded chunk per job,
//! so that stores wait for at most one chunk, in arrival order.
//!
//! Task metrics stored one at a time join the agent index in batches: a
//! commit of a few stores from different agents would otherwise write one
//! agent-index page per store on top of the table's last page. Rows later
//! than the watermark in `task_index_state` are not in the index yet
//! (`indexed = 0`); once [`DEFAULT_INDEX_BATCH_ROWS`] (or the configured
//! number of) such rows have been stored, one transaction marks them
//! indexed and moves the watermark to the newest row. A row stored at or
//! before the watermark, and every row of a large batch, is indexed at
//! once, so the rule "indexed exactly up to the watermark" always holds.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rusqlite::{params, Connection, OptionalExtension};

use crate::checkpoint::{Checkpointer, BACKSTOP_PAGES};
use crate::error::{Error, Result};
use crate::query::to_micros;
use crate::record::{AgentMetric, EntityRecord, MetricKind, SwarmMetric, TaskMetric};
use crate::storage::{BatchReport, MetricBatch};

/// A write. A caller that writes inline lends its records; one that
/// queues hands the group-commit thread an owned copy.
pub(crate) enum Work<'a> {
    Tasks(Cow<'a, [TaskMetric]>),
    Agents(Cow<'a, [AgentMetric]>),
    Swarms(Cow<'a, [SwarmMetric]>),
    /// All three kinds in one job.
    Mixed(Cow<'a, MetricBatch>),
    /// One chunk of tiered retention.
    Retention(crate::rollup::Step),
    /// Put every task metric waiting for the agent index into it.
    IndexPending,
    /// Delete at most `limit` rows of `kind` older than `cutoff` (µs).
    DeleteBefore {
        kind: MetricKind,
        cutoff: i64,
        limit: i64,
    },
}

impl Work<'_> {
    /// The same write, owning its records.
    fn into_owned(self) -> Work<'static> {
        match self {
            Work::Tasks(t) => Work::Tasks(Cow::Owned(t.into_owned())),
            Work::Agents(m) => Work::Agents(Cow::Owned(m.into_owned())),
            Work::Swarms(m) => Work::Swarms(Cow::Owned(m.into_owned())),
            Work::Mixed(b) => Work::Mixed(Cow::Owned(b.into_owned())),
            Work::Retention(step) => Work::Retention(step),
            Work::IndexPending => Work::IndexPending,
            Work::DeleteBefore {
                kind,
                cutoff,
                limit,
            } => Work::DeleteBefore {
                kind,
                cutoff,
                limit,
            },
        }
    }
}

/// What a write produced.
pub(crate) enum Output {
    /// How many task metrics were new (the rest were already stored).
    Tasks(usize),
    /// The ids given to agent or swarm metrics, in order.
    Ids(Vec<i64>),
    /// How many rows a delete removed.
    Deleted(usize),
    /// What a mixed batch stored.
    Mixed(BatchReport),
    /// The work is done and has nothing to report.
    Done,
}

/// What the writer remembers about the file between transactions. Valid
/// only while no other connection writes: `PRAGMA data_version` tells, and
/// the cache is cleared when it changes.
#[derive(Default)]
struct Cache {
    data_version: Option<i64>,
    /// Interned agent and swarm ids (only committed ones: cleared on any
    /// rollback).
    agents: HashMap<String, i64>,
    swarms: HashMap<String, i64>,
    /// `(swarm, agent)` pairs known to be in `agent_swarms`.
    agent_swarms: HashSet<(i64, i64)>,
    /// The agent index's watermark, as `task_index_state` holds it.
    watermark: Option<i64>,
    /// How many task metrics are later than the watermark (an upper bound:
    /// deletes may have removed some).
    unindexed: Option<usize>,
}

impl Cache {
    /// Forgets what a rolled-back transaction may have changed.
    fn forget_uncommitted(&mut self) {
        self.agents.clear();
        self.swarms.clear();
        self.agent_swarms.clear();
        self.watermark = None;
        self.unindexed = None;
    }
}

/// The writer connection and its cache.
pub(crate) struct WriterConnection {
    conn: Connection,
    cache: Cache,
    checkpointer: Option<Checkpointer>,
    /// Unindexed task metrics after which they join the agent index.
    index_batch_rows: usize,
}

/// One caller's pending write and the slot its result is delivered to.
struct Job<'a> {
    work: Work<'a>,
    slot: Mutex<Slot>,
    ready: Condvar,
}

/// What the group-commit thread hands back to a waiting caller.
#[derive(Default)]
struct Slot {
    result: Option<Result<Output>>,
    /// Callers of the same group that this one wakes once it has its
    /// result.
    wakes: Vec<Arc<Job<'static>>>,
}

/// How many times the group-commit thread yields, at most, to let callers
/// of the previous group join the next one.
const GATHER_YIELDS: usize = 3;

/// Task metrics stored one at a time that wait, at most, before joining the
/// agent index (see the module documentation).
pub(crate) const DEFAULT_INDEX_BATCH_ROWS: usize = 4096;

/// A store of at least this many task metrics indexes them at once: it
/// writes many index pages anyway, and marking rows indexed later costs
/// more than indexing them now.
const EAGER_INDEX_ROWS: usize = 64;

#[derive(Default)]
struct Queue {
    pending: Vec<Arc<Job<'static>>>,
    /// A write is under way (a caller's inline write or a group).
    writing: bool,
    /// The group-commit thread waits for work: only then does queuing a
    /// job need a wake-up call.
    idle: bool,
    stop: bool,
}

/// What the callers and the group-commit thread share.
struct Shared {
    connection: Mutex<WriterConnection>,
    queue: Mutex<Queue>,
    /// Wakes the group-commit thread.
    work_queued: Condvar,
    /// Callers inside [`Writer::submit`]: queued, being written, or about
    /// to return.
    callers: AtomicUsize,
}

/// The single writer of a store: callers write inline when nothing else
/// is being written, and otherwise queue for the group-commit thread.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    group_thread: Option<std::thread::JoinHandle<()>>,
}

impl<'a> Job<'a> {
    fn new(work: Work<'a>) -> Self {
        Job {
            work,
            slot: Mutex::new(Slot::default()),
            ready: Condvar::new(),
        }
    }
}

/// Locks a mutex, ignoring poisoning: the data behind these mutexes stays
/// consistent across a panic (the cache is cleared on any doubt, and SQLite
/// rolls back an unfinished transaction).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Writer {
    /// The writer over `conn`, with `checkpointer` taking the WAL
    /// checkpoints off the commit path when given.
    pub fn new(
        conn: Connection,
        checkpointer: Option<Checkpointer>,
        index_batch_rows: usize,
    ) -> Result<Self> {
        if checkpointer.is_some() {
            conn.pragma_update(None, "wal_autocheckpoint", BACKSTOP_PAGES)
                .map_err(Error::sqlite("configure checkpoints"))?;
        }
        let shared = Arc::new(Shared {
            connection: Mutex::new(WriterConnection {
                conn,
                cache: Cache::default(),
                checkpointer,
                index_batch_rows,
            }),
            queue: Mutex::new(Queue::default()),
            work_queued: Condvar::new(),
            callers: AtomicUsize::new(0),
        });
        let group_thread = std::thread::Builder::new()
            .name("swarm-metrics-writer".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || shared.commit_groups()
            })
            .map_err(|e| {
                Error::invalid(
                    "writer",
                    format!("cannot start the group-commit thread: {e}"),
                )
            })?;
        Ok(Writer {
            shared,
            group_thread: Some(group_thread),
        })
    }

    /// Stops background checkpoints (before the final one, on close).
    pub fn stop_checkpointer(&self) {
        if let Some(mut checkpointer) = lock(&self.shared.connection).checkpointer.take() {
            checkpointer.stop();
        }
    }

    /// Exclusive use of the writer connection outside any transaction, for
    /// maintenance (vacuum, checkpoints). Writes wait meanwhile.
    pub fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut guard = lock(&self.shared.connection);
        let result = f(&guard.conn);
        guard.cache = Cache::default();
        result
    }

    /// Does `work` and returns once it is committed (or failed): at once
    /// on the caller's thread when no other store is under way, otherwise
    /// in the next group commit.
    pub fn submit(&self, work: Work<'_>) -> Result<Output> {
        self.submit_inner(work).map_err(|e| match e {
            Error::Sqlite { operation, source }
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) =>
            {
                Error::DatabaseFull { operation }
            }
            other => other,
        })
    }

    fn submit_inner(&self, work: Work<'_>) -> Result<Output> {
        let shared = &*self.shared;
        let caller = CallerGuard::enter(shared);
        let mut queue = lock(&shared.queue);
        if caller.alone && !queue.writing && queue.pending.is_empty() {
            queue.writing = true;
            drop(queue);
            let _writing = WritingGuard(shared);
            // Nobody else writes: the records are written where they are.
            let job = Job::new(work);
            let result = lock(&shared.connection)
                .write_group(std::slice::from_ref(&&job))
                .pop();
            return result.unwrap_or_else(|| Err(internal_error()));
        }
        let job = Arc::new(Job::new(work.into_owned()));
        queue.pending.push(Arc::clone(&job));
        if queue.idle && !queue.writing {
            shared.work_queued.notify_one();
        }
        drop(queue);
        let mut slot = lock(&job.slot);
        let result = loop {
            match slot.result.take() {
                Some(result) => break result,
                None => slot = job.ready.wait(slot).unwrap_or_else(PoisonError::into_inner),
            }
        };
        let wakes = std::mem::take(&mut slot.wakes);
        drop(slot);
        for next in wakes {
            next.ready.notify_one();
        }
        result
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.work_queued.notify_one();
        if let Some(thread) = self.group_thread.take() {
            // The thread only writes queued jobs, and there are none left:
            // every caller has returned before the writer is dropped.
            let _ = thread.join();
        }
    }
}

impl Shared {
    /// The group-commit thread: writes everything queued while another
    /// write was under way, in one transaction, until told to stop.
    fn commit_groups(&self) {
        loop {
            let mut queue = lock(&self.queue);
            while (queue.pending.is_empty() || queue.writing) && !queue.stop {
                queue.idle = true;
                queue = self
                    .work_queued
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
                queue.idle = false;
            }
            if queue.pending.is_empty() && queue.stop {
                return;
            }
            if queue.writing {
                continue;
            }
            for _ in 0..GATHER_YIELDS {
                if queue.pending.len() >= self.callers.load(Ordering::Relaxed) {
                    break;
                }
                drop(queue);
                std::thread::yield_now();
                queue = lock(&self.queue);
            }
            let group = std::mem::take(&mut queue.pending);
            queue.writing = true;
            drop(queue);
            let _writing = WritingGuard(self);
            let jobs: Vec<&Job<'_>> = group.iter().map(|job| &**job).collect();
            // A panic here would be a bug; its callers must still get an
            // answer rather than wait forever.
            let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                lock(&self.connection).write_group(&jobs)
            }))
            .unwrap_or_else(|_| jobs.iter().map(|_| Err(internal_error())).collect());
            deliver(&group, results);
        }
    }
}

/// Hands each caller of a group its result. Every slot is filled first;
/// then only the first caller is woken, and caller `i` wakes callers
/// `2i + 1` and `2i + 2` (a binary tree), so the group-commit thread makes
/// one wake-up call per group and the last caller wakes after about
/// log2(group size) hops.
fn deliver(group: &[Arc<Job<'static>>], results: Vec<Result<Output>>) {
    for (i, (job, result)) in group.iter().zip(results).enumerate() {
        let mut slot = lock(&job.slot);
        slot.result = Some(result);
        slot.wakes = group.iter().skip(2 * i + 1).take(2).cloned().collect();
    }
    if let Some(first) = group.first() {
        first.ready.notify_one();
    }
}

/// Counts a caller in [`Shared::callers`] for as long as it is inside
/// [`Writer::submit`].
struct CallerGuard<'a> {
    shared: &'a Shared,
    /// No other caller was inside when this one entered.
    alone: bool,
}

impl<'a> CallerGuard<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let others = shared.callers.fetch_add(1, Ordering::Relaxed);
        CallerGuard {
            shared,
            alone: others == 0,
        }
    }
}

impl Drop for CallerGuard<'_> {
    fn drop(&mut self) {
        self.shared.callers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Marks the end of a write when dropped, also on a panic, and wakes the
/// group-commit thread if stores queued meanwhile.
struct WritingGuard<'a>(&'a Shared);

impl Drop for WritingGuard<'_> {
    fn drop(&mut self) {
        let mut queue = lock(&self.0.queue);
        queue.writing = false;
        if queue.idle && !queue.pending.is_empty() {
            self.0.work_queued.notify_one();
        }
    }
}

fn internal_error() -> Error {
    Error::Internal("a write produced no result")
}

impl WriterConnection {
    /// Writes a group in one transaction: first without savepoints; if a
    /// job fails, again with one savepoint per job.
    fn write_group(&mut self, group: &[&Job<'_>]) -> Vec<Result<Output>> {
        if let Err(e) = self.begin() {
            return group.iter().map(|_| Err(copy_error(&e))).collect();
        }
        let results: Vec<Result<Output>> = group
            .iter()
            .map(|job| write_job(&self.conn, &mut self.cache, &job.work))
            .collect();
        if results.iter().all(Result::is_ok) {
            if let Err(e) = self.index_if_due() {
                self.rollback();
                return group.iter().map(|_| Err(copy_error(&e))).collect();
            }
            return self.commit(results);
        }
        self.rollback();
        if group.len() == 1 {
            return results;
        }
        if let Err(e) = self.begin() {
            return group.iter().map(|_| Err(copy_error(&e))).collect();
        }
        let results = group
            .iter()
            .map(|job| self.write_in_savepoint(&job.work))
            .collect();
        if let Err(e) = self.index_if_due() {
            self.rollback();
            return group.iter().map(|_| Err(copy_error(&e))).collect();
        }
        self.commit(results)
    }

    /// Moves the unindexed task metrics into the agent index once there
    /// are enough of them.
    fn index_if_due(&mut self) -> Result<()> {
        if unindexed(&self.conn, &mut self.cache)? >= self.index_batch_rows {
            index_pending(&self.conn, &mut self.cache)?;
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<()> {
        if !self.conn.is_autocommit() {
            // Only after a panic mid-write: end what it left open.
            self.rollback();
        }
        self.conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
            .map_err(Error::sqlite("begin write"))?;
        let version: i64 = self
            .conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(Error::sqlite("begin write"))?;
        if self.cache.data_version != Some(version) {
            // Another connection wrote: what the cache knows may be stale.
            self.cache = Cache {
                data_version: Some(version),
                ..Cache::default()
            };
        }
        Ok(())
    }

    /// Commits; if that fails, every job of the group fails with it.
    fn commit(&mut self, mut results: Vec<Result<Output>>) -> Vec<Result<Output>> {
        let commit = self
            .conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map_err(Error::sqlite("commit"));
        match commit {
            Ok(_) => {
                if let Some(checkpointer) = &self.checkpointer {
                    checkpointer.note_commit();
                }
            }
            Err(e) => {
                self.rollback();
                for r in results.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(copy_error(&e));
                }
            }
        }
        results
    }

    fn rollback(&mut self) {
        // Fails only when SQLite already rolled back (it does on some I/O
        // errors); either way no transaction remains.
        let _ = self.conn.execute_batch("ROLLBACK");
        self.cache.forget_uncommitted();
    }

    fn write_in_savepoint(&mut self, work: &Work<'_>) -> Result<Output> {
        self.conn
            .execute_batch("SAVEPOINT job")
            .map_err(Error::sqlite("begin batch"))?;
        match write_job(&self.conn, &mut self.cache, work) {
            Ok(output) => {
                self.conn
                    .execute_batch("RELEASE job")
                    .map_err(Error::sqlite("end batch"))?;
                Ok(output)
            }
            Err(e) => {
                self.cache.forget_uncommitted();
                // If even this fails, the commit that follows fails too and
                // every job of the group reports it.
                let _ = self.conn.execute_batch("ROLLBACK TO job; RELEASE job");
                Err(e)
            }
        }
    }
}

fn write_job(conn: &Connection, cache: &mut Cache, work: &Work<'_>) -> Result<Output> {
    match work {
        Work::Tasks(tasks) => insert_tasks(conn, cache, tasks).map(Output::Tasks),
        Work::Agents(metrics) => {
            let records = metrics.iter().map(AgentMetric::record);
            insert_entities(conn, cache, MetricKind::Agent, records).map(Output::Ids)
        }
        Work::Swarms(metrics) => {
            let records = metrics.iter().map(SwarmMetric::record);
            insert_entities(conn, cache, MetricKind::Swarm, records).map(Output::Ids)
        }
        Work::Mixed(batch) => {
            let new_tasks = insert_tasks(conn, cache, &batch.tasks)?;
            let agents = batch.agents.iter().map(AgentMetric::record);
            let agent_ids = insert_entities(conn, cache, MetricKind::Agent, agents)?;
            let swarms = batch.swarms.iter().map(SwarmMetric::record);
            let swarm_ids = insert_entities(conn, cache, MetricKind::Swarm, swarms)?;
            Ok(Output::Mixed(BatchReport {
                new_tasks,
                agent_ids,
                swarm_ids,
            }))
        }
        Work::Retention(step) => step.run(conn).map(Output::Deleted),
        Work::IndexPending => index_pending(conn, cache).map(|()| Output::Done),
        Work::DeleteBefore {
            kind,
            cutoff,
            limit,
        } => crate::retention::delete_chunk(conn, *kind, *cutoff, *limit).map(Output::Deleted),
    }
}

/// The interned integer for an agent or swarm id, created on first use.
fn intern(conn: &Connection, cache: &mut Cache, kind: MetricKind, name: &str) -> Result<i64> {
    let (map, select, insert) = match kind {
        MetricKind::Swarm => (
            &mut cache.swarms,
            "SELECT id FROM swarms WHERE name = ?1",
            "INSERT INTO swarms (name) VALUES (?1) RETURNING id",
        ),
        _ => (
            &mut cache.agents,
            "SELECT id FROM agents WHERE name = ?1",
            "INSERT INTO agents (name) VALUES (?1) RETURNING id",
        ),
    };
    if let Some(&id) = map.get(name) {
        return Ok(id);
    }
    let found = conn
        .prepare_cached(select)
        .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
        .map_err(Error::sqlite("look up id"))?;
    let id = match found {
        Some(id) => id,
        None => conn
            .prepare_cached(insert)
            .and_then(|mut s| s.query_row([name], |r| r.get(0)))
            .map_err(Error::sqlite("intern id"))?,
    };
    map.insert(name.to_owned(), id);
    Ok(id)
}

/// A retried store of a task metric already stored (same timestamp and
/// task id) hits the primary key and is ignored.
const INSERT_TASK: &str = "\
INSERT INTO task_metrics
    (timestamp, task_id, agent, swarm, duration_ms, result, tokens_used, files_changed, indexed)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
ON CONFLICT (timestamp, task_id) DO NOTHING";

/// Records that `agent` ran tasks in `swarm`, which swarm queries use to
/// find the swarm's tasks through the agent index.
fn link_agent_swarm(conn: &Connection, cache: &mut Cache, agent: i64, swarm: i64) -> Result<()> {
    if cache.agent_swarms.contains(&(swarm, agent)) {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO agent_swarms (swarm, agent) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )
    .and_then(|mut s| s.execute((swarm, agent)))
    .map_err(Error::sqlite("store task metrics"))?;
    cache.agent_swarms.insert((swarm, agent));
    Ok(())
}

/// The agent index's watermark: task metrics up to it are in the index.
fn watermark(conn: &Connection, cache: &mut Cache) -> Result<i64> {
    if let Some(watermark) = cache.watermark {
        return Ok(watermark);
    }
    let watermark = conn
        .prepare_cached("SELECT watermark FROM task_index_state")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(Error::sqlite("read the index watermark"))?;
    cache.watermark = Some(watermark);
    Ok(watermark)
}

/// How many task metrics are not in the agent index yet.
fn unindexed(conn: &Connection, cache: &mut Cache) -> Result<usize> {
    if let Some(n) = cache.unindexed {
        return Ok(n);
    }
    let watermark = watermark(conn, cache)?;
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM task_metrics WHERE timestamp > ?1")
        .and_then(|mut s| s.query_row([watermark], |r| r.get(0)))
        .map_err(Error::sqlite("count unindexed metrics"))?;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    cache.unindexed = Some(n);
    Ok(n)
}

/// Puts every task metric later than the watermark into the agent index
/// and moves the watermark to the newest one.
fn index_pending(conn: &Connection, cache: &mut Cache) -> Result<()> {
    let old = watermark(conn, cache)?;
    let newest: Option<i64> = conn
        .prepare_cached("SELECT max(timestamp) FROM task_metrics")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(Error::sqlite("index task metrics"))?;
    if let Some(new) = newest.filter(|&new| new > old) {
        set_watermark(conn, cache, old, new)?;
    }
    cache.unindexed = Some(0);
    Ok(())
}

/// Marks the task metrics after `old` up to `new` indexed and records
/// `new` as the watermark.
fn set_watermark(conn: &Connection, cache: &mut Cache, old: i64, new: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE task_metrics SET indexed = 1 \
         WHERE timestamp > ?1 AND timestamp <= ?2 AND indexed = 0",
    )
    .and_then(|mut s| s.execute([old, new]))
    .map_err(Error::sqlite("index task metrics"))?;
    record_watermark(conn, cache, new)
}

/// Records `new` as the watermark; every task metric up to it must be in
/// the agent index.
fn record_watermark(conn: &Connection, cache: &mut Cache, new: i64) -> Result<()> {
    conn.prepare_cached("UPDATE task_index_state SET watermark = ?1")
        .and_then(|mut s| s.execute([new]))
        .map_err(Error::sqlite("index task metrics"))?;
    cache.watermark = Some(new);
    Ok(())
}

fn insert_tasks(conn: &Connection, cache: &mut Cache, tasks: &[TaskMetric]) -> Result<usize> {
    // A large batch indexes its rows at once: the rows waiting before it
    // join the index first, so that all of them can be indexed and the
    // watermark moved past them at the end.
    let eager = tasks.len() >= EAGER_INDEX_ROWS;
    if eager && unindexed(conn, cache)? > 0 {
        index_pending(conn, cache)?;
    }
    let watermark = watermark(conn, cache)?;
    let mut newest = watermark;
    let mut inserted = 0;
    let mut stmt = conn
        .prepare_cached(INSERT_TASK)
        .map_err(Error::sqlite("store task metrics"))?;
    for task in tasks {
        let agent = intern(conn, cache, MetricKind::Agent, &task.agent_id)?;
        let swarm = match &task.swarm_id {
            Some(name) => {
                let swarm = intern(conn, cache, MetricKind::Swarm, name)?;
                link_agent_swarm(conn, cache, agent, swarm)?;
                Some(swarm)
            }
            None => None,
        };
        // Validated before submission: every count fits an i64.
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let timestamp = to_micros(task.timestamp);
        let indexed = eager || timestamp <= watermark;
        let new = stmt
            .execute(params![
                timestamp,
                task.task_id,
                agent,
                swarm,
                count(task.duration_ms),
                task.result.code(),
                count(task.tokens_used),
                count(task.files_changed),
                indexed,
            ])
            .map_err(Error::sqlite("store task metrics"))?;
        inserted += new;
        if new > 0 && !indexed {
            cache.unindexed = cache.unindexed.map(|n| n + 1);
        }
        newest = newest.max(timestamp);
    }
    if eager && newest > watermark {
        // Every row up to `newest` is indexed now: the earlier ones by
        // index_pending, this batch's as they were stored.
        record_watermark(conn, cache, newest)?;
    }
    Ok(inserted)
}

fn insert_entities<'a>(
    conn: &Connection,
    cache: &mut Cache,
    kind: MetricKind,
    records: impl Iterator<Item = EntityRecord<'a>>,
) -> Result<Vec<i64>> {
    let (sql, operation) = match kind {
        MetricKind::Swarm => (
            "INSERT INTO swarm_metrics (swarm, metric_type, value, metadata, timestamp) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            "store swarm metrics",
        ),
        _ => (
            "INSERT INTO agent_metrics (agent, metric_type, value, metadata, timestamp) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            "store agent metrics",
        ),
    };
    let mut out = Vec::new();
    for record in records {
        let id = intern(conn, cache, kind, record.id)?;
        let metadata = record.metadata.map(|m| m.to_string());
        conn.prepare_cached(sql)
            .and_then(|mut stmt| {
                stmt.execute(params![
                    id,
                    record.metric_type.code(),
                    record.value,
                    metadata,
                    to_micros(record.timestamp),
                ])
            })
            .map_err(Error::sqlite(operation))?;
        out.push(conn.last_insert_rowid());
    }
    Ok(out)
}

/// Errors are not `Clone`; a failure that every job of a group shares is
/// rebuilt for each from its code and message.
fn copy_error(e: &Error) -> Error {
    let (operation, source) = match e {
        Error::Sqlite { operation, source } => (*operation, source),
        other => {
            return Error::Sqlite {
                operation: "write",
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                    Some(other.to_string()),
                ),
            }
        }
    };
    let source = match source {
        rusqlite::Error::SqliteFailure(code, msg) => {
            rusqlite::Error::SqliteFailure(*code, msg.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    };
    Error::Sqlite { operation, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sharing_a_timestamp_are_kept_and_retries_ignored() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::schema::SCHEMA_SQL).unwrap();
        let mut cache = Cache::default();
        let tasks: Vec<TaskMetric> = ["t1", "t2", "t1"]
            .iter()
            .map(|id| {
                TaskMetric::new(*id, "a", 1, crate::TaskResult::Success)
                    .at(chrono::DateTime::from_timestamp(1_000, 0).unwrap())
            })
            .collect();
        // t1 and t2 share a timestamp; the second t1 is a retry.
        assert_eq!(insert_tasks(&conn, &mut cache, &tasks).unwrap(), 2);
        let ids: Vec<String> = conn
            .prepare("SELECT task_id FROM task_metrics")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(ids, ["t1", "t2"]);
        // The same again, with a cold cache: all retries.
        assert_eq!(
            insert_tasks(&conn, &mut Cache::default(), &tasks).unwrap(),
            0
        );
    }
}
