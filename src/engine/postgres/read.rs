//! Reading from PostgreSQL: the same answers as from SQLite, by the same
//! definitions (inclusive ranges, newest first with ties by task id byte
//! order, numpy's linear quantiles: by the same function over the values
//! for a whole selection, and `percentile_cont`, which computes them with
//! the same arithmetic, per group and time bucket).

use std::ops::ControlFlow;

use postgres::fallible_iterator::FallibleIterator;
use postgres::Row;

use super::filter::Where;
use super::rollups::{stat_columns, stat_of};
use super::Columns;
use super::PgStore;
use crate::error::{Error, Result};
use crate::model::answer::{
    aggregated_column, finish, quantiles_of, Aggregate, Percentile, SuccessRate,
};
use crate::model::filter::{from_micros, Filter};
use crate::model::record::{
    AggregationType, EntityFields, MetricKind, MetricType, TaskMetric, TaskResult,
};
use crate::model::trace::TraceIds;
use crate::model::usage::{usd, Split, Usage};
use crate::rollup::rolled::RollupRead;

/// A task metric from a row of [`TASK_SELECT`].
fn task_of(row: &Row) -> Result<TaskMetric> {
    let corrupt = |reason: String| Error::CorruptRow {
        table: "task_metrics",
        reason,
    };
    let timestamp: i64 = row.column(0)?;
    let code: i16 = row.column(4)?;
    let count = |i: usize| -> Result<u64> {
        let n: i64 = row.column(i)?;
        u64::try_from(n).map_err(|_| corrupt(format!("a negative count {n}")))
    };
    let optional = |i: usize| -> Result<Option<u64>> {
        let n: Option<i64> = row.column(i)?;
        n.map(|n| u64::try_from(n).map_err(|_| corrupt(format!("a negative count {n}"))))
            .transpose()
    };
    let tokens_used = count(6)?;
    let mut usage = Usage {
        model: row.column(8)?,
        provider: row.column(9)?,
        cost_usd: optional(13)?.map(usd),
        ..Usage::default()
    };
    if let Some(split) = split_of(row, tokens_used, 10)? {
        split.fill(&mut usage);
    }
    let trace: Option<Vec<u8>> = row.column(14)?;
    let trace = trace
        .map(|bytes| {
            TraceIds::from_bytes(&bytes)
                .ok_or_else(|| corrupt(format!("trace of {} bytes, not 24", bytes.len())))
        })
        .transpose()?;
    Ok(TaskMetric {
        task_id: row.column(1)?,
        agent_id: row.column(2)?,
        swarm_id: row.column(3)?,
        result: TaskResult::from_code(i64::from(code))
            .ok_or_else(|| corrupt(format!("unknown result code {code}")))?,
        duration_ms: count(5)?,
        tokens_used,
        files_changed: count(7)?,
        timestamp: from_micros(timestamp)
            .ok_or_else(|| corrupt(format!("timestamp {timestamp} µs out of range")))?,
        usage,
        trace,
    })
}

/// The breakdown of a task row of `tokens_used` tokens whose
/// `input_tokens`, `cache_read_tokens` and `cache_write_tokens` are the
/// columns from `at` on; `None` without one.
pub(super) fn split_of(row: &Row, tokens_used: u64, at: usize) -> Result<Option<Split>> {
    let count = |i: usize| -> Result<Option<u64>> {
        let n: Option<i64> = row.column(i)?;
        n.map(|n| {
            u64::try_from(n).map_err(|_| Error::CorruptRow {
                table: "task_metrics",
                reason: format!("a negative count {n}"),
            })
        })
        .transpose()
    };
    let Some(input) = count(at)? else {
        return Ok(None);
    };
    let (cache_read, cache_write) = (count(at + 1)?.unwrap_or(0), count(at + 2)?.unwrap_or(0));
    Split::stored(tokens_used, input, cache_read, cache_write)
        .map(Some)
        .ok_or_else(|| Error::CorruptRow {
            table: "task_metrics",
            reason: format!(
                "input_tokens {input}, cache {cache_read} + {cache_write} do not fit                  tokens_used {tokens_used}"
            ),
        })
}

/// The columns [`task_of`] reads.
const TASK_SELECT: &str = "m.timestamp, m.task_id, m.agent_id, m.swarm_id, m.result, \
                           m.duration_ms, m.tokens_used, m.files_changed, m.model, m.provider, \
                           m.input_tokens, m.cache_read_tokens, m.cache_write_tokens, \
                           m.cost_micros, m.trace";

