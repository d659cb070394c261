//! One snapshot across many calls on PostgreSQL: inside
//! `MetricsStorage::consistent`, the calling thread holds one connection
//! with a `REPEATABLE READ READ ONLY` transaction open, and every read of
//! the store on that thread uses it. Writes and maintenance always take a
//! connection of their own.

use std::ops::{Deref, DerefMut};

use r2d2::PooledConnection;

use super::conn::{Conn, Manager};
use super::PgStore;
use crate::engine::pinning;
use crate::error::{Error, Result};

/// Every metric table and rollup table: what a snapshot spanning all
/// kinds locks.
const ALL_TABLES: &str = "task_metrics, agent_metrics, swarm_metrics, \
                                     task_summaries, agent_summaries, swarm_summaries";

/// The server's pinned connection: taken out by each read, put back when
/// it is done.
type Held = PooledConnection<Manager>;

/// A connection for one read: the pinned one, given back when dropped, or
/// one from the pool.
pub(super) struct ReadConn {
    store: u64,
    conn: Option<Held>,
    pinned: bool,
}

impl Deref for ReadConn {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        match &self.conn {
            Some(conn) => conn,
            None => unreachable!("a read connection is held until dropped"),
        }
    }
}

impl DerefMut for ReadConn {
    fn deref_mut(&mut self) -> &mut Conn {
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
            pinning::with_slot(self.store, |slot: &mut Option<Held>| *slot = conn);
        }
    }
}

/// Ends the pinned transaction of store `id` when dropped, also when the
/// caller's closure panics.
struct Unpin(u64);

impl Drop for Unpin {
    fn drop(&mut self) {
        if let Some(mut conn) = pinning::unpin::<Held>(self.0) {
            // A read-only transaction has nothing to commit; if it cannot
            // end, the connection is not given back to the pool in it.
            if conn.batch_execute("COMMIT").is_err() {
                let _ = conn.batch_execute("ROLLBACK");
            }
        }
    }
}

impl PgStore {
    /// A connection for a read: inside [`consistent`](Self::consistent) on
    /// this thread, the pinned one.
    pub(super) fn read_conn(&self) -> Result<ReadConn> {
        let taken = match pinning::with_slot(self.id, |slot: &mut Option<Held>| slot.take()) {
            Some(None) => return Err(Error::Internal("the pinned connection was taken twice")),
            Some(conn) => conn,
            None => None,
        };
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
        if pinning::is_pinned(self.id) {
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
        pinning::pin::<Held>(self.id, conn);
        let _unpin = Unpin(self.id);
        read()
    }
}
