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
//! [`TRUNCATE_PAGES`] the background thread therefore also truncates the
//! log, with this process's writer holding back meanwhile: no frame is
//! added while it waits briefly for the readers of older snapshots, and
//! readers that start meanwhile read the database file alone.
//! `journal_size_limit` caps what the file keeps when the log starts over.

use std::cell::Cell;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::hooks::{CheckpointMode, Wal};
use rusqlite::Connection;

/// WAL growth, in pages, between two background checkpoints (SQLite's own
/// automatic checkpoint runs at 1000).
const CHECKPOINT_PAGES: c_int = 4000;

/// WAL pages from which a background checkpoint also truncates the WAL
/// (24 MiB with 4 KiB pages, leaving ten tries before 64 MiB); see
/// [`truncate_with_writer_paused`].
const TRUNCATE_PAGES: c_int = 6000;

/// WAL growth, in pages, after which a truncation is tried again when
/// readers kept it from finishing.
const TRUNCATE_RETRY_PAGES: c_int = 1000;

/// The first wait of a truncating checkpoint for readers.
const TRUNCATE_WAIT_MIN: Duration = Duration::from_millis(100);

/// The longest wait of a truncating checkpoint for readers.
pub(crate) const TRUNCATE_WAIT_MAX: Duration = Duration::from_secs(1);

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
    /// How long the next truncating checkpoint waits for readers.
    truncate_wait: Duration,
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
    /// Signalled when a truncating checkpoint ends.
    truncated: Condvar,
    /// A truncating checkpoint is under way: the writer starts no
    /// transaction meanwhile (see [`Checkpointer::wait_for_truncation`]).
    /// Changed only with `state` locked, so that waiting on `truncated`
    /// misses no change.
    truncating: AtomicBool,
}

/// The background checkpoint thread; stopped and joined on drop.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread; it owns `conn` and closes it when stopped.
    pub fn start(conn: Connection) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                due_at: CHECKPOINT_PAGES,
                truncate_wait: TRUNCATE_WAIT_MIN,
                ..State::default()
            }),
            ..Shared::default()
        });
        let thread = std::thread::Builder::new()
            .name("swarm-metrics-checkpoint".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run(&conn, &shared)
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

    /// Waits, at most `max`, while a truncating checkpoint is under way:
    /// the writer calls this before each transaction, so that the
    /// checkpoint finds the write lock free.
    pub fn wait_for_truncation(&self, max: Duration) {
        if !self.shared.truncating.load(Ordering::Acquire) {
            return;
        }
        let state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let _ = self.shared.truncated.wait_timeout_while(state, max, |_| {
            self.shared.truncating.load(Ordering::Acquire)
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
/// over, truncated. It must wait for the readers of older snapshots, and
/// no writer of any process writes meanwhile, so callers copy the bulk
/// with [`checkpoint_passive`] first; it waits at most `wait` and, if
/// readers are still there, gives up. Returns whether the WAL was
/// truncated. Sets `conn`'s busy timeout to `wait`.
pub(crate) fn truncate_wal(conn: &Connection, wait: Duration) -> rusqlite::Result<bool> {
    conn.busy_timeout(wait)?;
    // The first column is 1 when the checkpoint was blocked.
    let blocked: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    Ok(blocked == 0)
}

fn run(conn: &Connection, shared: &Shared) {
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
        let truncate = state.pages >= TRUNCATE_PAGES;
        drop(state);
        let _ = checkpoint_passive(conn);
        if truncate {
            truncate_with_writer_paused(conn, shared);
        }
    }
}

/// Truncates the WAL while this process's writer holds back: it would
/// otherwise hardly ever let go of the write lock that a truncating
/// checkpoint needs. The wait for readers starts short; each time readers
/// keep the truncation from finishing, the next try comes
/// [`TRUNCATE_RETRY_PAGES`] later and waits twice as long, up to
/// [`TRUNCATE_WAIT_MAX`]: as long as the longest read.
fn truncate_with_writer_paused(conn: &Connection, shared: &Shared) {
    let set = |truncating: bool| {
        let state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        shared.truncating.store(truncating, Ordering::Release);
        state
    };
    let wait = set(true).truncate_wait;
    let truncated = truncate_wal(conn, wait).unwrap_or(false);
    let mut state = set(false);
    if truncated {
        state.truncate_wait = TRUNCATE_WAIT_MIN;
    } else {
        state.due_at = state.pages.saturating_add(TRUNCATE_RETRY_PAGES);
        state.truncate_wait = (wait * 2).min(TRUNCATE_WAIT_MAX);
    }
    drop(state);
    shared.truncated.notify_all();
}
