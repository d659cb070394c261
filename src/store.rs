//! Storing metrics: validation first, then one writer job per call.

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::record::{AgentMetric, SwarmMetric, TaskMetric};
use crate::rows::{insert_entities, insert_tasks, Cache};
use crate::storage::MetricsStorage;

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
pub struct BatchReport {
    /// Task metrics that were new (the rest were already stored).
    pub new_tasks: usize,
    /// The ids given to the agent metrics, in order.
    pub agent_ids: Vec<i64>,
    /// The ids given to the swarm metrics, in order.
    pub swarm_ids: Vec<i64>,
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
        self.store(metrics, TaskMetric::validate, insert_tasks)
    }

    /// Stores one agent metric and returns its id.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad field (nothing is written);
    /// [`Error::ReadOnly`]; [`Error::Sqlite`] when the write fails.
    pub fn store_agent_metric(&self, metric: &AgentMetric) -> Result<i64> {
        self.store_agent_metrics(std::slice::from_ref(metric))
            .map(|ids| ids[0])
    }

    /// Stores agent metrics in one transaction, all or nothing, and returns
    /// their ids in order.
    ///
    /// # Errors
    /// As [`store_task_metrics`](Self::store_task_metrics).
    pub fn store_agent_metrics(&self, metrics: &[AgentMetric]) -> Result<Vec<i64>> {
        self.store(metrics, |m| m.entity().map(drop), insert_entities)
    }

    /// Stores one swarm metric and returns its id.
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
        self.store(metrics, |m| m.entity().map(drop), insert_entities)
    }

    /// Stores task, agent and swarm metrics together in one transaction:
    /// all or nothing. Returns how many task metrics were new and the ids
    /// of the agent and swarm metrics.
    ///
    /// # Errors
    /// As [`store_task_metrics`](Self::store_task_metrics).
    pub fn store_batch(&self, batch: &MetricBatch) -> Result<BatchReport> {
        check_each(&batch.tasks, TaskMetric::validate)?;
        check_each(&batch.agents, |m| m.entity().map(drop))?;
        check_each(&batch.swarms, |m| m.entity().map(drop))?;
        let writer = self.writer()?;
        if batch.is_empty() {
            return Ok(BatchReport::default());
        }
        writer.run_with(batch, insert_batch)
    }

    /// Checks every record, then stores them all with `insert` in one
    /// writer job; nothing is written for no records.
    fn store<R, T, F>(
        &self,
        records: &[R],
        check: impl Fn(&R) -> Result<()>,
        insert: F,
    ) -> Result<T>
    where
        R: Clone + Send + Sync + 'static,
        T: Default + Send + 'static,
        F: Fn(&Connection, &mut Cache, &[R]) -> Result<T> + Send + Sync + 'static,
    {
        check_each(records, check)?;
        let writer = self.writer()?;
        if records.is_empty() {
            return Ok(T::default());
        }
        writer.run_with(records, insert)
    }
}

/// Checks every record of a batch, naming the first bad one's position.
fn check_each<R>(records: &[R], check: impl Fn(&R) -> Result<()>) -> Result<()> {
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

/// Stores a batch of all three kinds, inside the writer's transaction.
fn insert_batch(conn: &Connection, cache: &mut Cache, batch: &MetricBatch) -> Result<BatchReport> {
    Ok(BatchReport {
        new_tasks: insert_tasks(conn, cache, &batch.tasks)?,
        agent_ids: insert_entities(conn, cache, &batch.agents)?,
        swarm_ids: insert_entities(conn, cache, &batch.swarms)?,
    })
}
