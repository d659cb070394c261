//! Reading rows back from the file: the `SELECT` lists, built once per
//! shape, and the decoders that turn their rows into records, side by
//! side.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use rusqlite::types::Value as SqlValue;
use rusqlite::Row;

use crate::engine::sqlite::columns::FILES_CHANGED;
use crate::engine::sqlite::filter::{Field, Params};
use crate::engine::sqlite::names::{ModelNames, SwarmNames};
use crate::engine::sqlite::usage::UsageCell;
use crate::engine::sqlite::{FileStore, Snapshot};
use crate::engine::task_order_sql;
use crate::error::{Error, Result};
use crate::model::filter::TimeRange;
use crate::model::filter::{from_micros, to_micros, Filter};
use crate::model::record::{
    AgentMetric, Entity, EntityFields, MetricKind, Stored, SwarmMetric, TaskMetric, TaskResult,
};
use crate::model::trace::TraceIds;
use crate::model::usage::{usd, Usage};

pub(crate) use crate::model::shapes::RowOrder;

/// How the rows of one kind are read back: their two orders and their
/// decoder.
struct Rows<T> {
    kind: MetricKind,
    /// Newest first, for `get_*_metrics` (task rows: by timestamp alone,
    /// see [`FileStore::newest_tasks`]).
    newest_first: &'static str,
    /// Oldest first, for `for_each_*_metric`.
    oldest_first: &'static str,
    decode: fn(&Row<'_>, &Names<'_>) -> Result<T>,
    /// What a failed read was doing.
    operation: &'static str,
}

/// What decoding a row may look up: swarm names and models, which task
/// rows hold as ids (and agents, which reads of rows join instead).
pub(super) struct Names<'a> {
    swarms: &'a SwarmNames,
    models: &'a ModelNames,
    snapshot: &'a Snapshot<'a>,
}

impl Names<'_> {
    /// The agent of `agents` row `id`, read from the snapshot (agents are
    /// not remembered: reads of rows join their names).
    pub(super) fn agent(&self, id: i64) -> Result<String> {
        let sql = "SELECT name FROM agents WHERE id = ?1";
        let name: Option<String> = self
            .snapshot
            .one(sql, vec![id.into()], "read task metrics")?;
        name.ok_or_else(|| corrupt("task_metrics", format!("{id} is not a row of agents")))
    }

    pub(super) fn swarm(&self, id: i64) -> Result<String> {
        self.swarms.name(id, |id| {
            let sql = "SELECT name FROM swarms WHERE id = ?1";
            self.snapshot.one(sql, vec![id.into()], "read task metrics")
        })
    }

    /// Model and provider of `models` row `id` ('' for one not named).
    pub(super) fn model(&self, id: i64) -> Result<(String, String)> {
        self.models.name(id, |id| {
            let sql = "SELECT model || char(0) || provider FROM models WHERE id = ?1";
            let joined: Option<String> =
                self.snapshot
                    .one(sql, vec![id.into()], "read task metrics")?;
            // Names never hold NUL, so the first one splits them.
            Ok(joined.and_then(|j| {
                j.split_once('\0')
                    .map(|(m, p)| (m.to_owned(), p.to_owned()))
            }))
        })
    }

    /// The usage and trace ids a row's blob holds, for a task of
    /// `tokens_used` tokens.
    fn usage(&self, blob: Option<Vec<u8>>, tokens_used: u64) -> Result<(Usage, Option<TraceIds>)> {
        let Some(blob) = blob else {
            return Ok((Usage::default(), None));
        };
        let cell = UsageCell::decode(&blob, tokens_used)?;
        let mut usage = Usage::default();
        if cell.model != 0 {
            let id = i64::try_from(cell.model).unwrap_or(i64::MAX);
            let (model, provider) = self.model(id)?;
            usage.model = Some(model).filter(|m| !m.is_empty());
            usage.provider = Some(provider).filter(|p| !p.is_empty());
        }
        if let Some(split) = cell.split {
            split.fill(&mut usage);
        }
        usage.cost_usd = cell.cost.map(|c| usd(c.micros));
        Ok((usage, cell.trace))
    }
}

