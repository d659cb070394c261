//! The one registry of connections that `MetricsStorage::consistent`
//! pins on a thread, for either engine: inside `consistent`, every read of
//! that store on that thread uses the pinned connection, whose open
//! transaction holds one snapshot.
//!
//! Each store has a number from one counter, so that a pinned connection
//! is only ever used for its own store. A slot holds `Option<C>`: an
//! engine whose reads need the connection to themselves (a server's
//! client) takes it out and puts it back; one whose reads share it (the
//! file's, behind an `Rc`) clones it.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// A number for each store opened by this process.
static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// A new store's number.
pub(crate) fn new_store_id() -> u64 {
    NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed)
}

thread_local! {
    /// The connections pinned on this thread, by store number: one per
    /// store inside `consistent`, so usually none or one. Each is an
    /// `Option<C>` of its engine's connection type.
    static PINNED: RefCell<Vec<(u64, Box<dyn Any>)>> = const { RefCell::new(Vec::new()) };
}

/// Pins `conn` for store `store` on this thread.
pub(crate) fn pin<C: 'static>(store: u64, conn: C) {
    PINNED.with(|pinned| pinned.borrow_mut().push((store, Box::new(Some(conn)))));
}

/// Whether store `store` has a connection pinned on this thread.
pub(crate) fn is_pinned(store: u64) -> bool {
    PINNED.with(|pinned| pinned.borrow().iter().any(|(s, _)| *s == store))
}

/// Runs `f` on the slot of store `store`'s pinned connection; `None` when
/// none is pinned. `f` runs with the registry borrowed: it only takes,
/// puts back or clones the connection.
pub(crate) fn with_slot<C: 'static, R>(
    store: u64,
    f: impl FnOnce(&mut Option<C>) -> R,
) -> Option<R> {
    PINNED.with(|pinned| {
        let mut pinned = pinned.borrow_mut();
        let (_, slot) = pinned.iter_mut().find(|(s, _)| *s == store)?;
        slot.downcast_mut::<Option<C>>().map(f)
    })
}

/// Unpins store `store`'s connection and hands it back (`None` when none
/// is pinned, or it is out in a read).
pub(crate) fn unpin<C: 'static>(store: u64) -> Option<C> {
    let slot = PINNED.with(|pinned| {
        let mut pinned = pinned.borrow_mut();
        let at = pinned.iter().position(|(s, _)| *s == store)?;
        Some(pinned.swap_remove(at).1)
    })?;
    slot.downcast::<Option<C>>().ok().and_then(|conn| *conn)
}
