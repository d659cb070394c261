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
//! little else as it can. A queued caller first waits for its commit
//! yielding the processor, for up to [`RESULT_POLL`], and most find their
//! result so, without a wake-up call. The thread wakes only the first
//! caller of a committed group; each caller, woken or not, wakes two more,
//! so the rest of the wake-ups run on the callers' threads, in parallel
//! with the next group's write. Before
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
//! The writer knows nothing of what it writes. A job is a closure over
//! the write transaction's connection and the writer's caches (a type the
//! store chooses, see [`Caches`]) that returns the job's output; stores,
//! retention chunks and index moves are all such jobs, written by the
//! modules that own them.

use std::any::Any;
use std::borrow::Borrow;
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

pub(crate) mod checkpoint;
mod transaction;

use checkpoint::Checkpointer;
use transaction::WriterConnection;

use crate::error::{Error, Result};

/// How the writer deals with the world outside its process.
pub(crate) struct WriterOptions {
    /// Takes the WAL checkpoints off the commit path, when given.
    pub checkpointer: Option<Checkpointer>,
    /// How long to wait for another process's write lock.
    pub busy_timeout: Duration,
    /// The database file, named in the errors that concern it.
    pub path: PathBuf,
}

/// What the writer remembers between transactions, on behalf of the jobs
/// that use it (interned ids, for example). The writer tells it when what
/// it remembers may no longer hold.
pub(crate) trait Caches: Send + 'static {
    /// What the caches remember may be wrong: a job's writes were rolled
    /// back, or another connection wrote since the last transaction.
    fn forget(&mut self);

    /// Another connection wrote since the last transaction (nothing of
    /// this writer's was rolled back): what others can change is
    /// forgotten. By default, everything.
    fn others_wrote(&mut self) {
        self.forget();
    }

    /// Runs inside each transaction just before it commits; if it fails,
    /// every job of the transaction fails with it.
    fn before_commit(&mut self, conn: &Connection) -> Result<()>;
}

/// A job's output, whatever its type, until its caller takes it back.
type Output = Box<dyn Any + Send>;

/// A job: runs inside the write transaction. It may run twice (see the
/// module documentation), so it is `Fn`.
type JobFn<'a, C> = Box<dyn Fn(&Connection, &mut C) -> Result<Output> + Send + Sync + 'a>;

/// One caller's pending write and the slot its result is delivered to.
struct Job<'a, C> {
    work: JobFn<'a, C>,
    slot: Mutex<Slot<C>>,
    ready: Condvar,
}

/// What the group-commit thread hands back to a waiting caller.
struct Slot<C> {
    result: Option<Result<Output>>,
    /// Callers of the same group that this one wakes once it has its
    /// result.
    wakes: Vec<Arc<Job<'static, C>>>,
}

/// How many times the group-commit thread yields, at most, to let callers
/// of the previous group join the next one.
const GATHER_YIELDS: usize = 3;

/// How long a queued caller waits for its group's commit yielding the
/// processor before it sleeps until woken. Eight threads storing one task
/// at a time on two cores, alternating runs: 50 µs gave about 27,000
/// stores/s, 200 µs 41,000 to 55,000, 1 ms (with [`IDLE_POLL`] 1 ms too)
/// 59,000; fewer callers polling at once gave less.
const RESULT_POLL: Duration = Duration::from_millis(1);

/// How long the group-commit thread waits for callers still on their way,
/// yielding the processor, before it goes to sleep.
const IDLE_POLL: Duration = Duration::from_millis(1);

struct Queue<C> {
    pending: Vec<Arc<Job<'static, C>>>,
    /// A write is under way (a caller's inline write or a group).
    writing: bool,
    /// The group-commit thread waits for work: only then does queuing a
    /// job need a wake-up call.
    idle: bool,
    stop: bool,
}

/// What the callers and the group-commit thread share.
struct Shared<C> {
    connection: Mutex<WriterConnection<C>>,
    /// The database file, named in the errors that concern it.
    path: PathBuf,
    queue: Mutex<Queue<C>>,
    /// Wakes the group-commit thread.
    work_queued: Condvar,
    /// Callers inside [`Writer::submit`]: queued, being written, or about
    /// to return.
    callers: AtomicUsize,
}

/// The single writer of a store: callers write inline when nothing else
/// is being written, and otherwise queue for the group-commit thread.
pub(crate) struct Writer<C: Caches> {
    shared: Arc<Shared<C>>,
    group_thread: Option<std::thread::JoinHandle<()>>,
}

impl<'a, C> Job<'a, C> {
    fn new(work: JobFn<'a, C>) -> Self {
        Job {
            work,
            slot: Mutex::new(Slot {
                result: None,
                wakes: Vec::new(),
            }),
            ready: Condvar::new(),
        }
    }
}

