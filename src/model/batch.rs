//! What a store takes and says it stored: batches of the three kinds,
//! records parsed from their JSON form, and the reports of a batch and of
//! a stream; how a stream is checked and cut into chunks.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::record::{AgentMetric, SwarmMetric, TaskMetric};

/// Records a stream buffers before it writes them: enough to index task
/// metrics at once, few enough that memory stays small.
const STREAM_CHUNK: usize = 1024;

/// Metrics of all three kinds, stored together by
/// [`MetricsStorage::store_batch`](crate::MetricsStorage::store_batch).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricBatch {
    /// Task metrics.
    pub tasks: Vec<TaskMetric>,
    /// Agent metrics.
    pub agents: Vec<AgentMetric>,
    /// Swarm metrics.
    pub swarms: Vec<SwarmMetric>,
}

/// What [`MetricsStorage::store_batch`](crate::MetricsStorage::store_batch) stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchReport {
    /// Task metrics that were new (the rest were already stored).
    pub new_tasks: usize,
    /// Agent metrics that were new (the rest were already stored).
    pub new_agent_metrics: usize,
    /// Swarm metrics that were new (the rest were already stored).
    pub new_swarm_metrics: usize,
    /// The ids of the agent metrics, in order (a retried one's is the id
    /// it was stored under).
    pub agent_ids: Vec<i64>,
    /// The ids of the swarm metrics, in order.
    pub swarm_ids: Vec<i64>,
}

/// How many records of one kind a stream stored, and how many of them
/// were already stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct KindCount {
    /// Records that were new and are now stored.
    pub stored: u64,
    /// Records already stored before (retries), left as they were.
    pub duplicates: u64,
}

/// What [`MetricsStorage::store_stream`](crate::MetricsStorage::store_stream) stored, kind by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StreamReport {
    /// Task metrics.
    pub tasks: KindCount,
    /// Agent metrics.
    pub agent_metrics: KindCount,
    /// Swarm metrics.
    pub swarm_metrics: KindCount,
    /// Rollup rows of tiered retention (copies only; not counted by
    /// [`stored`](Self::stored) and [`duplicates`](Self::duplicates),
    /// which count metrics).
    pub rollups: KindCount,
}

/// Validates a stream's records and hands them on in chunks of
/// [`STREAM_CHUNK`], counting what each chunk's write reports.
pub(crate) fn stream_in_chunks<I>(
    metrics: I,
    mut write: impl FnMut(&MetricBatch) -> Result<BatchReport>,
) -> Result<StreamReport>
where
    I: IntoIterator<Item = Result<Parsed>>,
{
    let mut report = StreamReport::default();
    let mut chunk = MetricBatch::default();
    for (position, metric) in metrics.into_iter().enumerate() {
        let checked = metric.and_then(|metric| {
            metric.validate().map_err(|e| in_stream(e, position))?;
            Ok(metric)
        })?;
        match checked {
            Parsed::Task(task) => chunk.tasks.push(task),
            Parsed::Agent(m) => chunk.agents.push(m),
            Parsed::Swarm(m) => chunk.swarms.push(m),
        }
        if chunk.len() >= STREAM_CHUNK {
            report.add(&chunk, &write(&chunk)?);
            chunk = MetricBatch::default();
        }
    }
    report.add(&chunk, &write(&chunk)?);
    Ok(report)
}

/// Checks every record of a batch, naming the first bad one's position.
pub(crate) fn check_each<R>(records: &[R], check: impl Fn(&R) -> Result<()>) -> Result<()> {
    for (i, record) in records.iter().enumerate() {
        check(record).map_err(|e| in_batch(e, i, records.len()))?;
    }
    Ok(())
}

/// Names the position of a bad record in a batch.
fn in_batch(error: Error, index: usize, len: usize) -> Error {
    match error {
        Error::InvalidInput { field, reason } if len > 1 => Error::InvalidInput {
            field,
            reason: format!("{reason} (record {index} of the batch; nothing was stored)"),
        },
        other => other,
    }
}

/// Names the position of a bad record in a stream.
fn in_stream(error: Error, position: usize) -> Error {
    match error {
        Error::InvalidInput { field, reason } => Error::InvalidInput {
            field,
            reason: format!("{reason} (record {position} of the stream; nothing was stored)"),
        },
        other => other,
    }
}

impl MetricBatch {
    /// How many metrics the batch holds.
    pub fn len(&self) -> usize {
        self.tasks.len() + self.agents.len() + self.swarms.len()
    }

    /// Whether the batch holds no metric.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl StreamReport {
    /// New records stored, of all kinds.
    pub fn stored(&self) -> u64 {
        self.tasks.stored + self.agent_metrics.stored + self.swarm_metrics.stored
    }

    /// Records that were already stored, of all kinds.
    pub fn duplicates(&self) -> u64 {
        self.tasks.duplicates + self.agent_metrics.duplicates + self.swarm_metrics.duplicates
    }

    /// Adds what [`MetricsStorage::store_batch`](crate::MetricsStorage::store_batch) reported for `batch`, to
    /// count a stream stored a batch at a time.
    pub fn add(&mut self, batch: &MetricBatch, report: &BatchReport) {
        let count = |kind: &mut KindCount, all: usize, new: usize| {
            kind.stored += new as u64;
            kind.duplicates += (all - new) as u64;
        };
        count(&mut self.tasks, batch.tasks.len(), report.new_tasks);
        count(
            &mut self.agent_metrics,
            batch.agents.len(),
            report.new_agent_metrics,
        );
        count(
            &mut self.swarm_metrics,
            batch.swarms.len(),
            report.new_swarm_metrics,
        );
    }
}

/// A metric parsed from its JSON form.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A task metric.
    Task(TaskMetric),
    /// An agent metric.
    Agent(AgentMetric),
    /// A swarm metric.
    Swarm(SwarmMetric),
}

impl Parsed {
    /// Checks every field, as the store does before it writes.
    pub(crate) fn validate(&self) -> Result<()> {
        match self {
            Parsed::Task(task) => task.validate(),
            Parsed::Agent(metric) => metric.validate(),
            Parsed::Swarm(metric) => metric.validate(),
        }
    }
}