/// The query of task rows matching `filter` in `order`, at most `limit`.
pub(super) fn tasks_sql(filter: &Filter, limit: i64, order: &str) -> (String, Where) {
    let w = Where::tasks(filter);
    let sql = format!(
        "SELECT {TASK_SELECT} FROM task_metrics m WHERE {} ORDER BY {order} LIMIT {limit}",
        w.clause
    );
    (sql, w)
}

/// The query counting the tasks matching `filter` by result.
pub(super) fn success_rate_sql(filter: &Filter) -> (String, Where) {
    let w = Where::tasks(filter);
    let sql = format!(
        "SELECT m.result, count(*) FROM task_metrics m WHERE {} GROUP BY m.result",
        w.clause
    );
    (sql, w)
}

/// The query of `aggregation` over the values of `kind` `filter` selects.
pub(super) fn aggregate_sql(
    kind: MetricKind,
    aggregation: AggregationType,
    filter: &Filter,
) -> Result<(String, Where)> {
    let (column, _) = aggregated_column(kind, filter)?;
    let w = Where::of(kind, filter);
    let sql = format!(
        "SELECT {} FROM {} m WHERE {}",
        aggregate_columns(column, aggregation),
        kind.table(),
        w.clause
    );
    Ok((sql, w))
}

/// The query of the values of `kind` `filter` selects, as one array, for
/// their quantiles: sending 33,000 values took 6.5 ms where sorting them
/// for `percentile_cont` took 8.9 (a day of the 1M-task bench), and the
/// quantiles then come from the same function as the file's.
pub(super) fn percentiles_sql(kind: MetricKind, filter: &Filter) -> Result<(String, Where)> {
    let (column, _) = aggregated_column(kind, filter)?;
    let w = Where::of(kind, filter);
    let sql = format!(
        "SELECT array_agg(m.{column}::float8) FILTER (WHERE m.{column} IS NOT NULL) \
         FROM {} m WHERE {}",
        kind.table(),
        w.clause
    );
    Ok((sql, w))
}

/// Which query [`PgStore::explain`] explains.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PlannedQuery {
    /// Rows newest first.
    Rows,
    /// An aggregate.
    Aggregate(AggregationType),
    /// A success rate of tasks.
    SuccessRate,
    /// Percentiles.
    Percentile,
}

impl PgStore {
    /// Task metrics matching `filter` in `order` (an `ORDER BY` list over
    /// the table aliased `m`, the same as on SQLite), at most `limit`.
    pub fn get_tasks(&self, filter: &Filter, limit: i64, order: &str) -> Result<Vec<TaskMetric>> {
        let (sql, w) = tasks_sql(filter, limit, order);
        let rows = self
            .read_conn()?
            .query_prepared(&sql, &w.params())
            .map_err(self.error("read task metrics"))?;
        rows.iter().map(task_of).collect()
    }

    /// The success rate of the tasks matching `filter`, with its counts.
    pub(crate) fn success_rate(&self, filter: &Filter) -> Result<SuccessRate> {
        let (sql, w) = success_rate_sql(filter);
        self.with_rollups(MetricKind::Task, filter, |client, rollups| {
            let mut rate = SuccessRate::default();
            for row in client
                .query_typed(&sql, &w.params())
                .map_err(self.error("compute success rate"))?
            {
                let code: i16 = row.column(0)?;
                let n: i64 = row.column(1)?;
                let result =
                    TaskResult::from_code(i64::from(code)).ok_or_else(|| Error::CorruptRow {
                        table: "task_metrics",
                        reason: format!("unknown result code {code}"),
                    })?;
                rate.add(result, u64::try_from(n).unwrap_or(0));
            }
            if rollups {
                let read = RollupRead::counts(MetricKind::Task, filter, None);
                for rolled in self.merge_rollups(client, &read)?.values() {
                    for (result, n) in rolled.result_counts() {
                        rate.add(result, n);
                    }
                }
            }
            Ok(rate)
        })
    }

