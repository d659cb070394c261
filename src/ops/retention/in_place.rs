//! Freeing space on a full disk: cleanup and vacuum written into the
//! database file in place, without the write-ahead log.
//!
//! Every ordinary write of a store goes through the WAL, which needs new
//! disk space for each changed page; on a full disk even a delete fails.
//! Deleting rows and vacuuming needs no new pages in the main file (freed
//! pages are reused, and the vacuum only moves pages down and truncates),
//! so with the rollback journal kept in memory instead of on disk, both
//! can run in place. What that costs: the memory journal rolls a failed
//! statement back, but a process killed in the middle of a transaction
//! leaves it half-written, so this is the way out of a full disk, not the
//! way to run maintenance.

use std::path::Path;

use crate::engine::sqlite::retention::in_place;
use crate::error::{Error, Result};
use crate::storage::MetricsStorage;

use super::cleanup::cutoff;
pub use crate::model::reports::InPlaceReport;

impl MetricsStorage {
    /// Frees space on a full disk: deletes every metric older than
    /// `retention_days` days (as
    /// [`cleanup_old_metrics`](Self::cleanup_old_metrics)) and gives the
    /// freed pages back to the file system, writing into the database file
    /// in place, so that no new disk space is needed.
    ///
    /// An ordinary store cannot do this: its writes go through the
    /// write-ahead log, which needs new space for every page it changes.
    /// This opens the file itself, exclusively, with the rollback journal
    /// in memory, and turns the WAL back on at the end.
    ///
    /// - No other process may have the store open meanwhile; stop them
    ///   first (it waits 5 s for them, then fails).
    /// - It is not safe against a crash: a process killed or a machine
    ///   stopping while it runs can leave the file damaged. Let it finish.
    /// - When the WAL still holds writes that the main file has no room
    ///   for (the disk filled while storing), nothing can be done in
    ///   place: free some space on the disk (any file will do), then run
    ///   an ordinary cleanup.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for 0 days; [`Error::CannotOpen`] for a
    /// missing file, or one that another process has open;
    /// [`Error::ForeignDatabase`], [`Error::NotADatabase`],
    /// [`Error::SchemaTooOld`] / [`Error::SchemaTooNew`] (a migration needs
    /// space: open the store normally once there is some);
    /// [`Error::NoRoomInPlace`] in the WAL case above;
    /// [`Error::DatabaseFull`] or [`Error::FileSystem`] when even this
    /// cannot be written.
    pub fn cleanup_in_place(path: impl AsRef<Path>, retention_days: u32) -> Result<InPlaceReport> {
        let path = path.as_ref();
        if MetricsStorage::names_a_server(path) {
            // A server frees space its own way: cleanup drops whole months.
            return Err(Error::Unsupported {
                operation: "cleanup in place (a file's remedy for a full disk)",
                backend: "PostgreSQL",
            });
        }
        let cutoff = cutoff(retention_days)?;
        in_place::cleanup(path, cutoff)
    }
}
