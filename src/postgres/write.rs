//! Storing on PostgreSQL: a batch goes in by binary `COPY` into a
//! session's temporary table, then into the partitioned table in one
//! `INSERT … ON CONFLICT DO NOTHING`, in one transaction: all or nothing,
//! and a retried store of the same `(task_id, timestamp)` is ignored as in
//! SQLite. Stores from many hosts at once wait on row locks at most, and
//! never fail on them.

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};

use super::PgStore;
use crate::error::Result;
use crate::query::to_micros;
use crate::record::TaskMetric;

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
