//! Moving a store: every metric of one store into another, file or
//! server, in either direction.

use std::ops::ControlFlow;

use crate::engine::on_engine;
use crate::error::{Error, Result};
use crate::model::filter::Filter;
use crate::rollup::row::RollupRecord;
use crate::storage::write::{MetricBatch, StreamReport};
use crate::storage::MetricsStorage;

/// Metrics written per transaction of a copy: a copy that is interrupted
/// keeps what it wrote, and one run again skips it.
const COPY_CHUNK: usize = 10_000;

impl MetricsStorage {
    /// Copies every task, agent and swarm metric of this store into `to`
    /// (say, a file into a PostgreSQL server as a fleet outgrows one
    /// machine, or back), oldest first, in transactions of 10,000 metrics,
    /// and then the rollups of tiered retention, in transactions of 5,000.
    /// Metrics and rollups `to` already holds are counted as duplicates and
    /// left as they were, so a copy that was interrupted can simply be run
    /// again: it goes on where it stopped. Agent and swarm metrics get ids
    /// of the target's.
    ///
    /// The whole copy reads one snapshot of this store (see
    /// [`consistent`](Self::consistent)), so retention folding rows here
    /// meanwhile cannot make a row arrive both raw and rolled up. Copied
    /// into an empty store (or resumed into one this copy started), every
    /// answer of the target equals this store's.
    ///
    /// # Errors
    /// [`Error::CorruptRow`] for a rollup whose data cannot be read (before
    /// its chunk is written); otherwise as the reads of this store and
    /// [`store_batch`](Self::store_batch) on `to`. What was committed before
    /// an error stays in `to`.
    pub fn copy_to(&self, to: &MetricsStorage) -> Result<StreamReport> {
        self.consistent(|source| {
            let mut copy = Copy {
                to,
                chunk: MetricBatch::default(),
                rollups: Vec::new(),
                report: StreamReport::default(),
                failed: None,
            };
            let all = Filter::new();
            source.for_each_task_metric(&all, |t| copy.add(|b| b.tasks.push(t)))?;
            source.for_each_agent_metric(&all, |m| copy.add(|b| b.agents.push(m.metric)))?;
            source.for_each_swarm_metric(&all, |m| copy.add(|b| b.swarms.push(m.metric)))?;
            copy.flush();
            source.for_each_rollup(|record| copy.add_rollup(record))?;
            copy.flush_rollups();
            match copy.failed {
                Some(e) => Err(e),
                None => Ok(copy.report),
            }
        })
    }

    /// Visits every rollup row of this store, oldest bucket first, until
    /// `visit` breaks.
    fn for_each_rollup(&self, visit: impl FnMut(RollupRecord) -> ControlFlow<()>) -> Result<()> {
        on_engine!(self.engine(), each_rollup(visit))
    }

    /// Writes rollup rows in one transaction, keeping those already there;
    /// returns how many were new.
    fn write_rollups(&self, records: Vec<RollupRecord>) -> Result<u64> {
        on_engine!(self.engine(), insert_rollups(records))
    }
}

/// Rollup rows written per transaction of a copy.
const ROLLUP_CHUNK: usize = 5_000;

/// A copy under way: the chunk being filled and what was written.
struct Copy<'a> {
    to: &'a MetricsStorage,
    chunk: MetricBatch,
    /// Rollup rows waiting to be written.
    rollups: Vec<RollupRecord>,
    report: StreamReport,
    /// The write that failed; the copy stops at it.
    failed: Option<Error>,
}

impl Copy<'_> {
    /// Adds a metric to the chunk, writing the chunk when full; says stop
    /// once a write failed.
    fn add(&mut self, push: impl FnOnce(&mut MetricBatch)) -> ControlFlow<()> {
        if self.failed.is_some() {
            return ControlFlow::Break(());
        }
        push(&mut self.chunk);
        if self.chunk.len() >= COPY_CHUNK {
            self.flush();
        }
        if self.failed.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// Writes the chunk in one transaction.
    fn flush(&mut self) {
        if self.failed.is_some() || self.chunk.is_empty() {
            return;
        }
        let chunk = std::mem::take(&mut self.chunk);
        match self.to.store_batch(&chunk) {
            Ok(written) => self.report.add(&chunk, &written),
            Err(e) => self.failed = Some(e),
        }
    }

    /// Adds a rollup row, writing the rows waiting when there are enough;
    /// says stop once a write failed.
    fn add_rollup(&mut self, record: RollupRecord) -> ControlFlow<()> {
        if self.failed.is_some() {
            return ControlFlow::Break(());
        }
        self.rollups.push(record);
        if self.rollups.len() >= ROLLUP_CHUNK {
            self.flush_rollups();
        }
        if self.failed.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// Writes the rollup rows waiting in one transaction.
    fn flush_rollups(&mut self) {
        if self.failed.is_some() || self.rollups.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.rollups);
        let all = records.len() as u64;
        match self.to.write_rollups(records) {
            Ok(new) => {
                self.report.rollups.stored += new;
                self.report.rollups.duplicates += all - new;
            }
            Err(e) => self.failed = Some(e),
        }
    }
}