const TASKS: Rows<TaskMetric> = Rows {
    kind: MetricKind::Task,
    newest_first: TASK_TIME_ORDER,
    oldest_first: "m.timestamp, m.task_id",
    decode: task_from_row,
    operation: "read task metrics",
};

const AGENTS: Rows<Stored<AgentMetric>> = Rows {
    kind: MetricKind::Agent,
    newest_first: "m.timestamp DESC, m.metric_id DESC",
    oldest_first: "m.timestamp, m.metric_id",
    decode: agent_from_row,
    operation: "read agent metrics",
};

const SWARMS: Rows<Stored<SwarmMetric>> = Rows {
    kind: MetricKind::Swarm,
    newest_first: "m.timestamp DESC, m.metric_id DESC",
    oldest_first: "m.timestamp, m.metric_id",
    decode: swarm_from_row,
    operation: "read swarm metrics",
};

impl FileStore {
    /// The newest `limit` task metrics matching `filter` in the file, read
    /// newest first by timestamp alone, which the indexes give with no
    /// sort; rows that share a timestamp are then put in task-id order
    /// here, where SQLite would sort the rows of each timestamp apart. When
    /// the limit cuts a timestamp's rows, all of them are read, so that the
    /// ones kept are the largest task ids.
    fn newest_tasks(
        &self,
        snapshot: &Snapshot<'_>,
        filter: &Filter,
        limit: i64,
    ) -> Result<Vec<TaskMetric>> {
        let watermark = self.watermark_for(snapshot, MetricKind::Task, filter)?;
        let read = |filter: &Filter, limit| {
            let (sql, params) = select_sql_ordered(
                MetricKind::Task,
                filter,
                limit,
                TASKS.newest_first,
                watermark,
            );
            let names = self.names(snapshot);
            snapshot.rows(&sql, params, TASKS.operation, |row| {
                (TASKS.decode)(row, &names)
            })
        };
        let mut rows = read(filter, limit)?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if let Some(last) = rows.last().filter(|_| rows.len() == limit) {
            let at = last.timestamp;
            let mut moment = filter.clone();
            moment.time_range = Some(TimeRange::new(at, at)?);
            let all_at = read(&moment, i64::MAX)?;
            rows.retain(|t| t.timestamp != at);
            rows.extend(all_at);
        }
        // Already newest first: only runs of equal timestamps move.
        rows.sort_by(|a, b| (b.timestamp, &b.task_id).cmp(&(a.timestamp, &a.task_id)));
        rows.truncate(limit);
        Ok(rows)
    }

    pub(super) fn names<'a>(&'a self, snapshot: &'a Snapshot<'a>) -> Names<'a> {
        Names {
            swarms: &self.swarm_names,
            models: &self.model_names,
            snapshot,
        }
    }

    /// The index watermark a read of `kind` matching `filter` may rely on
    /// (see `Filter::source_and_clause`): only the indexed part need be
    /// read when the range ends before it.
    fn watermark_for(
        &self,
        snapshot: &Snapshot<'_>,
        kind: MetricKind,
        filter: &Filter,
    ) -> Result<Option<i64>> {
        let keyed =
            filter.task_id.is_some() || filter.agent_id.is_some() || filter.swarm_id.is_some();
        Ok(match (kind, &filter.time_range) {
            (MetricKind::Task, Some(range)) if keyed => {
                Some(self.watermark_from(snapshot, to_micros(range.end()))?)
            }
            _ => None,
        })
    }
}

impl FileStore {
    /// Task metrics matching `filter` in `order`, at most `limit`.
    pub(crate) fn task_rows(
        &self,
        filter: &Filter,
        limit: i64,
        order: RowOrder,
    ) -> Result<Vec<TaskMetric>> {
        match order {
            RowOrder::NewestFirst => {
                self.read(|snapshot| self.newest_tasks(snapshot, filter, limit))
            }
            RowOrder::SlowestFirst => self.rows(&TASKS, filter, limit, task_order_sql(order)),
        }
    }

