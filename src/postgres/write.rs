//! Storing on PostgreSQL: a batch goes in by binary `COPY` into a
//! session's temporary table, then into the partitioned table in one
//! `INSERT … ON CONFLICT DO NOTHING`, in one transaction: all or nothing,
//! and a retried store (of the same `(task_id, timestamp)`, or agent or
//! swarm metric) is ignored as in SQLite. Stores from many hosts at once wait on row locks at most, and
//! never fail on them.

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};

use super::PgStore;
use crate::error::{Error, Result};
use crate::query::to_micros;
use crate::record::{EntityRecord, MetricKind, TaskMetric};

/// The columns of a task metric row, in the order they are written.
const TASK_COLUMNS: &str =
    "timestamp, task_id, agent_id, swarm_id, result, duration_ms, tokens_used, files_changed";

/// Their types, for binary `COPY`.
const TASK_TYPES: [Type; 8] = [
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT2,
    Type::INT8,
    Type::INT8,
    Type::INT8,
];

/// Below this many rows, one `INSERT` is quicker than a `COPY`.
const COPY_FROM_ROWS: usize = 16;

/// A count as the `bigint` it is stored as (validated to fit before).
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PgStore {
    /// Stores validated task metrics in one transaction; how many were
    /// new.
    pub fn store_tasks(&self, tasks: &[TaskMetric]) -> Result<usize> {
        if tasks.is_empty() {
            return Ok(0);
        }
        self.retrying_partitions("task_metrics", || self.store_tasks_once(tasks))
    }

    fn store_tasks_once(&self, tasks: &[TaskMetric]) -> Result<usize> {
        self.ensure_partitions("task_metrics", tasks.iter().map(|t| to_micros(t.timestamp)))?;
        let mut conn = self.conn()?;
        let err = |operation| self.error(operation);
        let mut tx = conn.transaction().map_err(err("store task metrics"))?;
        let stored = if tasks.len() < COPY_FROM_ROWS {
            let statement = tx
                .prepare(&format!(
                    "INSERT INTO task_metrics ({TASK_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING"
                ))
                .map_err(err("store task metrics"))?;
            let mut stored = 0;
            for task in tasks {
                let row = TaskRow::of(task);
                stored += tx
                    .execute(&statement, &row.params())
                    .map_err(err("store task metrics"))?;
            }
            stored
        } else {
            // A temporary table lives as long as the pooled connection;
            // its rows as long as the transaction.
            tx.batch_execute(
                "CREATE TEMPORARY TABLE IF NOT EXISTS incoming_tasks \
                 (LIKE task_metrics INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
            )
            .map_err(err("store task metrics"))?;
            let sink = tx
                .copy_in(&format!(
                    "COPY incoming_tasks ({TASK_COLUMNS}) FROM STDIN (FORMAT binary)"
                ))
                .map_err(err("copy task metrics"))?;
            let mut writer = BinaryCopyInWriter::new(sink, &TASK_TYPES);
            for task in tasks {
                let row = TaskRow::of(task);
                writer
                    .write(&row.params())
                    .map_err(err("copy task metrics"))?;
            }
            writer.finish().map_err(err("copy task metrics"))?;
            tx.execute(
                &format!(
                    "INSERT INTO task_metrics ({TASK_COLUMNS}) \
                     SELECT {TASK_COLUMNS} FROM incoming_tasks ON CONFLICT DO NOTHING"
                ),
                &[],
            )
            .map_err(err("store task metrics"))?
        };
        tx.commit().map_err(err("store task metrics"))?;
        Ok(usize::try_from(stored).unwrap_or(usize::MAX))
    }
}

/// One task metric as the values of a row.
struct TaskRow<'a> {
    timestamp: i64,
    task: &'a TaskMetric,
    result: i16,
    duration_ms: i64,
    tokens_used: i64,
    files_changed: i64,
}

impl<'a> TaskRow<'a> {
    fn of(task: &'a TaskMetric) -> Self {
        TaskRow {
            timestamp: to_micros(task.timestamp),
            task,
            result: task.result.code() as i16,
            duration_ms: count(task.duration_ms),
            tokens_used: count(task.tokens_used),
            files_changed: count(task.files_changed),
        }
    }