    /// `aggregation` of the values of `kind` `filter` selects: the task
    /// column it names (durations by default), or agent and swarm
    /// metrics' values. Sums and averages of task columns come from the
    /// exact sum; standard deviations from PostgreSQL's computation
    /// (exact in `numeric` for task columns).
    pub(crate) fn aggregate(
        &self,
        kind: MetricKind,
        aggregation: AggregationType,
        filter: &Filter,
    ) -> Result<Aggregate> {
        let (column, metric_type) = aggregated_column(kind, filter)?;
        self.with_rollups(kind, filter, |client, rollups| {
            if rollups {
                let w = Where::of(kind, filter);
                let sql = format!(
                    "SELECT {} FROM {} m WHERE {}",
                    stat_columns(column),
                    kind.table(),
                    w.clause
                );
                let row = client
                    .query_typed_one(&sql, &w.params())
                    .map_err(self.error("aggregate metrics"))?;
                let mut stat = stat_of(&row, 0, kind)?;
                let read = RollupRead::column(kind, filter, None, column, false);
                for rolled in self.merge_rollups(client, &read)?.values() {
                    stat.merge(&rolled.stat)?;
                }
                return Ok(finish(&stat, aggregation, metric_type));
            }
            let (sql, w) = aggregate_sql(kind, aggregation, filter)?;
            let row = client
                .query_typed_one(&sql, &w.params())
                .map_err(self.error("aggregate metrics"))?;
            aggregate_of(&row, 0, kind, aggregation, metric_type)
        })
    }

    /// The quantiles `qs` of the values of `kind` `filter` selects, exact.
    pub(crate) fn percentiles(
        &self,
        kind: MetricKind,
        qs: &[f64],
        filter: &Filter,
    ) -> Result<Vec<Percentile>> {
        let (_, metric_type) = aggregated_column(kind, filter)?;
        let (sql, w) = percentiles_sql(kind, filter)?;
        self.with_rollups(kind, filter, |client, rollups| {
            if rollups {
                let (mut values, sketch) = self.values_in(client, kind, filter, true)?;
                return Ok(quantiles_of(&mut values, sketch, qs, metric_type));
            }
            let row = client
                .query_typed_one(&sql, &w.params())
                .map_err(self.error("compute percentiles"))?;
            let mut values: Vec<f64> = row.column::<Option<Vec<f64>>>(0)?.unwrap_or_default();
            Ok(quantiles_of(&mut values, None, qs, metric_type))
        })
    }
}

impl PgStore {
    /// Agent or swarm metrics (`kind`) matching `filter`, newest first
    /// (ties: the last stored first), at most `limit`.
    pub fn get_entities(
        &self,
        kind: MetricKind,
        filter: &Filter,
        limit: i64,
    ) -> Result<Vec<EntityFields>> {
        let (table, id) = PgStore::entity_table(kind);
        let w = Where::of(kind, filter);
        let sql = format!(
            "SELECT m.metric_id, m.{id}, m.metric_type, m.value, m.metadata, m.timestamp \
             FROM {table} m WHERE {} ORDER BY m.timestamp DESC, m.metric_id DESC LIMIT {limit}",
            w.clause
        );
        self.read_conn()?
            .query_typed(&sql, &w.params())
            .map_err(self.error("read metrics"))?
            .iter()
            .map(|row| entity_of(row, table))
            .collect()
    }

    /// Hands every task metric matching `filter` to `visit`, oldest first
    /// (ties by task id), as the server sends them.
    pub fn for_each_task<B>(
        &self,
        filter: &Filter,
        mut visit: impl FnMut(TaskMetric) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        let w = Where::tasks(filter);
        let sql = format!(
            "SELECT {TASK_SELECT} FROM task_metrics m WHERE {} ORDER BY m.timestamp, m.task_id",
            w.clause
        );
        self.stream(&sql, &w, |row| Ok(visit(task_of(row)?)))
    }

    /// Hands every agent or swarm metric (`kind`) matching `filter` to
    /// `visit`, oldest first (ties: first stored first).
    pub fn for_each_entity<B>(
        &self,
        kind: MetricKind,
        filter: &Filter,
        mut visit: impl FnMut(EntityFields) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        let (table, id) = PgStore::entity_table(kind);
        let w = Where::of(kind, filter);
        let sql = format!(
            "SELECT m.metric_id, m.{id}, m.metric_type, m.value, m.metadata, m.timestamp \
             FROM {table} m WHERE {} ORDER BY m.timestamp, m.metric_id",
            w.clause
        );
        self.stream(&sql, &w, |row| Ok(visit(entity_of(row, table)?)))
    }

    /// Runs `sql` and hands each row to `visit` as it arrives, until it
    /// says stop.
    fn stream<B>(
        &self,
        sql: &str,
        w: &Where,
        mut visit: impl FnMut(&Row) -> Result<ControlFlow<B>>,
    ) -> Result<Option<B>> {
        let mut conn = self.read_conn()?;
        let mut rows = conn
            .query_typed_raw(sql, w.params())
            .map_err(self.error("read metrics"))?;
        while let Some(row) = rows.next().map_err(self.error("read metrics"))? {
            if let ControlFlow::Break(b) = visit(&row)? {
                return Ok(Some(b));
            }
        }
        Ok(None)
    }
}

