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
//! than make a small one of their own; and when it finds nothing queued
//! while callers are still on their way, it yields for up to
//! [`IDLE_POLL`] before it sleeps, since being woken costs more.
//!
//! Jobs of a group are written without savepoints; if one fails, the
//! transaction is rolled back and the group is written again with one
//! savepoint per job, so that the failing job is undone alone and no batch
//! is ever half-written.
//!
//! Retention deletes go through the same queue, one bounded chunk per job,
//! so that stores wait for at most one chunk, in arrival order.
//!
//! How records become rows inside these transactions, and how the agent
//! index is filled in batches, is the business of [`crate::rows`].

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::checkpoint::{take_wal_pages, Checkpointer};
use crate::error::{Error, Result};
use crate::record::{AgentMetric, MetricKind, SwarmMetric, TaskMetric};
use crate::rows::{index_pending, insert_entities, insert_tasks, unindexed, Cache};
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

/// How long the group-commit thread waits for callers still on their way,
/// yielding the processor, before it goes to sleep.
const IDLE_POLL: Duration = Duration::from_micros(200);

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
            crate::checkpoint::watch_wal(&conn);
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
            // Callers of the group just written usually store again at
            // once: waiting for them a moment, yielding the processor, costs
            // less than sleeping and being woken.
            let polling_since = Instant::now();
            queue = self.yield_while(queue, |queue| {
                queue.pending.is_empty()
                    && !queue.writing
                    && !queue.stop
                    && self.callers.load(Ordering::Relaxed) > 0
                    && polling_since.elapsed() < IDLE_POLL
            });
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
            let mut yields = 0;
            queue = self.yield_while(queue, |queue| {
                yields += 1;
                yields <= GATHER_YIELDS
                    && queue.pending.len() < self.callers.load(Ordering::Relaxed)
            });
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

    /// Lets go of the queue and yields the processor for as long as
    /// `keep_waiting` says so of the queue; returns it locked again.
    fn yield_while<'a>(
        &'a self,
        mut queue: MutexGuard<'a, Queue>,
        mut keep_waiting: impl FnMut(&Queue) -> bool,
    ) -> MutexGuard<'a, Queue> {
        while keep_waiting(&queue) {
            drop(queue);
            std::thread::yield_now();
            queue = lock(&self.queue);
        }
        queue
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
            self.cache = Cache::as_of(version);
        }
        Ok(())
    }

    /// Commits, after moving the task metrics due for the agent index into
    /// it; if either fails, every job of the group fails with it.
    fn commit(&mut self, mut results: Vec<Result<Output>>) -> Vec<Result<Output>> {
        let commit = self.index_if_due().and_then(|()| {
            self.conn
                .prepare_cached("COMMIT")
                .and_then(|mut s| s.execute([]))
                .map_err(Error::sqlite("commit"))
        });
        // Taken in any case, so that no later commit on this thread sees it.
        let wal_pages = take_wal_pages();
        match commit {
            Ok(_) => {
                if let (Some(checkpointer), Some(pages)) = (&self.checkpointer, wal_pages) {
                    checkpointer.note_commit(pages);
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
