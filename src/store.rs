//! Storing metrics: validation first, then one writer job per call.

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::record::{AgentMetric, MetricKind, SwarmMetric, TaskMetric};
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
        for (i, metric) in metrics.iter().enumerate() {
            metric
                .validate()
                .map_err(|e| in_batch(e, i, metrics.len()))?;
        }
        let writer = self.writer()?;
        if metrics.is_empty() {
            return Ok(0);
        }
        writer.run_with(metrics, insert_tasks)
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
        for (i, metric) in metrics.iter().enumerate() {
            metric.entity().map_err(|e| in_batch(e, i, metrics.len()))?;
        }
        let writer = self.writer()?;
        if metrics.is_empty() {
            return Ok(Vec::new());
        }
        writer.run_with(metrics, insert_agents)
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
        for (i, metric) in metrics.iter().enumerate() {
            metric.entity().map_err(|e| in_batch(e, i, metrics.len()))?;
        }
        let writer = self.writer()?;
        if metrics.is_empty() {
            return Ok(Vec::new());
        }
        writer.run_with(metrics, insert_swarms)
    }

    /// Stores task, agent and swarm metrics together in one transaction:
    /// all or nothing. Returns how many task metrics were new and the ids
    /// of the agent and swarm metrics.
    ///
    /// # Errors
    /// As [`store_task_metrics`](Self::store_task_metrics).
    pub fn store_batch(&self, batch: &MetricBatch) -> Result<BatchReport> {
        for (i, metric) in batch.tasks.iter().enumerate() {
            metric
                .validate()
                .map_err(|e| in_batch(e, i, batch.tasks.len()))?;
        }
        for (i, metric) in batch.agents.iter().enumerate() {
            metric
                .entity()
                .map_err(|e| in_batch(e, i, batch.agents.len()))?;
        }
        for (i, metric) in batch.swarms.iter().enumerate() {
            metric
                .entity()
                .map_err(|e| in_batch(e, i, batch.swarms.len()))?;
        }
        let writer = self.writer()?;
        if batch.is_empty() {
            return Ok(BatchReport::default());
        }
        writer.run_with(batch, insert_batch)
    }
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

/// Stores agent metrics, inside the writer's transaction.
fn insert_agents(
    conn: &Connection,
    cache: &mut Cache,
    metrics: &[AgentMetric],
) -> Result<Vec<i64>> {
    insert_entities(
        conn,
        cache,
        MetricKind::Agent,
        metrics.iter().map(AgentMetric::record),
    )
}

/// Stores swarm metrics, inside the writer's transaction.
fn insert_swarms(
    conn: &Connection,
    cache: &mut Cache,
    metrics: &[SwarmMetric],
) -> Result<Vec<i64>> {
    insert_entities(
        conn,
        cache,
        MetricKind::Swarm,
        metrics.iter().map(SwarmMetric::record),
    )
}

/// Stores a batch of all three kinds, inside the writer's transaction.
fn insert_batch(conn: &Connection, cache: &mut Cache, batch: &MetricBatch) -> Result<BatchReport> {
    Ok(BatchReport {
        new_tasks: insert_tasks(conn, cache, &batch.tasks)?,
        agent_ids: insert_agents(conn, cache, &batch.agents)?,
        swarm_ids: insert_swarms(conn, cache, &batch.swarms)?,
    })
}
