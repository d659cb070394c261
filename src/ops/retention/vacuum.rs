//! Giving freed space back to the file system: a full `VACUUM`, or an
//! incremental one in bounded steps.

use crate::engine::on_engine;
use crate::error::{Error, Result};
use crate::storage::MetricsStorage;

pub use crate::model::reports::VacuumReport;

impl MetricsStorage {
    /// Rebuilds the database file to give freed space back to the file
    /// system and defragment it, and reports the file's size before and
    /// after.
    ///
    /// A full `VACUUM` needs the file to itself: it holds the write lock
    /// for its whole run (seconds on a large file), so stores from other
    /// processes wait, and fail once their busy timeout passes; and it may
    /// need as much free disk as the file's size.
    /// [`incremental_vacuum`](Self::incremental_vacuum) gives space back
    /// in bounded steps instead, and is what maintenance under live load
    /// should use.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; [`Error::Sqlite`] when SQLite fails (for
    /// example with too little disk space, or when another process holds a
    /// lock past the busy timeout); [`Error::Io`] when the file's size
    /// cannot be read.
    pub fn vacuum(&self) -> Result<VacuumReport> {
        on_engine!(self.engine(), vacuum())
    }

    /// Gives up to `max_pages` free pages (all of them with `None`) back to
    /// the file system without rebuilding the file: it never needs extra
    /// disk space, and works in steps of a few thousand pages, one
    /// transaction each with a pause between, so that stores in this and
    /// other processes go on meanwhile. Stores that free pages (cleanup,
    /// retention) leave them on the free list for reuse until then.
    ///
    /// On a server, where `VACUUM` already works beside writers, this is
    /// [`vacuum`](Self::vacuum).
    ///
    /// # Errors
    /// As [`vacuum`](Self::vacuum), and [`Error::InvalidInput`] for
    /// `Some(0)`.
    pub fn incremental_vacuum(&self, max_pages: Option<u32>) -> Result<VacuumReport> {
        if max_pages == Some(0) {
            return Err(Error::invalid("max_pages", "must be at least 1"));
        }
        on_engine!(self.engine(), incremental_vacuum(max_pages))
    }
}
