//! Background checkpoints.
//!
//! In WAL mode every commit appends pages to the WAL, and a checkpoint
//! copies them back into the database file (and, with
//! `synchronous = NORMAL`, syncs both files). SQLite runs that checkpoint
//! inside whichever commit crosses the WAL size threshold, so one unlucky
//! store pays for it, and holds up every store queued behind it. Here a
//! thread of its own, on its own connection, checkpoints instead each time
//! the WAL has grown by [`CHECKPOINT_PAGES`]; `PASSIVE` checkpoints never
//! block the writer.
//!
//! The trigger is the WAL's size, not the number of commits: single stores
//! commit a page or two each, and checkpointing after every few dozen of
//! them spent most of the checkpoint's work on its two syncs. The writer
//! learns the WAL's size from SQLite's WAL hook, which replaces SQLite's
//! automatic checkpoint; the hook keeps it only as a backstop, far above the
//! usual WAL size, should the background thread fall behind.
//!
//! A PASSIVE checkpoint cannot make the log start over while reads keep
//! overlapping: each reader that starts while some frames are not yet
//! copied holds on to the log, and under steady writes there always are
//! such frames. So the WAL would grow without bound. Past
//! [`RESTART_PAGES`] the background thread therefore also makes the log
//! start over, between reads: it shuts the
//! [read gate](crate::engine::sqlite::open::gate) at a moment when no read
//! of this process is under way (writers keep storing while it waits for
//! one), copies what was written meanwhile, and only then holds this
//! process's writer back for the restart itself, which then waits for no
//! reader. Reads started meanwhile wait at the gate for those two steps.
//!
//! The log starts over from its beginning rather than being truncated:
//! the file's blocks are written again instead of being freed and
//! allocated anew (a truncation took about 10 ms of the writer's pause).
//! `journal_size_limit` still cuts the file back after a burst made it
//! larger.

use std::cell::Cell;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::hooks::{CheckpointMode, Wal};
use rusqlite::Connection;

use crate::engine::sqlite::open::gate::ReadGate;

/// WAL growth, in pages, between two background checkpoints (SQLite's own
/// automatic checkpoint runs at 1000). Single stores from several threads
/// grow the WAL by tens of thousands of pages a second.
const CHECKPOINT_PAGES: c_int = 1500;

/// WAL pages from which a background checkpoint also makes the log start
/// over (12 MiB with 4 KiB pages); see [`restart_between_reads`].
const RESTART_PAGES: c_int = 3000;

/// WAL growth, in pages, after which a restart is tried again when reads
/// kept it from finishing.
const RESTART_RETRY_PAGES: c_int = 500;

/// How long a restart waits, writers storing, for a moment with no read
/// under way before it shuts the read gate regardless.
const READ_GAP_WAIT: Duration = Duration::from_millis(30);

/// The first wait of a restart for the reads under way once the gate is
/// shut (which new reads wait for too), and for the write lock.
const RESTART_WAIT_MIN: Duration = Duration::from_millis(20);

/// The longest wait of a restart, after reads kept earlier ones from
/// finishing.
pub(crate) const RESTART_WAIT_MAX: Duration = Duration::from_secs(1);

/// WAL pages after which a commit checkpoints by itself, should the
/// background thread fall behind (48 MiB with 4 KiB pages).
const BACKSTOP_PAGES: c_int = 12_000;

thread_local! {
    /// The WAL's size in pages after the last commit on this thread, as
    /// SQLite's WAL hook reported it, until taken.
    static WAL_PAGES: Cell<Option<c_int>> = const { Cell::new(None) };
}

/// Has SQLite report the WAL's size after each of `conn`'s commits (see
/// [`take_wal_pages`]), and checkpoint in the commit once it passes the
/// backstop.
pub(crate) fn watch_wal(conn: &Connection) {
    conn.wal_hook(Some(after_commit));
}

fn after_commit(wal: &Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|cell| cell.set(Some(pages)));
    if pages >= BACKSTOP_PAGES {
        // As SQLite's automatic checkpoint does: a checkpoint that cannot
        // finish now is retried after a later commit.
        let _ = wal.checkpoint_v2(CheckpointMode::PASSIVE);
    }
    Ok(())
}

/// The WAL's size in pages after the last commit on this thread, if that
/// commit wrote to the WAL and nobody has taken it yet.
pub(crate) fn take_wal_pages() -> Option<c_int> {
    WAL_PAGES.with(Cell::take)
}

#[derive(Default)]
struct State {
    /// The WAL's size after the last commit.
    pages: c_int,
    /// The size at which the next checkpoint is due.
    due_at: c_int,
    /// How long the next restart waits for reads and the write lock.
    restart_wait: Duration,
    stop: bool,
}

