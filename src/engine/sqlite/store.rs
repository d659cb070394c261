//! Storing on a file: one writer job per call, committed with the
//! concurrent calls' jobs (group commit).

use rusqlite::Connection;

use super::FileStore;
use crate::engine::sqlite::rows::{insert_entities, insert_tasks, Cache};
use crate::error::Result;
use crate::model::batch::Parsed;
use crate::model::batch::{stream_in_chunks, BatchReport, MetricBatch, StreamReport};
use crate::model::record::{AgentMetric, SwarmMetric, TaskMetric};

impl FileStore {
    /// Stores records, checked already, with `insert` in one writer job;
    /// nothing is written for no records.
    fn store_records<R, T, F>(&self, records: &[R], insert: F) -> Result<T>
    where
        R: Clone + Send + Sync + 'static,
        T: Default + Send + 'static,
        F: Fn(&Connection, &mut Cache, &[R]) -> Result<T> + Send + Sync + 'static,
    {
        let writer = self.writer()?;
        if records.is_empty() {
            return Ok(T::default());
        }
        writer.run_with(records, insert)
    }

    pub(crate) fn store_tasks(&self, tasks: &[TaskMetric]) -> Result<usize> {
        self.store_records(tasks, insert_tasks)
    }

    pub(crate) fn store_agents(&self, metrics: &[AgentMetric]) -> Result<Vec<i64>> {
        self.store_records(metrics, |conn, cache, m| {
            insert_entities(conn, cache, m).map(|stored| stored.ids)
        })
    }

    pub(crate) fn store_swarms(&self, metrics: &[SwarmMetric]) -> Result<Vec<i64>> {
        self.store_records(metrics, |conn, cache, m| {
            insert_entities(conn, cache, m).map(|stored| stored.ids)
        })
    }

    pub(crate) fn store_batch(&self, batch: &MetricBatch) -> Result<BatchReport> {
        let writer = self.writer()?;
        if batch.is_empty() {
            return Ok(BatchReport::default());
        }
        writer.run_with(batch, insert_batch)
    }

    pub(crate) fn store_stream(
        &self,
        metrics: impl IntoIterator<Item = Result<Parsed>>,
    ) -> Result<StreamReport> {
        let writer = self.writer()?;
        writer.run_alone(|conn, cache| {
            stream_in_chunks(metrics, |chunk| insert_batch(conn, cache, chunk))
        })
    }
}

/// Stores a batch of all three kinds, inside the writer's transaction.
fn insert_batch(conn: &Connection, cache: &mut Cache, batch: &MetricBatch) -> Result<BatchReport> {
    let new_tasks = insert_tasks(conn, cache, &batch.tasks)?;
    let agents = insert_entities(conn, cache, &batch.agents)?;
    let swarms = insert_entities(conn, cache, &batch.swarms)?;
    Ok(BatchReport {
        new_tasks,
        new_agent_metrics: agents.new,
        new_swarm_metrics: swarms.new,
        agent_ids: agents.ids,
        swarm_ids: swarms.ids,
    })
}
