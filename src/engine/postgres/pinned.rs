//! One snapshot across many calls on PostgreSQL: inside
//! `MetricsStorage::consistent`, the calling thread holds one connection
//! with a `REPEATABLE READ READ ONLY` transaction open, and every read of
//! the store on that thread uses it. Writes and maintenance always take a
//! connection of their own.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

use postgres::Client;
use r2d2::PooledConnection;

use super::{Manager, PgStore};
use crate::error::{Error, Result};

/// Every metric table and rollup table: what a snapshot spanning all
/// kinds locks.
const ALL_TABLES: &str = "task_metrics, agent_metrics, swarm_metrics, \
                                     task_summaries, agent_summaries, swarm_summaries";

thread_local! {
    /// The connections pinned on this thread, by store number; `None`
    /// while a read is using it.
    static PINNED: RefCell<Vec<(u64, Option<PooledConnection<Manager>>)>> =
        const { RefCell::new(Vec::new()) };
}

/// A connection for one read: the pinned one, given back when dropped, or
/// one from the pool.
pub(super) struct ReadConn {
    store: u64,
    conn: Option<PooledConnection<Manager>>,
    pinned: bool,
}

impl Deref for ReadConn {
    type Target = Client;

    fn deref(&self) -> &Client {
        match &self.conn {
            Some(conn) => conn,
            None => unreachable!("a read connection is held until dropped"),
        }
    }
}

impl DerefMut for ReadConn {
    fn deref_mut(&mut self) -> &mut Client {
        match &mut self.conn {
            Some(conn) => conn,
            None => unreachable!("a read connection is held until dropped"),
        }
    }
}

impl ReadConn {
    /// Whether this is the connection `consistent` pinned, its snapshot
    /// already taken.
    pub(super) fn is_pinned(&self) -> bool {
        self.pinned
    }
}

impl Drop for ReadConn {
    fn drop(&mut self) {
        if self.pinned {
            let conn = self.conn.take();
            PINNED.with(|pinned| {
                if let Some(slot) = pinned
                    .borrow_mut()
                    .iter_mut()
                    .find(|(s, _)| *s == self.store)
                {
                    slot.1 = conn;
                }
            });
        }
    }
}

/// Ends the pinned transaction of store `id` when dropped, also when the
/// caller's closure panics.
struct Unpin(u64);

impl Drop for Unpin {
    fn drop(&mut self) {
        let conn = PINNED.with(|pinned| {
            let mut pinned = pinned.borrow_mut();
            let at = pinned.iter().position(|(store, _)| *store == self.0)?;
            pinned.swap_remove(at).1
        });
        if let Some(mut conn) = conn {
            // A read-only transaction has nothing to commit; if it cannot
            // end, the connection is not given back to the pool in it.
            if conn.batch_execute("COMMIT").is_err() {
                let _ = conn.batch_execute("ROLLBACK");
            }
        }
    }
}

/// Whether store `id` has a connection pinned on this thread.
pub(super) fn is_pinned(id: u64) -> bool {
    PINNED.with(|pinned| pinned.borrow().iter().any(|(store, _)| *store == id))
}

impl PgStore {
    /// A connection for a read: inside [`consistent`](Self::consistent) on
    /// this thread, the pinned one.
    pub(super) fn read_conn(&self) -> Result<ReadConn> {
        let taken = PINNED.with(|pinned| {
            let mut pinned = pinned.borrow_mut();
            match pinned.iter_mut().find(|(store, _)| *store == self.id) {
                Some((_, slot)) => slot
                    .take()
                    .map(Some)
                    .ok_or(Error::Internal("the pinned connection was taken twice")),
                None => Ok(None),
            }
        })?;
        Ok(match taken {
            Some(conn) => ReadConn {
                store: self.id,
                conn: Some(conn),
                pinned: true,
            },
            None => ReadConn {
                store: self.id,
                conn: Some(self.conn()?),
                pinned: false,
            },
        })
    }

    /// Runs `read` with every read of this store on this thread in one
    /// `REPEATABLE READ` transaction: one snapshot of the database.
    pub(crate) fn consistent<T>(&self, read: impl FnOnce() -> Result<T>) -> Result<T> {
        if is_pinned(self.id) {
            return read();
        }
        let mut conn = self.conn()?;
        // The tables are locked before the snapshot is taken, at the first
        // query after BEGIN, so that no partition folded and dropped
        // meanwhile goes missing from it (see `rollups.rs`).
        conn.batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             LOCK TABLE {ALL_TABLES} IN ACCESS SHARE MODE; SELECT 1"
        ))
        .map_err(self.error("begin a consistent read"))?;
        PINNED.with(|pinned| pinned.borrow_mut().push((self.id, Some(conn))));
        let _unpin = Unpin(self.id);
        read()
    }
}