impl<C> Default for Queue<C> {
    fn default() -> Self {
        Queue {
            pending: Vec::new(),
            writing: false,
            idle: false,
            stop: false,
        }
    }
}

/// Locks a mutex, ignoring poisoning: the data behind these mutexes stays
/// consistent across a panic (the cache is cleared on any doubt, and SQLite
/// rolls back an unfinished transaction).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<C: Caches> Writer<C> {
    /// The writer over `conn`, with `caches` for its jobs.
    pub fn new(conn: Connection, caches: C, options: WriterOptions) -> Result<Self> {
        let path = options.path.clone();
        let shared = Arc::new(Shared {
            connection: Mutex::new(WriterConnection::new(conn, caches, options)?),
            path,
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
            .map_err(|source| Error::Io {
                operation: "start the group-commit thread",
                path: shared.path.clone(),
                source,
            })?;
        Ok(Writer {
            shared,
            group_thread: Some(group_thread),
        })
    }

    /// Stops background checkpoints (before the final one, on close).
    pub fn stop_checkpointer(&self) {
        lock(&self.shared.connection).stop_checkpointer();
    }

    /// Exclusive use of the writer connection outside any transaction, for
    /// maintenance (vacuum, checkpoints). Writes wait meanwhile.
    pub fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.refuse_inside_alone()?;
        lock(&self.shared.connection)
            .maintain(f)
            .map_err(|e| e.in_file(&self.shared.path))
    }

    /// Runs `job` in a write transaction and returns its output once that
    /// transaction is committed (or failed).
    ///
    /// # Errors
    /// What `job` returns; errors that concern the file name it (see
    /// [`Error::in_file`]): [`Error::DatabaseFull`] when the disk or the
    /// size cap is reached; [`Error::Sqlite`] when the transaction fails.
    pub fn run<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Connection, &mut C) -> Result<T> + Send + Sync + 'static,
    {
        self.run_with(&(), move |conn, caches, ()| job(conn, caches))
    }

    /// Runs `job` in a write transaction of its own on the caller's
    /// thread, once: for a job too long to copy or to run twice (a
    /// streamed import). Other writes wait until it has committed or
    /// rolled back.
    ///
    /// # Errors
    /// As [`run`](Self::run); when `job` fails, its writes are rolled back
    /// and its error returned.
    pub fn run_alone<T>(&self, job: impl FnOnce(&Connection, &mut C) -> Result<T>) -> Result<T> {
        self.refuse_inside_alone()?;
        let mut connection = lock(&self.shared.connection);
        // Marks this thread as inside the job until it ends, also by a
        // panic.
        let _inside = AloneGuard::enter(self.shared_id());
        connection
            .write_alone(job)
            .map_err(|e| e.in_file(&self.shared.path))
    }

    /// This writer, as [`ALONE_JOB`] names it.
    fn shared_id(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    /// A write from inside a job of [`run_alone`](Self::run_alone), on its
    /// own thread, would wait for that job forever: it is refused instead.
    /// A thread-local read, so that stores pay no lock for it.
    fn refuse_inside_alone(&self) -> Result<()> {
        if ALONE_JOB.with(Cell::get) == self.shared_id() {
            return Err(Error::invalid(
                "store",
                "a write from inside a stream being stored into the same store would wait for \
                 that stream forever; store it after the stream",
            ));
        }
        Ok(())
    }

    /// Runs `job` over `input` in a write transaction, as [`run`](Self::run).
    /// The input is borrowed while the caller writes inline, and copied
    /// only when the job has to queue for the group-commit thread.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_with<D, T, F>(&self, input: &D, job: F) -> Result<T>
    where
        D: ToOwned + Sync + ?Sized,
        D::Owned: Send + Sync + 'static,
        T: Send + 'static,
        F: Fn(&Connection, &mut C, &D) -> Result<T> + Send + Sync + 'static,
    {
        self.refuse_inside_alone()?;
        let shared = &*self.shared;
        let caller = CallerGuard::enter(shared);
        let output = match shared.claim_inline(&caller) {
            Ok(_writing) => {
                // Nobody else writes: the input is written where it is.
                let job: JobFn<'_, C> =
                    Box::new(|conn: &Connection, caches: &mut C| erase(job(conn, caches, input)));
                let job = Job::new(job);
                lock(&shared.connection)
                    .write_group(std::slice::from_ref(&&job))
                    .pop()
                    .unwrap_or_else(|| Err(internal_error()))
            }
            Err(queue) => {
                let owned = input.to_owned();
                let job: JobFn<'static, C> = Box::new(move |conn: &Connection, caches: &mut C| {
                    erase(job(conn, caches, owned.borrow()))
                });
                shared.queue_and_wait(queue, job)
            }
        };
        drop(caller);
        output
            .map_err(|e| e.in_file(&shared.path))?
            .downcast::<T>()
            .map(|output| *output)
            .map_err(|_| Error::Internal("a job answered with another type of output"))
    }
}

