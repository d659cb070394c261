//! Background checkpoints.
//!
//! In WAL mode every commit appends pages to the WAL, and a checkpoint
//! copies them back into the database file (and, with
//! `synchronous = NORMAL`, syncs it). SQLite runs that checkpoint inside
//! whichever commit crosses the WAL size threshold, so one unlucky store
//! pays for it, and holds up every store queued behind it. Here a thread of
//! its own, on its own connection, checkpoints after every
//! [`COMMITS_PER_CHECKPOINT`] commits instead; `PASSIVE` checkpoints never
//! block the writer. The writer keeps SQLite's automatic checkpoint only as
//! a backstop, far above the usual WAL size.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::Connection;

/// Commits between two background checkpoints.
const COMMITS_PER_CHECKPOINT: u32 = 64;

/// WAL pages after which a commit checkpoints by itself, should the
/// background thread fall behind (SQLite's default is 1000).
pub(crate) const BACKSTOP_PAGES: i64 = 20_000;

#[derive(Default)]
struct State {
    commits: u32,
    stop: bool,
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
        let shared = Arc::new(Shared::default());
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

    /// Called after each commit.
    pub fn note_commit(&self) {
        let mut state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.commits += 1;
        if state.commits == COMMITS_PER_CHECKPOINT {
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

fn run(conn: &Connection, shared: &Shared) {
    loop {
        let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !state.stop && state.commits < COMMITS_PER_CHECKPOINT {
            state = shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.stop {
            return;
        }
        state.commits = 0;
        drop(state);
        // A checkpoint that cannot finish (readers still need old pages)
        // is simply tried again next time; the store's data is safe in the
        // WAL either way.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}
