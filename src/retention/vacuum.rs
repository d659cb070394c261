//! Giving freed space back to the file system: a full `VACUUM`, or an
//! incremental one in bounded steps.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::MetricsStorage;

/// The database file's size before and after a vacuum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VacuumReport {
    /// Bytes before.
    pub bytes_before: u64,
    /// Bytes after.
    pub bytes_after: u64,
}

impl MetricsStorage {
    /// Rebuilds the database file to give freed space back to the file
    /// system and defragment it, and reports the file's size before and
    /// after. Takes the write lock for its whole run and may need as much
    /// free disk as the file's size; [`incremental_vacuum`](Self::incremental_vacuum)
    /// gives space back in bounded steps instead.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; [`Error::Sqlite`] when SQLite fails (for
    /// example with too little disk space); [`Error::Io`] when the file's
    /// size cannot be read.
    pub fn vacuum(&self) -> Result<VacuumReport> {
        self.reclaim("VACUUM")
    }

    /// Gives up to `max_pages` free pages (all of them with `None`) back to
    /// the file system without rebuilding the file: quick, and it never
    /// needs extra disk space. Stores that free pages (cleanup, retention)
    /// leave them on the free list for reuse until then.
    ///
    /// # Errors
    /// As [`vacuum`](Self::vacuum).
    pub fn incremental_vacuum(&self, max_pages: Option<u32>) -> Result<VacuumReport> {
        let pages = max_pages.map_or(0, i64::from);
        if max_pages == Some(0) {
            return Err(Error::invalid("max_pages", "must be at least 1"));
        }
        self.reclaim(&format!("PRAGMA incremental_vacuum({pages})"))
    }

    /// Runs `sql` on the writer between two checkpoints (the file shrinks
    /// only when the WAL is copied back) and measures the file.
    fn reclaim(&self, sql: &str) -> Result<VacuumReport> {
        let writer = self.writer()?;
        self.checkpoint()?;
        let bytes_before = self.file_size()?;
        writer.with_connection(|conn| {
            let mut stmt = conn.prepare(sql).map_err(Error::sqlite("vacuum"))?;
            let mut rows = stmt.query([]).map_err(Error::sqlite("vacuum"))?;
            while rows.next().map_err(Error::sqlite("vacuum"))?.is_some() {}
            Ok(())
        })?;
        self.checkpoint()?;
        Ok(VacuumReport {
            bytes_before,
            bytes_after: self.file_size()?,
        })
    }
}