/// A job's output with its type erased, to travel through the queue.
fn erase<T: Send + 'static>(result: Result<T>) -> Result<Output> {
    result.map(|output| Box::new(output) as Output)
}

impl<C: Caches> Shared<C> {
    /// Makes the caller the writer when no other store is under way: then
    /// the write is marked under way until the guard drops. Otherwise
    /// returns the queue, still locked, to queue the job in.
    fn claim_inline(
        &self,
        caller: &CallerGuard<'_, C>,
    ) -> Result<WritingGuard<'_, C>, MutexGuard<'_, Queue<C>>> {
        let mut queue = lock(&self.queue);
        if caller.alone && !queue.writing && queue.pending.is_empty() {
            queue.writing = true;
            drop(queue);
            return Ok(WritingGuard(self));
        }
        Err(queue)
    }

    /// Queues `job` for the group-commit thread and waits for its result.
    fn queue_and_wait(
        &self,
        mut queue: MutexGuard<'_, Queue<C>>,
        job: JobFn<'static, C>,
    ) -> Result<Output> {
        let job = Arc::new(Job::new(job));
        queue.pending.push(Arc::clone(&job));
        if queue.idle && !queue.writing {
            self.work_queued.notify_one();
        }
        drop(queue);
        // The commit is usually a few tens of microseconds away: waiting
        // for it yielding the processor costs less than sleeping and
        // being woken (see `RESULT_POLL`).
        let polling_since = Instant::now();
        let mut slot = lock(&job.slot);
        while slot.result.is_none() && polling_since.elapsed() < RESULT_POLL {
            drop(slot);
            std::thread::yield_now();
            slot = lock(&job.slot);
        }
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

impl<C: Caches> Drop for Writer<C> {
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

impl<C: Caches> Shared<C> {
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
            let jobs: Vec<&Job<'_, C>> = group.iter().map(|job| &**job).collect();
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
        mut queue: MutexGuard<'a, Queue<C>>,
        mut keep_waiting: impl FnMut(&Queue<C>) -> bool,
    ) -> MutexGuard<'a, Queue<C>> {
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
fn deliver<C>(group: &[Arc<Job<'static, C>>], results: Vec<Result<Output>>) {
    // Last first: a caller may find its result before it is woken (see
    // `RESULT_POLL`) and wake the callers after it at once, whose results
    // must then be there already.
    for (i, (job, result)) in group.iter().zip(results).enumerate().rev() {
        let mut slot = lock(&job.slot);
        slot.result = Some(result);
        slot.wakes = group.iter().skip(2 * i + 1).take(2).cloned().collect();
    }
    if let Some(first) = group.first() {
        first.ready.notify_one();
    }
}

thread_local! {
    /// The writer (its shared state's address) whose
    /// [`run_alone`](Writer::run_alone) job this thread is running; 0 for
    /// none.
    static ALONE_JOB: Cell<usize> = const { Cell::new(0) };
}

/// Marks the thread as running a writer's `run_alone` job while it lives,
/// and restores what was marked before (a stream may store another
/// store's stream).
struct AloneGuard(usize);

impl AloneGuard {
    fn enter(writer: usize) -> Self {
        AloneGuard(ALONE_JOB.with(|job| job.replace(writer)))
    }
}

impl Drop for AloneGuard {
    fn drop(&mut self) {
        ALONE_JOB.with(|job| job.set(self.0));
    }
}

/// Counts a caller in [`Shared::callers`] for as long as it is inside
/// [`Writer::submit`].
struct CallerGuard<'a, C> {
    shared: &'a Shared<C>,
    /// No other caller was inside when this one entered.
    alone: bool,
}

impl<'a, C> CallerGuard<'a, C> {
    fn enter(shared: &'a Shared<C>) -> Self {
        let others = shared.callers.fetch_add(1, Ordering::Relaxed);
        CallerGuard {
            shared,
            alone: others == 0,
        }
    }
}

impl<C> Drop for CallerGuard<'_, C> {
    fn drop(&mut self) {
        self.shared.callers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Marks the end of a write when dropped, also on a panic, and wakes the
/// group-commit thread if stores queued meanwhile.
struct WritingGuard<'a, C>(&'a Shared<C>);

impl<C> Drop for WritingGuard<'_, C> {
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