    /// Agent metrics matching `filter`, newest first, at most `limit`.
    pub(crate) fn agent_rows(
        &self,
        filter: &Filter,
        limit: i64,
    ) -> Result<Vec<Stored<AgentMetric>>> {
        self.rows(&AGENTS, filter, limit, AGENTS.newest_first)
    }

    /// Swarm metrics matching `filter`, newest first, at most `limit`.
    pub(crate) fn swarm_rows(
        &self,
        filter: &Filter,
        limit: i64,
    ) -> Result<Vec<Stored<SwarmMetric>>> {
        self.rows(&SWARMS, filter, limit, SWARMS.newest_first)
    }

    /// Hands every task metric matching `filter` to `visit`, oldest first.
    pub(crate) fn each_task<B>(
        &self,
        filter: &Filter,
        visit: impl FnMut(TaskMetric) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        self.each_row(&TASKS, filter, visit)
    }

    /// Hands every agent metric matching `filter` to `visit`, oldest first.
    pub(crate) fn each_agent<B>(
        &self,
        filter: &Filter,
        visit: impl FnMut(Stored<AgentMetric>) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        self.each_row(&AGENTS, filter, visit)
    }

    /// Hands every swarm metric matching `filter` to `visit`, oldest first.
    pub(crate) fn each_swarm<B>(
        &self,
        filter: &Filter,
        visit: impl FnMut(Stored<SwarmMetric>) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        self.each_row(&SWARMS, filter, visit)
    }

    /// Rows of one kind matching `filter` in the `ORDER BY` list
    /// `order_by`, at most `limit`.
    fn rows<T>(
        &self,
        rows: &Rows<T>,
        filter: &Filter,
        limit: i64,
        order_by: &'static str,
    ) -> Result<Vec<T>> {
        self.read(|snapshot| {
            let watermark = self.watermark_for(snapshot, rows.kind, filter)?;
            let (sql, params) = select_sql_ordered(rows.kind, filter, limit, order_by, watermark);
            let names = self.names(snapshot);
            snapshot.rows(&sql, params, rows.operation, |row| {
                (rows.decode)(row, &names)
            })
        })
    }

    /// Hands every row of one kind matching `filter` to `visit`, oldest
    /// first, until it breaks.
    fn each_row<T, B>(
        &self,
        rows: &Rows<T>,
        filter: &Filter,
        mut visit: impl FnMut(T) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        let (sql, params) =
            select_sql_ordered(rows.kind, filter, i64::MAX, rows.oldest_first, None);
        self.read(|snapshot| {
            let mut stopped = None;
            let names = self.names(snapshot);
            snapshot.each_until(&sql, params, rows.operation, |row| {
                if let ControlFlow::Break(b) = visit((rows.decode)(row, &names)?) {
                    stopped = Some(b);
                    return Ok(ControlFlow::Break(()));
                }
                Ok(ControlFlow::Continue(()))
            })?;
            Ok(stopped)
        })
    }
}

/// The file's task metrics newest first by timestamp alone, which the
/// indexes give with no sort (also when two parts of a read are merged);
/// [`FileStore::newest_tasks`] puts the rows of one timestamp in
/// task-id order.
const TASK_TIME_ORDER: &str = "m.timestamp DESC";

/// The query behind `get_*_metrics` on a file: rows of `kind` matching
/// `filter`, newest first, at most `limit`, with their parameters.
pub(crate) fn select_sql(
    kind: MetricKind,
    filter: &Filter,
    limit: i64,
) -> (Arc<str>, Vec<SqlValue>) {
    let order = match kind {
        MetricKind::Task => TASKS.newest_first,
        MetricKind::Agent => AGENTS.newest_first,
        MetricKind::Swarm => SWARMS.newest_first,
    };
    select_sql_ordered(kind, filter, limit, order, None)
}

