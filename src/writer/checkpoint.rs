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
//! A PASSIVE checkpoint cannot make the log start over while readers keep
//! overlapping (each holds a snapshot the log must keep), so the WAL would
//! grow without bound under steady reads. Past [`TRUNCATE_PAGES`] the
//! background checkpoint therefore truncates the log, waiting briefly for
//! the readers of older snapshots, and `journal_size_limit` caps what the
//! file keeps when the log starts over.

use std::cell::Cell;
use std::os::raw::c_int;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::hooks::{CheckpointMode, Wal};
use rusqlite::Connection;

/// WAL growth, in pages, between two background checkpoints (SQLite's own
/// automatic checkpoint runs at 1000).
const CHECKPOINT_PAGES: c_int = 4000;

/// WAL pages from which a background checkpoint truncates the WAL: it
/// waits for the readers of older snapshots to finish (reads are short)
/// and holds back new writes meanwhile, so that the log starts over even
/// while reads overlap without a pause. With 4 KiB pages, 32 MiB.
const TRUNCATE_PAGES: c_int = 8000;

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
                ..State::default()
            }),
            wake: Condvar::new(),
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

/// Checkpoints in `mode` (`PASSIVE` or `TRUNCATE`). A truncating
/// checkpoint holds off every writer, in every process, while it runs, so
/// a passive one first copies what it can without blocking anybody, and
/// the truncating one is left with the few pages written since.
///
/// While it waits for readers it blocks writers, so it waits briefly
/// (see [`brief_wait`]) and, if readers are still there, gives up: SQLite
/// reports that in the pragma's result, not as an error, and the next
/// checkpoint tries again. This sets `conn`'s busy handler.
pub(crate) fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<()> {
    if mode != "PASSIVE" {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        conn.busy_handler(Some(brief_wait))?;
    }
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
}

/// A busy handler for truncating checkpoints: up to about 50 ms in steps
/// of a millisecond. Reads are short, and writers in every process wait
/// while the checkpoint does.
fn brief_wait(tries: i32) -> bool {
    if tries >= 50 {
        return false;
    }
    std::thread::sleep(std::time::Duration::from_millis(1));
    true
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
        // A PASSIVE checkpoint copies what no reader still needs and never
        // waits; but while reads overlap without a pause the log never
        // starts over, so past TRUNCATE_PAGES the checkpoint waits for them.
        let mode = if state.pages >= TRUNCATE_PAGES {
            "TRUNCATE"
        } else {
            "PASSIVE"
        };
        drop(state);
        // A checkpoint that cannot finish (readers still need old pages, or
        // the busy timeout passed) is simply tried again next time; the
        // store's data is safe in the WAL either way.
        let _ = checkpoint(conn, mode);
    }
}
