//! Giving the file's freed space back: a full `VACUUM`, or an incremental
//! one in bounded steps.

use crate::engine::sqlite::FileStore;
use crate::error::{Error, Result};
use crate::model::reports::VacuumReport;

/// Free pages given back per transaction by an incremental vacuum (2 MiB
/// with 4 KiB pages): a short hold of the write lock.
pub(crate) const VACUUM_STEP_PAGES: u32 = 512;

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
                crate::rollup::tiers::let_others_write();
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
pub(crate) fn run_pragma(conn: &rusqlite::Connection, sql: &str) -> Result<()> {
    let mut stmt = conn.prepare(sql).map_err(Error::sqlite("vacuum"))?;
    let mut rows = stmt.query([]).map_err(Error::sqlite("vacuum"))?;
    while rows.next().map_err(Error::sqlite("vacuum"))?.is_some() {}
    Ok(())
}