/// [`select_sql`] with another order, and the index watermark when it was
/// read (see `Filter::source_and_clause`).
///
/// Queries of the same shape (the filter's fields set, the limit, the
/// order) are one text with other parameters: the text is built once and
/// remembered, since building it costs a small query a tenth of its time.
pub(crate) fn select_sql_ordered(
    kind: MetricKind,
    filter: &Filter,
    limit: i64,
    order: &'static str,
    watermark: Option<i64>,
) -> (Arc<str>, Vec<SqlValue>) {
    type Built = (Arc<str>, Params);
    static BUILT: LazyLock<Mutex<HashMap<Shape, Built>>> = LazyLock::new(Mutex::default);
    /// Shapes remembered at most: limits are the callers', and many.
    const REMEMBERED: usize = 512;
    let all_indexed = filter.all_indexed(watermark);
    let shape = (kind, filter.shape(), limit, order, all_indexed);
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((sql, params)) = built.get(&shape) {
        return (Arc::clone(sql), params.values(filter));
    }
    let (sql, params) = build_select(kind, filter, limit, order, all_indexed);
    if built.len() >= REMEMBERED {
        built.clear();
    }
    let sql: Arc<str> = sql.into();
    built.insert(shape, (Arc::clone(&sql), params.clone()));
    (sql, params.values(filter))
}

