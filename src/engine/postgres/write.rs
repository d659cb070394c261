//! Storing on PostgreSQL: a batch of tasks none of which is stored yet is
//! copied straight into the table (`direct.rs`); any other batch goes in
//! by binary `COPY` into a session's temporary table, then into the
//! partitioned table in one `INSERT … ON CONFLICT DO NOTHING`; all in one
//! transaction: all or nothing, and a retried store (of the same
//! `(task_id, timestamp)`, or agent or swarm metric) is ignored as in
//! SQLite. Stores from many hosts at once wait on row locks at most, and
//! never fail on them.

use std::sync::atomic::Ordering;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::Transaction;

use super::schema::{created_meanwhile, months_of, partition_sql, Month};
use super::Columns;
use super::PgStore;
use crate::error::{Error, Result};
use crate::model::filter::to_micros;
use crate::model::pricing::{cost_of, PriceBook};
use crate::model::record::{EntityRecord, MetricKind, TaskMetric};
use crate::model::usage::Tokens;

/// The columns of a task metric row, in the order they are written;
/// `cost_micros` is the task's bill here, priced on the way in (see
/// [`PRICED_ROW`]).
pub(super) const TASK_COLUMNS: &str =
    "timestamp, task_id, agent_id, swarm_id, result, duration_ms, \
                            tokens_used, files_changed, model, provider, input_tokens, \
                            cache_read_tokens, cache_write_tokens, cost_micros, cost_billed, \
                            trace";

/// Their types, for binary `COPY` and typed parameters.
pub(super) const TASK_TYPES: [Type; 16] = [
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT2,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::BOOL,
    Type::BYTEA,
];

/// The select list that writes incoming rows (aliased `i`, in
/// [`TASK_COLUMNS`] order) with their cost: the bill, else the price in
/// force at the task's timestamp times its tokens, in micro-dollars
/// rounded half up once per task, as `Rates::cost` computes it for the
/// file (numeric, so that no product overflows).
const PRICED_ROW: &str = concat!(
    "i.timestamp, i.task_id, i.agent_id, i.swarm_id, i.result, \
     i.duration_ms, i.tokens_used, i.files_changed, i.model, i.provider, i.input_tokens, \
     i.cache_read_tokens, i.cache_write_tokens, coalesce(i.cost_micros, ",
    price_of_row!(),
    "), i.cost_billed, i.trace"
);

/// The cost of row `i` at the price in force at its timestamp, in
/// micro-dollars rounded half up; NULL without a price or a breakdown.
macro_rules! price_of_row {
    () => {
        "(SELECT div((i.input_tokens - i.cache_read_tokens - i.cache_write_tokens)::numeric \
                    * p.input + (i.tokens_used - i.input_tokens)::numeric * p.output \
                    + i.cache_read_tokens::numeric * p.cache_read \
                    + i.cache_write_tokens::numeric * p.cache_write + 500000, 1000000)::bigint \
          FROM prices p \
          WHERE i.input_tokens IS NOT NULL AND p.model = i.model AND p.valid_from <= i.timestamp \
          ORDER BY p.valid_from DESC LIMIT 1)"
    };
}
pub(super) use price_of_row;

/// Once a store has written this many metrics in transactions (an
/// import, a copy, batches), the statistics of the partitions written are
/// refreshed at once; then again each time the total has doubled, so that
/// a long copy in chunks refreshes a handful of times, not after each.
const FIRST_REFRESH_ROWS: u64 = 10_000;

/// The time indexes are summarized each time a store has written this
/// many more metrics in transactions: a time range's query reads every
/// page of the ranges not yet summarized, and summarizing only the new
/// ones costs a few milliseconds (where waiting for the total to double
/// left up to half of a bulk load unsummarized, and a day's query at 1M
/// tasks read a third of the table).
const SUMMARIZE_EVERY_ROWS: u64 = 10_000;

