//! [`MetricsStorage::task_tallies`]: the raw tasks counted per agent,
//! swarm, model and result, in one pass over the rows, for exporters
//! that need every group at once (the Prometheus text).

use crate::engine::on_engine;
use crate::error::Result;
use crate::model::filter::Filter;
use crate::model::record::MetricKind;
use crate::model::tally::TaskTally;
use crate::storage::MetricsStorage;

impl MetricsStorage {
    /// The raw task rows matching `filter`, counted per agent, swarm,
    /// model and result: how many, their tokens and costs summed exactly,
    /// the tasks without a cost, and every duration. Ordered by agent,
    /// swarm, model and result (`None` first); one snapshot.
    ///
    /// Only raw rows count: tasks that retention has folded into rollups,
    /// or that cleanup removed, are not in any tally (a tally says what the
    /// store holds as rows, as an export does).
    ///
    /// ```
    /// use swarm_metrics::{Filter, MetricsStorage, TaskMetric, TaskResult};
    ///
    /// let store = MetricsStorage::temporary()?;
    /// store.store_task_metrics(&[
    ///     TaskMetric::new("t1", "agent-a", 100, TaskResult::Success).tokens(7),
    ///     TaskMetric::new("t2", "agent-a", 300, TaskResult::Success).tokens(5),
    ///     TaskMetric::new("t3", "agent-a", 200, TaskResult::Failure),
    /// ])?;
    /// let tallies = store.task_tallies(&Filter::new())?;
    /// assert_eq!(tallies.len(), 2);
    /// assert_eq!((tallies[0].tasks, tallies[0].tokens_used, tallies[0].unpriced), (2, 12, 2));
    /// assert_eq!(tallies[1].durations_ms, [200]);
    /// # Ok::<(), swarm_metrics::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a filter
    /// that does not apply to task metrics;
    /// [`Error::CorruptRow`](crate::Error::CorruptRow) for a row that does
    /// not decode; otherwise an engine's error when the read fails.
    pub fn task_tallies(&self, filter: &Filter) -> Result<Vec<TaskTally>> {
        filter.validate(MetricKind::Task, false)?;
        let tallies = on_engine!(self.engine(), task_tallies(filter))?;
        Ok(merged(tallies))
    }
}

/// The engines' tallies in key order, those of one key merged into one
/// (the file counts a model's tasks per provider, for one).
fn merged(mut tallies: Vec<TaskTally>) -> Vec<TaskTally> {
    tallies.sort_unstable_by(|a, b| a.key().cmp(&b.key()));
    let mut out: Vec<TaskTally> = Vec::with_capacity(tallies.len());
    for tally in tallies {
        match out.last_mut() {
            Some(last) if last.key() == tally.key() => last.absorb(tally),
            _ => out.push(tally),
        }
    }
    out
}
