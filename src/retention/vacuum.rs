//! Giving freed space back to the file system: a full `VACUUM`, or an
//! incremental one in bounded steps.

use crate::engine::on_engine;
use crate::engine::sqlite::FileStore;
use crate::error::{Error, Result};
pub use crate::model::reports::VacuumReport;
use crate::storage::MetricsStorage;

/// Free pages given back per transaction by an incremental vacuum (2 MiB
/// with 4 KiB pages): a short hold of the write lock.
pub(super) const VACUUM_STEP_PAGES: u32 = 512;

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

impl FileStore {
    /// A full `VACUUM` of the file.
    pub(crate) fn vacuum(&self) -> Result<VacuumReport> {
        self.measured(|| {
            self.writer()?
                .with_connection(|conn| run_pragma(conn, "VACUUM"))
        })
    }

    /// Gives up to `max_pages` free pages of the file back in steps.
    pub(crate) fn incremental_vacuum(&self, max_pages: Option<u32>) -> Result<VacuumReport> {
        let writer = self.writer()?;
        self.measured(|| {
            let mut left = max_pages.unwrap_or(u32::MAX);
            while left > 0 {
                let step = left.min(VACUUM_STEP_PAGES);
                let free = writer.with_connection(|conn| {
                    run_pragma(conn, &format!("PRAGMA incremental_vacuum({step})"))?;
                    conn.query_row("PRAGMA freelist_count", [], |r| r.get::<_, i64>(0))
                        .map_err(Error::sqlite("vacuum"))
                })?;
                if free == 0 {
                    break;
                }
                left -= step;
                super::let_others_write();
            }
            Ok(())
        })
    }

    /// Runs `reclaim` between two checkpoints (the file shrinks only when
    /// the WAL is copied back) and measures the file before and after.
    fn measured(&self, reclaim: impl FnOnce() -> Result<()>) -> Result<VacuumReport> {
        self.checkpoint()?;
        let bytes_before = self.file_size()?;
        reclaim()?;
        self.checkpoint()?;
        Ok(VacuumReport {
            bytes_before,
            bytes_after: self.file_size()?,
        })
    }
}

/// Runs a statement that may return rows (as some pragmas do) to its end.
pub(super) fn run_pragma(conn: &rusqlite::Connection, sql: &str) -> Result<()> {
    let mut stmt = conn.prepare(sql).map_err(Error::sqlite("vacuum"))?;
    let mut rows = stmt.query([]).map_err(Error::sqlite("vacuum"))?;
    while rows.next().map_err(Error::sqlite("vacuum"))?.is_some() {}
    Ok(())
}