/// Below this many rows, one `INSERT` per row is quicker than a `COPY`.
const COPY_FROM_ROWS: usize = 16;

/// A count as the `bigint` it is stored as (validated to fit before).
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What one write of metrics of all kinds stored.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// Task metrics that were new.
    pub new_tasks: usize,
    /// The agent metrics' ids, in order, and how many were new.
    pub agent_ids: Vec<i64>,
    pub new_agents: usize,
    /// The swarm metrics' ids, in order, and how many were new.
    pub swarm_ids: Vec<i64>,
    pub new_swarms: usize,
}

/// Metrics of all kinds to write together, validated.
#[derive(Clone, Copy)]
pub(crate) struct Metrics<'a> {
    pub tasks: &'a [TaskMetric],
    pub agents: &'a [EntityRecord<'a>],
    pub swarms: &'a [EntityRecord<'a>],
}

/// An open write transaction on the server.
pub(crate) struct PgWriter<'a> {
    store: &'a PgStore,
    tx: Transaction<'a>,
    /// Whether the transaction has written (and so holds locks that
    /// creating a partition elsewhere would wait for).
    written: bool,
    /// Partitions this transaction created, known to exist once it
    /// commits.
    created: Vec<(&'static str, i64)>,
    /// Metrics written in this transaction.
    rows: usize,
    /// The partitions they went into, by full name.
    partitions_written: Vec<String>,
}

