//! Tiered retention and cleanup on the file: each step a writer job
//! ([`fold`], [`cleanup`], [`vacuum`]), the rollups read back into answers
//! ([`merge`]), and copied in and out ([`transfer`]).

pub(crate) mod cleanup;
pub(crate) mod fold;
pub(crate) mod in_place;
pub(crate) mod merge;
mod transfer;
pub(crate) mod vacuum;
use rusqlite::Connection;

use crate::engine::sqlite::rows::Cache;
use crate::engine::sqlite::writer::Writer;
use crate::engine::sqlite::FileStore;
use crate::error::Result;
use crate::rollup::tiers::{let_others_write, Step};

/// Runs `chunk` as writer jobs, one after the other with a pause between,
/// until one does fewer than `full` rows; returns the rows done in all.
fn in_chunks<F>(writer: &Writer<Cache>, full: usize, chunk: F) -> Result<u64>
where
    F: Fn(&Connection) -> Result<usize> + Clone + Send + Sync + 'static,
{
    let mut total = 0u64;
    loop {
        let chunk = chunk.clone();
        let done = writer.run(move |conn, _| chunk(conn))?;
        total += done as u64;
        if done < full {
            return Ok(total);
        }
        let_others_write();
    }
}

impl FileStore {
    /// Runs one step of tiered retention on the file as one writer job;
    /// returns the rows it handled and whether the step has more to do.
    pub(crate) fn retention_step(&self, step: &Step) -> Result<(usize, bool)> {
        let step = *step;
        let n = self.writer()?.run(move |conn, _| step.run(conn))?;
        let more = match step {
            Step::FoldRaw { limit, .. } | Step::FoldHourly { limit, .. } => n as i64 >= limit,
            Step::DropDaily { .. } => false,
        };
        Ok((n, more))
    }

    /// Whether `step` would find anything to do in the file now.
    pub(crate) fn has_retention_work(&self, step: &Step) -> Result<bool> {
        let (sql, cutoff) = step.has_work_sql();
        let found = self.read_now(|s| s.one(&sql, vec![cutoff.into()], "read retention work"))?;
        Ok(found.unwrap_or(false))
    }
}
