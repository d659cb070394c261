//! One snapshot across many calls: the reader connection that
//! `MetricsStorage::consistent` pins on its thread.
//!
//! Every read of a store goes through `MetricsStorage::read`. Inside
//! `consistent`, the calling thread has one reader connection pinned with
//! a read transaction open on it, and `read` hands out that connection
//! instead of a fresh one from the pool: the calls made inside all see the
//! file as it was when the first of them read it.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use r2d2::PooledConnection;

use crate::engine::sqlite::open::pool::ReaderManager;

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

/// Pins `conn` for store `id` on this thread until the returned guard is
/// dropped (also when the caller's closure panics), which ends its read
/// transaction.
pub(crate) fn pin(id: u64, conn: PooledConnection<ReaderManager>) -> Pin {
    PINNED.with(|pinned| pinned.borrow_mut().push((id, Rc::new(conn))));
    Pin(id)
}

/// Unpins a store's connection when dropped; see [`pin`].
pub(crate) struct Pin(u64);

impl Drop for Pin {
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