impl PgWriter<'_> {
    /// Writes `metrics` in this transaction, making the partitions they
    /// need first.
    pub fn write(&mut self, metrics: Metrics<'_>) -> Result<Written> {
        let times = |records: &[EntityRecord<'_>]| -> Vec<i64> {
            records.iter().map(|r| to_micros(r.timestamp)).collect()
        };
        let tasks: Vec<i64> = metrics
            .tasks
            .iter()
            .map(|t| to_micros(t.timestamp))
            .collect();
        for (table, timestamps) in [
            ("task_metrics", tasks),
            ("agent_metrics", times(metrics.agents)),
            ("swarm_metrics", times(metrics.swarms)),
        ] {
            let months = months_of(timestamps)?;
            for (_, _, name) in &months {
                let name = format!("{table}_{name}");
                if !self.partitions_written.contains(&name) {
                    self.partitions_written.push(name);
                }
            }
            self.make_partitions(table, months)?;
        }
        self.written = true;
        self.rows += metrics.tasks.len() + metrics.agents.len() + metrics.swarms.len();
        let new_tasks = self.write_tasks(metrics.tasks)?;
        let (agent_ids, new_agents) = self.write_entities(MetricKind::Agent, metrics.agents)?;
        let (swarm_ids, new_swarms) = self.write_entities(MetricKind::Swarm, metrics.swarms)?;
        Ok(Written {
            new_tasks,
            agent_ids,
            new_agents,
            swarm_ids,
            new_swarms,
        })
    }

    /// Makes the partitions rows in `months` need: before the first
    /// write on the store's own connection for schema changes (committed
    /// at once, for every other writer too); after it, inside this
    /// transaction, which already holds the table's lock that creating a
    /// partition elsewhere would wait for.
    fn make_partitions(&mut self, table: &'static str, months: Vec<Month>) -> Result<()> {
        if !self.written {
            return self.store.ensure_months(table, months);
        }
        let missing: Vec<_> = self
            .store
            .missing_partitions(table, months)?
            .into_iter()
            .filter(|month| !self.created.contains(&(table, month.0)))
            .collect();
        for month in missing {
            let err = |operation| self.store.error(operation);
            // A savepoint, so that a partition another host created
            // meanwhile does not end the transaction.
            self.tx
                .batch_execute("SAVEPOINT partition")
                .map_err(err("create a partition"))?;
            let undo = match self.tx.batch_execute(&partition_sql(table, &month)) {
                Ok(()) => "RELEASE SAVEPOINT partition",
                Err(e) if created_meanwhile(&e) => {
                    "ROLLBACK TO SAVEPOINT partition; RELEASE SAVEPOINT partition"
                }
                Err(e) => return Err(err("create a partition")(e)),
            };
            self.tx
                .batch_execute(undo)
                .map_err(err("create a partition"))?;
            self.created.push((table, month.0));
        }
        Ok(())
    }

    fn write_tasks(&mut self, tasks: &[TaskMetric]) -> Result<usize> {
        if tasks.is_empty() {
            return Ok(0);
        }
        if tasks.len() >= COPY_FROM_ROWS {
            if let Some(stored) = self.store.copy_new_tasks(&mut self.tx, tasks)? {
                return Ok(stored);
            }
        }
        let err = |operation| self.store.error(operation);
        let tx = &mut self.tx;
        let stored = if tasks.len() < COPY_FROM_ROWS {
            let statement = tx
                .prepare_typed(&insert_one_sql(), &TASK_TYPES)
                .map_err(err("store task metrics"))?;
            // In key order, as the larger batches below.
            let mut in_order: Vec<&TaskMetric> = tasks.iter().collect();
            in_order.sort_by(|a, b| (&a.task_id, a.timestamp).cmp(&(&b.task_id, b.timestamp)));
            let mut stored = 0;
            for task in in_order {
                let row = TaskRow::of(task)?;
                stored += tx
                    .execute(&statement, &row.params())
                    .map_err(err("store task metrics"))?;
            }
            stored
        } else {
            // A temporary table lives as long as the pooled connection;
            // its rows as long as the transaction. Rows go in in key
            // order, so that two writers sharing tasks take their row
            // locks in the same order and wait for each other rather than
            // deadlock; among rows of one key, in batch order, so that the
            // first of a batch wins as in SQLite.
            tx.batch_execute(
                "CREATE TEMPORARY TABLE IF NOT EXISTS incoming_task_rows \
                 (ord integer NOT NULL, LIKE task_metrics) ON COMMIT DELETE ROWS; \
                 TRUNCATE incoming_task_rows",
            )
            .map_err(err("store task metrics"))?;
            let sink = tx
                .copy_in(&format!(
                    "COPY incoming_task_rows (ord, {TASK_COLUMNS}) FROM STDIN (FORMAT binary)"
                ))
                .map_err(err("copy task metrics"))?;
            let types: Vec<Type> = std::iter::once(Type::INT4).chain(TASK_TYPES).collect();
            let mut writer = BinaryCopyInWriter::new(sink, &types);
            for (ord, task) in (0i32..).zip(tasks) {
                let row = TaskRow::of(task)?;
                let mut values: Vec<&(dyn ToSql + Sync)> = vec![&ord];
                values.extend(row.params());
                writer.write(&values).map_err(err("copy task metrics"))?;
            }
            writer.finish().map_err(err("copy task metrics"))?;
            tx.execute(
                &format!(
                    "INSERT INTO task_metrics ({TASK_COLUMNS}) \
                     SELECT {PRICED_ROW} FROM incoming_task_rows i \
                     ORDER BY i.task_id, i.timestamp, i.ord ON CONFLICT DO NOTHING"
                ),
                &[],
            )
            .map_err(err("store task metrics"))?
        };
        Ok(usize::try_from(stored).unwrap_or(usize::MAX))
    }

    /// Writes agent or swarm metrics (`kind`): the id of each, in order,
    /// and how many were new. A metric already stored (same id, type,
    /// timestamp and value), also earlier in the same write, keeps its row
    /// and gives its id, as in SQLite.
    fn write_entities(
        &mut self,
        kind: MetricKind,
        records: &[EntityRecord<'_>],
    ) -> Result<(Vec<i64>, usize)> {
        if records.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let (table, id) = PgStore::entity_table(kind);
        let err = |operation| self.store.error(operation);
        let tx = &mut self.tx;
        tx.batch_execute(&format!(
            "CREATE TEMPORARY TABLE IF NOT EXISTS incoming_{table} ( \
                 ord integer NOT NULL, timestamp bigint NOT NULL, id text COLLATE \"C\" NOT NULL, \
                 metric_type smallint NOT NULL, value double precision NOT NULL, metadata text \
             ) ON COMMIT DELETE ROWS; \
             TRUNCATE incoming_{table}"
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
        // New metrics only, each once (its first place in the write), in
        // order, so that ids follow the order of storing and no id is
        // spent on a retry.
        let new = tx
            .execute(
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
                    "SELECT m.metric_id FROM incoming_{table} i JOIN {table} m ON {} \
                     ORDER BY i.ord",
                    same("m", "i")
                ),
                &[],
            )
            .map_err(err("store metrics"))?
            .iter()
            .map(|row| row.column(0))
            .collect::<Result<_>>()?;
        if ids.len() != records.len() {
            return Err(Error::Internal("a stored metric was not found again"));
        }
        Ok((ids, usize::try_from(new).unwrap_or(usize::MAX)))
    }
}

impl PgStore {
    /// Runs `write` in one transaction, committed when it returns `Ok` and
    /// rolled back otherwise.
    pub fn in_transaction<T>(
        &self,
        write: impl FnOnce(&mut PgWriter<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(self.error("begin a write"))?;
        let mut writer = PgWriter {
            store: self,
            tx,
            written: false,
            created: Vec::new(),
            rows: 0,
            partitions_written: Vec::new(),
        };
        let value = write(&mut writer)?;
        writer.tx.commit().map_err(self.error("commit a write"))?;
        for (table, first) in writer.created {
            self.know_partition(table, first)?;
        }
        self.partitions_written()?.extend(writer.partitions_written);
        let written = self
            .bulk_rows
            .fetch_add(writer.rows as u64, Ordering::Relaxed)
            + writer.rows as u64;
        let due = self.next_refresh.load(Ordering::Relaxed);
        // One writer of many takes each refresh.
        let refresh = written >= due.max(FIRST_REFRESH_ROWS)
            && self
                .next_refresh
                .compare_exchange(due, written * 2, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        let summary_due = self.next_summary.load(Ordering::Relaxed);
        let summarize = written >= summary_due.max(SUMMARIZE_EVERY_ROWS)
            && self
                .next_summary
                .compare_exchange(
                    summary_due,
                    written + SUMMARIZE_EVERY_ROWS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        // Best effort: the metrics are committed, and autovacuum
        // summarizes the ranges and analyzes the partitions later if this
        // fails.
        if refresh || summarize {
            let _ = self.summarize_time_indexes();
        }
        if refresh {
            let _ = self.analyze_partitions_written();
        }
        Ok(value)
    }

    /// Stores validated metrics of all kinds in one transaction, once more
    /// if another host's retention dropped a partition this store knew of.
    pub fn store(&self, metrics: Metrics<'_>) -> Result<Written> {
        if metrics.tasks.is_empty() && metrics.agents.is_empty() && metrics.swarms.is_empty() {
            return Ok(Written::default());
        }
        if let ([task], [], []) = (metrics.tasks, metrics.agents, metrics.swarms) {
            return self.retrying_partitions(|| self.store_one_task(task));
        }
        self.retrying_partitions(|| {
            // Deadlocks between writers whose rows interleave in other
            // orders are broken by PostgreSQL aborting one transaction:
            // that one is written again.
            let mut attempts = 0;
            loop {
                match self.in_transaction(|writer| writer.write(metrics)) {
                    Err(Error::Postgres { source, .. })
                        if source.code() == Some("40P01") && attempts < 3 =>
                    {
                        attempts += 1;
                    }
                    other => return other,
                }
            }
        })
    }
}

impl PgStore {
    /// Stores one task metric, the hot path of an orchestrator: one
    /// statement the connection keeps prepared, in one round trip, its
    /// own transaction. Concurrent stores each take a connection of their
    /// own and commit in parallel, and the server flushes their commits
    /// together: one statement per group of callers, as the file's writer
    /// makes them, stored fewer per second (8 threads on 2 cores: 13,300
    /// against 17,800 a second; with the server's fsync on, 8,800
    /// against 8,300).
    fn store_one_task(&self, task: &TaskMetric) -> Result<Written> {
        self.ensure_partitions("task_metrics", [to_micros(task.timestamp)])?;
        let row = TaskRow::of(task)?;
        let params: Vec<(&(dyn ToSql + Sync), Type)> =
            row.params().into_iter().zip(TASK_TYPES).collect();
        let inserted = self
            .conn()?
            .query_prepared(&format!("{} RETURNING 1", insert_one_sql()), &params)
            .map_err(self.error("store task metrics"))?;
        Ok(Written {
            new_tasks: inserted.len(),
            ..Written::default()
        })
    }
}

/// The statement storing one task metric, its values the parameters in
/// [`TASK_COLUMNS`] order.
fn insert_one_sql() -> String {
    let params: Vec<String> = (1..=TASK_TYPES.len()).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO task_metrics ({TASK_COLUMNS}) \
         SELECT {PRICED_ROW} FROM (VALUES ({})) AS i ({TASK_COLUMNS}) \
         ON CONFLICT DO NOTHING",
        params.join(", ")
    )
}

/// One task metric as the values of a row.
pub(super) struct TaskRow<'a> {
    timestamp: i64,
    task: &'a TaskMetric,
    result: i16,
    duration_ms: i64,
    tokens_used: i64,
    files_changed: i64,
    input: Option<i64>,
    cache_read: Option<i64>,
    cache_write: Option<i64>,
    /// The `cost_micros` column: the bill, until [`TaskRow::priced`].
    cost_micros: Option<i64>,
    is_billed: bool,
    tokens: Tokens,
    /// The trace id's bytes, then the span id's.
    trace: Option<Vec<u8>>,
}

impl<'a> TaskRow<'a> {
    /// The row of a validated task.
    pub(super) fn of(task: &'a TaskMetric) -> Result<Self> {
        let tokens = task.resolved_tokens()?;
        let billed = task.usage.billed_micros()?.map(count);
        let split = tokens.split;
        Ok(TaskRow {
            timestamp: to_micros(task.timestamp),
            task,
            result: task.result.code() as i16,
            duration_ms: count(task.duration_ms),
            tokens_used: count(tokens.total),
            files_changed: count(task.files_changed),
            input: split.map(|s| count(s.input)),
            cache_read: split.map(|s| count(s.cache_read)),
            cache_write: split.map(|s| count(s.cache_write)),
            cost_micros: billed,
            is_billed: billed.is_some(),
            tokens,
            trace: task.trace.map(|ids| ids.to_bytes().to_vec()),
        })
    }

    /// The row with its cost: the bill, else its tokens at the price in
    /// `book` in force at its timestamp (the file's rule, [`cost_of`]).
    pub(super) fn priced(mut self, book: &PriceBook) -> Result<Self> {
        let cost = cost_of(&self.task.usage, self.tokens, self.timestamp, book)?;
        self.cost_micros = cost.map(|c| count(c.micros));
        Ok(self)
    }

    /// The values in [`TASK_COLUMNS`] order.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 16] {
        [
            &self.timestamp,
            &self.task.task_id,
            &self.task.agent_id,
            &self.task.swarm_id,
            &self.result,
            &self.duration_ms,
            &self.tokens_used,
            &self.files_changed,
            &self.task.usage.model,
            &self.task.usage.provider,
            &self.input,
            &self.cache_read,
            &self.cache_write,
            &self.cost_micros,
            &self.is_billed,
            &self.trace,
        ]
    }
}
