//! One snapshot across many calls: the reader connection that
//! `MetricsStorage::consistent` pins on its thread.
//!
//! Every read of a store goes through `MetricsStorage::read`. Inside
//! `consistent`, the calling thread has one reader connection pinned with
//! a read transaction open on it, and `read` hands out that connection
//! instead of a fresh one from the pool: the calls made inside all see the
//! file as it was when the first of them read it.

use std::rc::Rc;

use crate::engine::pinning;
use crate::engine::sqlite::open::pool::Reader;

/// The file's pinned connection: shared by the reads inside `consistent`.
type Shared = Rc<Reader>;

/// The connection pinned for store `id` on this thread, if any.
pub(crate) fn pinned(id: u64) -> Option<Shared> {
    pinning::with_slot(id, |slot: &mut Option<Shared>| slot.clone()).flatten()
}

/// Pins `conn` for store `id` on this thread until the returned guard is
/// dropped (also when the caller's closure panics), which ends its read
/// transaction.
pub(crate) fn pin(id: u64, conn: Reader) -> Pin {
    pinning::pin::<Shared>(id, Rc::new(conn));
    Pin(id)
}

/// Unpins a store's connection when dropped; see [`pin`].
pub(crate) struct Pin(u64);

impl Drop for Pin {
    fn drop(&mut self) {
        if let Some(conn) = pinning::unpin::<Shared>(self.0) {
            // A read transaction has nothing to commit: ending it can only
            // fail if it already ended, and then the connection is clean.
            let _ = conn.execute_batch("COMMIT");
        }
    }
}
