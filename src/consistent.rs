//! One snapshot across many calls: [`MetricsStorage::consistent`].
//!
//! Every read of the store goes through [`MetricsStorage::read`]. Inside
//! `consistent`, the calling thread has one reader connection pinned with
//! a read transaction open on it, and `read` hands out that connection
//! instead of a fresh one from the pool: the calls made inside all see the
//! file as it was when the first of them read it.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use r2d2::PooledConnection;

use crate::error::{Error, Result};
use crate::open::pool::ReaderManager;
use crate::storage::MetricsStorage;

/// A number for each store opened by this process, so that a pinned
/// connection is only ever used for the store it belongs to.
static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// A new store's number.
pub(crate) fn new_store_id() -> u64 {
    NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed)
}

thread_local! {
    /// The connections pinned on this thread, by store number: one per
    /// store inside `consistent`, so usually none or one. Shared out by
    /// `Rc` so that no borrow of the list is held while a read runs (its
    /// callbacks may call `consistent` on another store).
    static PINNED: RefCell<Vec<(u64, Rc<PooledConnection<ReaderManager>>)>> =
        const { RefCell::new(Vec::new()) };
}

/// The connection pinned for store `id` on this thread, if any.
pub(crate) fn pinned(id: u64) -> Option<Rc<PooledConnection<ReaderManager>>> {
    PINNED.with(|pinned| {
        pinned
            .borrow()
            .iter()
            .find(|(store, _)| *store == id)
            .map(|(_, conn)| Rc::clone(conn))
    })
}

/// Unpins store `id` when dropped, also when the caller's closure panics,
/// and ends the read transaction.
struct Unpin(u64);

impl Drop for Unpin {
    fn drop(&mut self) {
        let conn = PINNED.with(|pinned| {
            let mut pinned = pinned.borrow_mut();
            let at = pinned.iter().position(|(store, _)| *store == self.0)?;
            Some(pinned.swap_remove(at).1)
        });
        if let Some(conn) = conn {
            // A read transaction has nothing to commit: ending it can only
            // fail if it already ended, and then the connection is clean.
            let _ = conn.execute_batch("COMMIT");
        }
    }
}

impl MetricsStorage {
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
        if pinned(self.id()).is_some() {
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
        PINNED.with(|pinned| pinned.borrow_mut().push((self.id(), Rc::new(conn))));
        let _unpin = Unpin(self.id());
        read(self)
    }
}
