//! The pool of reader connections.
//!
//! r2d2 opens and drops connections on its own threads, so when a store is
//! closed a reader may still be open for a moment. SQLite removes the WAL
//! file only when the last connection to the database closes, and that
//! must be the writer, after its final checkpoint. So each reader
//! connection is counted while it lives, and closing waits for the count to
//! reach zero before the writer closes.

use std::ops::Deref;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use super::gate::{ReadGate, ReadPass};

/// How many reader connections are open.
#[derive(Default)]
pub(crate) struct OpenReaders {
    count: Mutex<usize>,
    all_closed: Condvar,
}

impl OpenReaders {
    /// Waits until every reader connection has closed, at most `timeout`.
    /// Returns whether they all did.
    pub fn wait_all_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut count = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        while *count > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            count = self
                .all_closed
                .wait_timeout(count, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// Counts one open reader until dropped.
struct OpenGuard(Arc<OpenReaders>);

impl OpenGuard {
    fn new(open: &Arc<OpenReaders>) -> Self {
        *open.count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        OpenGuard(Arc::clone(open))
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let mut count = self.0.count.lock().unwrap_or_else(PoisonError::into_inner);
        *count -= 1;
        if *count == 0 {
            self.0.all_closed.notify_all();
        }
    }
}

/// A reader connection checked out for one read: back to the pool, and
/// the read over at the [gate](super::gate), when dropped.
pub(crate) struct Reader {
    // Declared first: the connection is back in the pool (its read
    // transaction ended) before the gate counts the read as over.
    conn: PooledConnection<ReaderManager>,
    _pass: ReadPass,
}

impl Reader {
    /// Checks out a connection of `pool` through `gate`.
    pub fn check_out(
        gate: &Arc<ReadGate>,
        pool: &Pool<ReaderManager>,
    ) -> Result<Self, r2d2::Error> {
        let pass = gate.enter();
        Ok(Reader {
            conn: pool.get()?,
            _pass: pass,
        })
    }
}

impl Deref for Reader {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// A pooled reader connection.
pub(crate) struct ReaderConnection {
    // Declared first so that the connection is closed before the guard
    // says so.
    conn: Connection,
    _open: OpenGuard,
}

impl Deref for ReaderConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// r2d2_sqlite's manager, with every connection counted.
pub(crate) struct ReaderManager {
    inner: SqliteConnectionManager,
    open: Arc<OpenReaders>,
}

impl ReaderManager {
    pub fn new(inner: SqliteConnectionManager, open: Arc<OpenReaders>) -> Self {
        ReaderManager { inner, open }
    }
}

impl r2d2::ManageConnection for ReaderManager {
    type Connection = ReaderConnection;
    type Error = rusqlite::Error;

    fn connect(&self) -> Result<ReaderConnection, rusqlite::Error> {
        let conn = self.inner.connect()?;
        Ok(ReaderConnection {
            conn,
            _open: OpenGuard::new(&self.open),
        })
    }

    fn is_valid(&self, conn: &mut ReaderConnection) -> Result<(), rusqlite::Error> {
        self.inner.is_valid(&mut conn.conn)
    }

    fn has_broken(&self, conn: &mut ReaderConnection) -> bool {
        self.inner.has_broken(&mut conn.conn)
    }
}