/// An agent or swarm metric from a row of `metric_id, id, metric_type,
/// value, metadata, timestamp`.
fn entity_of(row: &Row, table: &'static str) -> Result<EntityFields> {
    let corrupt = |reason: String| Error::CorruptRow { table, reason };
    let code: i16 = row.column(2)?;
    let metric_type = MetricType::from_code(i64::from(code))
        .ok_or_else(|| corrupt(format!("unknown metric type code {code}")))?;
    let metadata: Option<String> = row.column(4)?;
    let metadata = metadata
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| corrupt(format!("metadata is not JSON: {e}")))?;
    let timestamp: i64 = row.column(5)?;
    let timestamp = from_micros(timestamp)
        .ok_or_else(|| corrupt(format!("timestamp {timestamp} µs out of range")))?;
    Ok((
        row.column(0)?,
        row.column(1)?,
        metric_type,
        row.column(3)?,
        metadata,
        timestamp,
    ))
}

/// The select list [`aggregate_of`] reads: `count, sum::text, min, max,
/// stddev` of `column`, each but the count computed only when
/// `aggregation` needs it (a `numeric` standard deviation costs more than
/// the rest together). Task columns are whole numbers, summed exactly in
/// `numeric`; values are doubles. Both sums are read as text.
pub(super) fn aggregate_columns(column: &str, aggregation: AggregationType) -> String {
    let needed = |wanted: bool, sql: String, none: &str| if wanted { sql } else { none.to_owned() };
    let sum = matches!(aggregation, AggregationType::Sum | AggregationType::Avg);
    [
        format!("count(m.{column})"),
        needed(sum, format!("sum(m.{column})::text"), "NULL::text"),
        needed(
            aggregation == AggregationType::Min,
            format!("min(m.{column})::float8"),
            "NULL::float8",
        ),
        needed(
            aggregation == AggregationType::Max,
            format!("max(m.{column})::float8"),
            "NULL::float8",
        ),
        needed(
            aggregation == AggregationType::Stddev,
            format!("stddev_samp(m.{column})::float8"),
            "NULL::float8",
        ),
    ]
    .join(", ")
}

/// The aggregate from the columns `count, sum::text, min, max, stddev`
/// starting at `at`: counts, extremes and deviations as read, sums (and
/// so averages) from the exact text of task columns' `numeric` sums.
pub(super) fn aggregate_of(
    row: &Row,
    at: usize,
    kind: MetricKind,
    aggregation: AggregationType,
    metric_type: Option<MetricType>,
) -> Result<Aggregate> {
    let count = u64::try_from(row.column::<i64>(at)?).unwrap_or(0);
    let sum = || -> Result<f64> {
        let text: Option<String> = row.column(at + 1)?;
        let text = text.unwrap_or_default();
        let sum = match kind {
            MetricKind::Task => text.parse::<i128>().map(|s| s as f64).ok(),
            _ => text.parse::<f64>().ok(),
        };
        sum.ok_or_else(|| Error::CorruptRow {
            table: kind.table(),
            reason: format!("a sum that is not a number: {text}"),
        })
    };
    let value = if count == 0 {
        None
    } else {
        match aggregation {
            AggregationType::Count => Some(count as f64),
            AggregationType::Sum => Some(sum()?),
            AggregationType::Avg => Some(sum()? / count as f64),
            AggregationType::Min => row.column(at + 2)?,
            AggregationType::Max => row.column(at + 3)?,
            AggregationType::Stddev => row.column(at + 4)?,
        }
    };
    Ok(Aggregate {
        aggregation,
        metric_type,
        count,
        value,
        unpriced: None,
    })
}

/// Success rates by key from rows of `key, result, count` ordered by key,
/// in that order.
pub(super) fn rates_by_key<K: PartialEq>(
    rows: &[Row],
    key_of: impl Fn(&Row) -> Result<K>,
) -> Result<Vec<(K, SuccessRate)>> {
    let mut rates: Vec<(K, SuccessRate)> = Vec::new();
    for row in rows {
        let key = key_of(row)?;
        let code: i16 = row.column(1)?;
        let n: i64 = row.column(2)?;
        let result = TaskResult::from_code(i64::from(code)).ok_or_else(|| Error::CorruptRow {
            table: "task_metrics",
            reason: format!("unknown result code {code}"),
        })?;
        if rates.last().is_none_or(|(last, _)| *last != key) {
            rates.push((key, SuccessRate::default()));
        }
        if let Some((_, rate)) = rates.last_mut() {
            rate.add(result, u64::try_from(n).unwrap_or(0));
        }
    }
    Ok(rates)
}
