//! Moving a store: every metric of one store into another, file or
//! server, in either direction.

use std::ops::ControlFlow;

use crate::error::{Error, Result};
use crate::query::Filter;
use crate::storage::MetricsStorage;
use crate::store::{MetricBatch, StreamReport};

/// Metrics written per transaction of a copy: a copy that is interrupted
/// keeps what it wrote, and one run again skips it.
const COPY_CHUNK: usize = 10_000;

impl MetricsStorage {
    /// Copies every task, agent and swarm metric of this store into `to`
    /// (say, a file into a PostgreSQL server as a fleet outgrows one
    /// machine, or back), oldest first, in transactions of 10,000 metrics.
    /// Metrics `to` already holds are counted as duplicates and left as
    /// they were, so a copy that was interrupted can simply be run again:
    /// it goes on where it stopped. Agent and swarm metrics get ids of
    /// the target's.
    ///
    /// Rollups of tiered retention are not copied yet: a store that holds
    /// any is refused rather than copied without them.
    ///
    /// # Errors
    /// [`Error::Unsupported`] when this store holds rollups; otherwise as
    /// the reads of this store and [`store_batch`](Self::store_batch) on
    /// `to`. What was committed before an error stays in `to`.
    pub fn copy_to(&self, to: &MetricsStorage) -> Result<StreamReport> {
        let stats = self.stats()?;
        let rolled: u64 = [stats.task_metrics, stats.agent_metrics, stats.swarm_metrics]
            .iter()
            .map(|t| t.hourly_rollups + t.daily_rollups)
            .sum();
        if rolled > 0 {
            return Err(Error::Unsupported {
                operation: "copying a store with rollups",
                backend: "any",
            });
        }
        let mut copy = Copy {
            to,
            chunk: MetricBatch::default(),
            report: StreamReport::default(),
            failed: None,
        };
        let all = Filter::new();
        self.for_each_task_metric(&all, |t| copy.add(|b| b.tasks.push(t)))?;
        self.for_each_agent_metric(&all, |m| copy.add(|b| b.agents.push(m.metric)))?;
        self.for_each_swarm_metric(&all, |m| copy.add(|b| b.swarms.push(m.metric)))?;
        copy.flush();
        match copy.failed {
            Some(e) => Err(e),
            None => Ok(copy.report),
        }
    }
}

/// A copy under way: the chunk being filled and what was written.
struct Copy<'a> {
    to: &'a MetricsStorage,
    chunk: MetricBatch,
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
}