/// What a select's text depends on: the kind, which fields the filter
/// sets, the limit, the order, and whether only indexed rows are read.
type Shape = (MetricKind, [bool; 6], i64, &'static str, bool);

/// The text of [`select_sql_ordered`], with its parameters' fields.
///
/// The limit is written into the SQL rather than bound: SQLite plans a
/// statement again each time a new value is bound to its `LIMIT`, which
/// costs more than the rest of a small query. And the agent or swarm id
/// the filter names is returned as it was given, instead of being looked
/// up for every row.
fn build_select(
    kind: MetricKind,
    filter: &Filter,
    limit: i64,
    order: &str,
    all_indexed: bool,
) -> (String, Params) {
    let (source, clause, mut params) = filter.source_and_clause(kind, all_indexed);
    let mut name_of = |given: &Option<String>, field, names: &str, id_column: &str| match given {
        Some(_) => (params.bind("?", field), String::new()),
        None => (
            "n.name".to_owned(),
            format!("CROSS JOIN {names} n ON n.id = m.{id_column}"),
        ),
    };
    let sql = match kind {
        MetricKind::Task => {
            let (agent, join) = name_of(&filter.agent_id, Field::AgentId, "agents", "agent");
            format!(
                "SELECT m.task_id, {agent}, m.swarm, m.duration_ms, m.result, m.tokens_used, \
                        {FILES_CHANGED}, m.timestamp, m.usage \
                 FROM {source} m {join} \
                 WHERE {clause} \
                 ORDER BY {order} LIMIT {limit}"
            )
        }
        MetricKind::Agent | MetricKind::Swarm => {
            let (given, field, names, id_column) = match kind {
                MetricKind::Swarm => (&filter.swarm_id, Field::SwarmId, "swarms", "swarm"),
                _ => (&filter.agent_id, Field::AgentId, "agents", "agent"),
            };
            let (name, join) = name_of(given, field, names, id_column);
            format!(
                "SELECT m.metric_id, {name}, m.metric_type, m.value, m.metadata, m.timestamp \
                 FROM {table} m {join} \
                 WHERE {clause} \
                 ORDER BY {order} LIMIT {limit}",
                table = kind.table(),
            )
        }
    };
    (sql, params)
}

pub(super) fn corrupt(table: &'static str, reason: impl Into<String>) -> Error {
    Error::CorruptRow {
        table,
        reason: reason.into(),
    }
}

pub(super) fn column<T: rusqlite::types::FromSql>(
    row: &Row<'_>,
    index: usize,
    table: &'static str,
) -> Result<T> {
    row.get(index)
        .map_err(|e| corrupt(table, format!("column {index}: {e}")))
}

fn timestamp_column(
    row: &Row<'_>,
    index: usize,
    table: &'static str,
) -> Result<chrono::DateTime<chrono::Utc>> {
    let us: i64 = column(row, index, table)?;
    from_micros(us).ok_or_else(|| corrupt(table, format!("timestamp {us} out of range")))
}

pub(super) fn count_column(row: &Row<'_>, index: usize, table: &'static str) -> Result<u64> {
    let n: i64 = column(row, index, table)?;
    u64::try_from(n).map_err(|_| corrupt(table, format!("negative count {n}")))
}

fn task_from_row(row: &Row<'_>, names: &Names<'_>) -> Result<TaskMetric> {
    const TABLE: &str = "task_metrics";
    let swarm: Option<i64> = column(row, 2, TABLE)?;
    let code: i64 = column(row, 4, TABLE)?;
    let result = TaskResult::from_code(code)
        .ok_or_else(|| corrupt(TABLE, format!("unknown result code {code}")))?;
    let tokens_used = count_column(row, 5, TABLE)?;
    let (usage, trace) = names.usage(column(row, 8, TABLE)?, tokens_used)?;
    Ok(TaskMetric {
        task_id: column(row, 0, TABLE)?,
        agent_id: column(row, 1, TABLE)?,
        swarm_id: swarm.map(|id| names.swarm(id)).transpose()?,
        duration_ms: count_column(row, 3, TABLE)?,
        result,
        tokens_used,
        files_changed: count_column(row, 6, TABLE)?,
        timestamp: timestamp_column(row, 7, TABLE)?,
        usage,
        trace,
    })
}

fn agent_from_row(row: &Row<'_>, _: &Names<'_>) -> Result<Stored<AgentMetric>> {
    Ok(AgentMetric::stored(entity_fields(row, "agent_metrics")?))
}

fn swarm_from_row(row: &Row<'_>, _: &Names<'_>) -> Result<Stored<SwarmMetric>> {
    Ok(SwarmMetric::stored(entity_fields(row, "swarm_metrics")?))
}

fn entity_fields(row: &Row<'_>, table: &'static str) -> Result<EntityFields> {
    let code: i64 = column(row, 2, table)?;
    let metric_type = crate::model::record::MetricType::from_code(code)
        .ok_or_else(|| corrupt(table, format!("unknown metric type code {code}")))?;
    let metadata: Option<String> = column(row, 4, table)?;
    let metadata = metadata
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| corrupt(table, format!("metadata is not JSON: {e}")))?;
    Ok((
        column(row, 0, table)?,
        column(row, 1, table)?,
        metric_type,
        column(row, 3, table)?,
        metadata,
        timestamp_column(row, 5, table)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_of_one_shape_share_their_text_and_take_each_filters_values() {
        use chrono::TimeZone;
        let at = |h| chrono::Utc.with_ymd_and_hms(2025, 1, 1, h, 0, 0).unwrap();
        let filter = |agent: &str, h| {
            Filter::new()
                .agent(agent)
                .result(TaskResult::Timeout)
                .range(TimeRange::new(at(h), at(h + 1)).unwrap())
        };
        let select = |f: &Filter| select_sql_ordered(MetricKind::Task, f, 10, "m.timestamp", None);
        let (first, first_values) = select(&filter("a", 1));
        let (second, second_values) = select(&filter("b", 5));
        assert!(Arc::ptr_eq(&first, &second), "built twice: {first}");
        assert_ne!(first_values, second_values);
        // The values are the second filter's, in the first one's places.
        let (built, _) = build_select(MetricKind::Task, &filter("b", 5), 10, "m.timestamp", false);
        assert_eq!(built, *second);
        let rebuilt = Filter::new().agent("b").result(TaskResult::Timeout);
        let with_range = rebuilt.range(TimeRange::new(at(5), at(6)).unwrap());
        assert_eq!(second_values, select(&with_range).1);
        assert!(second_values.contains(&SqlValue::Text("b".into())));
        assert!(second_values.contains(&SqlValue::Integer(at(5).timestamp_micros())));
        // Another shape, limit or order is another text.
        let (other, _) = select(&Filter::new().agent("b"));
        assert_ne!(*other, *first);
        let (limited, _) =
            select_sql_ordered(MetricKind::Task, &filter("a", 1), 11, "m.timestamp", None);
        assert_ne!(*limited, *first);
    }
}
