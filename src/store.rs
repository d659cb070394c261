//! Storing metrics: validation first, then one writer job per call.

use serde::Serialize;

use crate::engine::on_engine;
use crate::error::{Error, Result};
use crate::generic::Parsed;
use crate::record::{AgentMetric, SwarmMetric, TaskMetric};
use crate::storage::MetricsStorage;

/// Records a stream buffers before it writes them: enough to index task
/// metrics at once, few enough that memory stays small.
const STREAM_CHUNK: usize = 1024;

/// Metrics of all three kinds, stored together by
/// [`MetricsStorage::store_batch`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricBatch {
    /// Task metrics.
    pub tasks: Vec<TaskMetric>,
    /// Agent metrics.
    pub agents: Vec<AgentMetric>,
    /// Swarm metrics.
    pub swarms: Vec<SwarmMetric>,
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

/// What [`MetricsStorage::store_batch`] stored.
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

/// What [`MetricsStorage::store_stream`] stored, kind by kind.
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

impl StreamReport {
    /// New records stored, of all kinds.
    pub fn stored(&self) -> u64 {
        self.tasks.stored + self.agent_metrics.stored + self.swarm_metrics.stored
    }

    /// Records that were already stored, of all kinds.
    pub fn duplicates(&self) -> u64 {
        self.tasks.duplicates + self.agent_metrics.duplicates + self.swarm_metrics.duplicates
    }

    /// Adds what [`MetricsStorage::store_batch`] reported for `batch`, to
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

impl MetricsStorage {
    /// Stores one task metric; returns `false` when a metric with the same
    /// `task_id` and `timestamp` was already stored (it is left as it was:
    /// a retried store is never counted twice).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad field (nothing is written);
    /// [`Error::ReadOnly`]; [`Error::Sqlite`] when the write fails.
    pub fn store_task_metric(&self, metric: &TaskMetric) -> Result<bool> {
        self.store_task_metrics(std::slice::from_ref(metric))
            .map(|n| n == 1)
    }

    /// Stores task metrics in one transaction: all or nothing. Returns how
    /// many were new (see [`store_task_metric`](Self::store_task_metric)).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad record (nothing is
    /// written); [`Error::ReadOnly`]; [`Error::Sqlite`] when the write fails
    /// (nothing is written).
    pub fn store_task_metrics(&self, metrics: &[TaskMetric]) -> Result<usize> {
        check_each(metrics, TaskMetric::validate)?;
        on_engine!(self.engine(), store_tasks(metrics))
    }

    /// Stores one agent metric and returns its id. A metric with the same
    /// agent id, metric type, timestamp and value as one already stored is
    /// that metric, stored again (a retry): it is left as it was, and its
    /// id is returned.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad field (nothing is written);
    /// [`Error::ReadOnly`]; [`Error::Sqlite`] when the write fails.
    pub fn store_agent_metric(&self, metric: &AgentMetric) -> Result<i64> {
        self.store_agent_metrics(std::slice::from_ref(metric))
            .map(|ids| ids[0])
    }

    /// Stores agent metrics in one transaction, all or nothing, and returns
    /// their ids in order (retries as in
    /// [`store_agent_metric`](Self::store_agent_metric)).
    ///
    /// # Errors
    /// As [`store_task_metrics`](Self::store_task_metrics).
    pub fn store_agent_metrics(&self, metrics: &[AgentMetric]) -> Result<Vec<i64>> {
        check_each(metrics, AgentMetric::validate)?;
        on_engine!(self.engine(), store_agents(metrics))
    }

    /// Stores one swarm metric and returns its id (retries as in
    /// [`store_agent_metric`](Self::store_agent_metric)).
    ///
    /// # Errors
    /// As [`store_agent_metric`](Self::store_agent_metric).
    pub fn store_swarm_metric(&self, metric: &SwarmMetric) -> Result<i64> {
        self.store_swarm_metrics(std::slice::from_ref(metric))
            .map(|ids| ids[0])
    }

    /// Stores swarm metrics in one transaction, all or nothing, and returns
    /// their ids in order.
    ///
    /// # Errors
    /// As [`store_task_metrics`](Self::store_task_metrics).
    pub fn store_swarm_metrics(&self, metrics: &[SwarmMetric]) -> Result<Vec<i64>> {
        check_each(metrics, SwarmMetric::validate)?;
        on_engine!(self.engine(), store_swarms(metrics))
    }

    /// Stores task, agent and swarm metrics together in one transaction:
    /// all or nothing. Returns how many task metrics were new and the ids
    /// of the agent and swarm metrics.
    ///
    /// # Errors
    /// As [`store_task_metrics`](Self::store_task_metrics).
    pub fn store_batch(&self, batch: &MetricBatch) -> Result<BatchReport> {
        check_each(&batch.tasks, TaskMetric::validate)?;
        check_each(&batch.agents, AgentMetric::validate)?;
        check_each(&batch.swarms, SwarmMetric::validate)?;
        on_engine!(self.engine(), store_batch(batch))
    }

    /// Stores every metric of a stream in one transaction: all of them, or
    /// none when a record is invalid, the stream yields an error, or the
    /// write fails. Memory stays small however long the stream: records
    /// are written as they come, and the transaction's pages spill to the
    /// write-ahead log, which grows by about the size of what is stored
    /// until the commit. Retries of metrics already stored are counted as
    /// duplicates and left as they were, so a stream that was interrupted
    /// can simply be stored again.
    ///
    /// Other writes of this store wait until the stream is committed, and
    /// other processes' writes wait for the write lock (up to their busy
    /// timeout): store long streams when that is acceptable. A store into
    /// this store from inside the stream (on its thread) would wait for the
    /// stream forever, so it fails with [`Error::InvalidInput`] instead;
    /// reading from inside the stream is fine.
    ///
    /// # Errors
    /// The first error the stream yields; [`Error::InvalidInput`] naming
    /// the first bad record and its position in the stream;
    /// [`Error::ReadOnly`]; [`Error::DatabaseFull`]; [`Error::Sqlite`] when
    /// the write fails. In every case nothing of the stream is stored.
    pub fn store_stream<I>(&self, metrics: I) -> Result<StreamReport>
    where
        I: IntoIterator<Item = Result<Parsed>>,
    {
        on_engine!(self.engine(), store_stream(metrics))
    }
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
