//! Storing metrics: every record checked first, then the engine stores
//! the batch whole.

use crate::engine::on_engine;
use crate::error::Result;
use crate::model::batch::check_each;
use crate::model::batch::Parsed;
use crate::model::record::{AgentMetric, SwarmMetric, TaskMetric};
use crate::storage::MetricsStorage;

pub use crate::model::batch::{BatchReport, KindCount, MetricBatch, StreamReport};

impl MetricsStorage {
    /// Stores one task metric; returns `false` when a metric with the same
    /// `task_id` and `timestamp` was already stored (it is left as it was:
    /// a retried store is never counted twice).
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad field (nothing is written);
    /// [`Error::ReadOnly`](crate::Error::ReadOnly); [`Error::Sqlite`](crate::Error::Sqlite) when the write fails.
    pub fn store_task_metric(&self, metric: &TaskMetric) -> Result<bool> {
        self.store_task_metrics(std::slice::from_ref(metric))
            .map(|n| n == 1)
    }

    /// Stores task metrics in one transaction: all or nothing. Returns how
    /// many were new (see [`store_task_metric`](Self::store_task_metric)).
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) naming the first bad record (nothing is
    /// written); [`Error::ReadOnly`](crate::Error::ReadOnly); [`Error::Sqlite`](crate::Error::Sqlite) when the write fails
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
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad field (nothing is written);
    /// [`Error::ReadOnly`](crate::Error::ReadOnly); [`Error::Sqlite`](crate::Error::Sqlite) when the write fails.
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
    /// stream forever, so it fails with [`Error::InvalidInput`](crate::Error::InvalidInput) instead;
    /// reading from inside the stream is fine.
    ///
    /// # Errors
    /// The first error the stream yields; [`Error::InvalidInput`](crate::Error::InvalidInput) naming
    /// the first bad record and its position in the stream;
    /// [`Error::ReadOnly`](crate::Error::ReadOnly); [`Error::DatabaseFull`](crate::Error::DatabaseFull); [`Error::Sqlite`](crate::Error::Sqlite) when
    /// the write fails. In every case nothing of the stream is stored.
    pub fn store_stream<I>(&self, metrics: I) -> Result<StreamReport>
    where
        I: IntoIterator<Item = Result<Parsed>>,
    {
        on_engine!(self.engine(), store_stream(metrics))
    }
}