    /// The values in [`TASK_COLUMNS`] order.
    fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.timestamp,
            &self.task.task_id,
            &self.task.agent_id,
            &self.task.swarm_id,
            &self.result,
            &self.duration_ms,
            &self.tokens_used,
            &self.files_changed,
        ]
    }
}

impl PgStore {
    /// Stores validated agent or swarm metrics (`kind`) in one
    /// transaction; the id of each, in order. A metric already stored
    /// (same id, type, timestamp and value), also earlier in the same
    /// batch, keeps its row and gives its id, as in SQLite.
    pub fn store_entities(
        &self,
        kind: MetricKind,
        records: &[EntityRecord<'_>],
    ) -> Result<Vec<i64>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let (table, _) = PgStore::entity_table(kind);
        self.retrying_partitions(table, || self.store_entities_once(kind, records))
    }

    fn store_entities_once(
        &self,
        kind: MetricKind,
        records: &[EntityRecord<'_>],
    ) -> Result<Vec<i64>> {
        let (table, id) = PgStore::entity_table(kind);
        self.ensure_partitions(table, records.iter().map(|r| to_micros(r.timestamp)))?;
        let mut conn = self.conn()?;
        let err = |operation| self.error(operation);
        let mut tx = conn.transaction().map_err(err("store metrics"))?;
        tx.batch_execute(&format!(
            "CREATE TEMPORARY TABLE IF NOT EXISTS incoming_{table} ( \
                 ord integer NOT NULL, timestamp bigint NOT NULL, id text COLLATE \"C\" NOT NULL, \
                 metric_type smallint NOT NULL, value double precision NOT NULL, metadata text \
             ) ON COMMIT DELETE ROWS"
        ))
        .map_err(err("store metrics"))?;
        let sink = tx
            .copy_in(&format!(
                "COPY incoming_{table} (ord, timestamp, id, metric_type, value, metadata) \
                 FROM STDIN (FORMAT binary)"
            ))
            .map_err(err("copy metrics"))?;
        let types = [
            Type::INT4,
            Type::INT8,
            Type::TEXT,
            Type::INT2,
            Type::FLOAT8,
            Type::TEXT,
        ];
        let mut writer = BinaryCopyInWriter::new(sink, &types);
        for (ord, record) in (0i32..).zip(records) {
            let timestamp = to_micros(record.timestamp);
            let metric_type = record.metric_type.code() as i16;
            let metadata = record.metadata.map(|m| m.to_string());
            writer
                .write(&[
                    &ord,
                    &timestamp,
                    &record.id,
                    &metric_type,
                    &record.value,
                    &metadata,
                ])
                .map_err(err("copy metrics"))?;
        }
        writer.finish().map_err(err("copy metrics"))?;
        let same = |a: &str, b: &str| {
            format!(
                "{a}.{id} = {b}.id AND {a}.metric_type = {b}.metric_type \
                 AND {a}.timestamp = {b}.timestamp AND {a}.value = {b}.value"
            )
        };
        // New metrics only, each once (its first place in the batch), in
        // batch order, so that ids follow the order of storing.
        tx.execute(
            &format!(
                "INSERT INTO {table} (timestamp, {id}, metric_type, value, metadata) \
                 SELECT timestamp, id, metric_type, value, metadata FROM ( \
                     SELECT DISTINCT ON (id, metric_type, timestamp, value) * \
                     FROM incoming_{table} i \
                     WHERE NOT EXISTS (SELECT 1 FROM {table} m WHERE {}) \
                     ORDER BY id, metric_type, timestamp, value, ord \
                 ) first ORDER BY ord \
                 ON CONFLICT DO NOTHING",
                same("m", "i")
            ),
            &[],
        )
        .map_err(err("store metrics"))?;
        let ids: Vec<i64> = tx
            .query(
                &format!(
                    "SELECT m.metric_id FROM incoming_{table} i JOIN {table} m ON {} ORDER BY i.ord",
                    same("m", "i")
                ),
                &[],
            )
            .map_err(err("store metrics"))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if ids.len() != records.len() {
            return Err(Error::Internal("a stored metric was not found again"));
        }
        tx.commit().map_err(err("store metrics"))?;
        Ok(ids)
    }
}