impl State {
    fn due(&self) -> bool {
        self.pages >= self.due_at
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Signalled when a restart ends.
    restarted: Condvar,
    /// A restart is under way: the writer starts no transaction meanwhile
    /// (see [`Checkpointer::wait_for_restart`]). Changed only with `state`
    /// locked, so that waiting on `restarted` misses no change.
    restarting: AtomicBool,
}

/// The background checkpoint thread; stopped and joined on drop.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread; it owns `conn` and closes it when stopped, and
    /// shuts `gate` for restarts of the log.
    pub fn start(conn: Connection, gate: Arc<ReadGate>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                due_at: CHECKPOINT_PAGES,
                restart_wait: RESTART_WAIT_MIN,
                ..State::default()
            }),
            ..Shared::default()
        });
        let thread = std::thread::Builder::new()
            .name("swarm-metrics-checkpoint".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run(&conn, &shared, &gate)
            })?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// Called after each commit with the WAL's size in pages.
    pub fn note_commit(&self, pages: c_int) {
        let mut state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if pages < state.pages {
            // The WAL started over after a complete checkpoint.
            state.due_at = CHECKPOINT_PAGES;
        }
        state.pages = pages;
        if state.due() {
            self.shared.wake.notify_one();
        }
    }

    /// Waits, at most `max`, while the log is being restarted: the writer
    /// calls this before each transaction, so that the restart finds the
    /// write lock free.
    pub fn wait_for_restart(&self, max: Duration) {
        if !self.shared.restarting.load(Ordering::Acquire) {
            return;
        }
        let state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let _ = self.shared.restarted.wait_timeout_while(state, max, |_| {
            self.shared.restarting.load(Ordering::Acquire)
        });
    }

    /// Stops the thread and closes its connection.
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.shared
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .stop = true;
            self.shared.wake.notify_one();
            // The thread only checkpoints; a panic there loses nothing.
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A passive checkpoint: copies what no reader still needs, waiting for
/// nobody. One that cannot finish is simply tried again later; the data is
/// safe in the WAL either way.
pub(crate) fn checkpoint_passive(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

/// Copies the rest of the WAL into the database file and starts the log
/// over, truncated (for an explicit checkpoint, which should leave the
/// WAL file empty). It must wait for the readers of older snapshots, and no
/// writer of any process writes meanwhile, so callers copy the bulk with
/// [`checkpoint_passive`] first; it waits at most `wait` and, if readers are
/// still there, gives up. Returns whether the WAL was truncated. Sets
/// `conn`'s busy timeout to `wait`.
pub(crate) fn truncate_wal(conn: &Connection, wait: Duration) -> rusqlite::Result<bool> {
    end_wal(conn, "PRAGMA wal_checkpoint(TRUNCATE)", wait)
}

/// As [`truncate_wal`], but the next commit writes the log from its start
/// again instead of the file being truncated.
fn restart_wal(conn: &Connection, wait: Duration) -> rusqlite::Result<bool> {
    end_wal(conn, "PRAGMA wal_checkpoint(RESTART)", wait)
}

fn end_wal(conn: &Connection, pragma: &str, wait: Duration) -> rusqlite::Result<bool> {
    conn.busy_timeout(wait)?;
    // The first column is 1 when the checkpoint was blocked.
    let blocked: i64 = conn.query_row(pragma, [], |r| r.get(0))?;
    Ok(blocked == 0)
}

fn run(conn: &Connection, shared: &Shared, gate: &ReadGate) {
    loop {
        let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !state.stop && !state.due() {
            state = shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.stop {
            return;
        }
        // If readers keep this checkpoint from finishing, the WAL keeps
        // growing, and the next one is due a CHECKPOINT_PAGES later.
        state.due_at = state.pages.saturating_add(CHECKPOINT_PAGES);
        let restart = state.pages >= RESTART_PAGES;
        drop(state);
        let _ = checkpoint_passive(conn);
        if restart {
            restart_between_reads(conn, shared, gate);
        }
    }
}

/// Makes the log start over between reads: with the read gate shut and no
/// read of this process under way, the rest of the log is copied while
/// writers store, then this process's writer holds back for the restart
/// alone (it would otherwise hardly ever let go of the write lock the
/// restart needs). The waits for reads and for the lock start short; each
/// time reads (or another process) keep the restart from finishing, the
/// next try comes [`RESTART_RETRY_PAGES`] later and waits twice as long, up
/// to [`RESTART_WAIT_MAX`], and each restart that finishes halves it again:
/// the wait follows the length of the reads.
fn restart_between_reads(conn: &Connection, shared: &Shared, gate: &ReadGate) {
    let lock = || shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    let set_restarting = |restarting: bool| {
        let _state = lock();
        shared.restarting.store(restarting, Ordering::Release);
    };
    let wait = lock().restart_wait;
    let mut restarted = false;
    if let Some(_closed) = gate.close(READ_GAP_WAIT, wait) {
        // No snapshot of this process holds this copy back now.
        let _ = checkpoint_passive(conn);
        set_restarting(true);
        restarted = restart_wal(conn, wait).unwrap_or(false);
        set_restarting(false);
        shared.restarted.notify_all();
    }
    let mut state = lock();
    if restarted {
        // What the writer reported meanwhile is from before the restart.
        state.pages = 0;
        state.due_at = CHECKPOINT_PAGES;
        // Halved, not reset: a wait that had to grow before is likely
        // needed again, as long as reads stay that long.
        state.restart_wait = (wait / 2).max(RESTART_WAIT_MIN);
    } else {
        state.due_at = state.pages.saturating_add(RESTART_RETRY_PAGES);
        state.restart_wait = (wait * 2).min(RESTART_WAIT_MAX);
    }
}
