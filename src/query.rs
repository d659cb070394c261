//! Filters and time ranges, and the SQL they turn into.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use rusqlite::types::Value as SqlValue;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::record::{validate_id, MetricKind, MetricType, TaskResult};

/// How many rows a query returns when the caller does not say: the
/// reference's default.
pub const DEFAULT_LIMIT: usize = 1000;

/// Microseconds since the Unix epoch, the store's time unit.
pub(crate) fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The inverse of [`to_micros`]; `None` only for values outside chrono's
/// range, which this crate never writes.
pub(crate) fn from_micros(us: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
}

/// An inclusive range of time: `start <= timestamp <= end`, as the
/// reference's `time_range=(start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl TimeRange {
    /// The range from `start` to `end`, both included (truncated to
    /// microseconds).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (field `time_range`) when `start` is after
    /// `end`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self> {
        if start > end {
            return Err(Error::invalid(
                "time_range",
                format!("start {start} is after end {end}"),
            ));
        }
        Ok(TimeRange {
            start: start.trunc_subsecs(6),
            end: end.trunc_subsecs(6),
        })
    }

    /// The last `span` up to now, e.g. `TimeRange::last(Duration::hours(24))`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (field `time_range`) when `span` is negative
    /// or reaches outside the representable dates.
    pub fn last(span: Duration) -> Result<Self> {
        let end = crate::record::now();
        let start = end
            .checked_sub_signed(span)
            .ok_or_else(|| Error::invalid("time_range", format!("span {span} is too large")))?;
        TimeRange::new(start, end)
    }

    /// The first instant included.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// The last instant included.
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// True when `t` lies in the range.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t <= self.end
    }
}

/// Which metrics a query, aggregate or success rate looks at. Every field
/// is optional; an empty filter matches everything.
///
/// Not every field applies to every kind of metric: `task_id` and `result`
/// only to task metrics, `metric_type` on task metrics only to aggregates
/// (it picks the measured column). A field that does not apply is an error,
/// not silently ignored.
///
/// ```
/// use swarm_metrics::{Filter, TaskResult, TimeRange};
/// use chrono::Duration;
///
/// let filter = Filter::new()
///     .agent("agent-007")
///     .result(TaskResult::Failure)
///     .range(TimeRange::last(Duration::hours(1))?);
/// # Ok::<(), swarm_metrics::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filter {
    /// Only this task (task metrics).
    pub task_id: Option<String>,
    /// Only this agent (task and agent metrics).
    pub agent_id: Option<String>,
    /// Only this swarm (task and swarm metrics).
    pub swarm_id: Option<String>,
    /// Only tasks with this result (task metrics).
    pub result: Option<TaskResult>,
    /// Only this metric type (agent and swarm metrics).
    pub metric_type: Option<MetricType>,
    /// Only this time range.
    pub time_range: Option<TimeRange>,
    /// What aggregates, percentiles and series of task metrics measure:
    /// durations (the default), tokens or files changed. Not a condition on
    /// the rows; only those calls take it.
    pub column: Option<TaskColumn>,
}

/// What an aggregate of task metrics measures (see [`Filter::column`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TaskColumn {
    /// `duration_ms`.
    #[default]
    #[serde(rename = "task_duration")]
    Duration,
    /// `tokens_used`.
    #[serde(rename = "task_tokens")]
    Tokens,
    /// `files_changed`.
    #[serde(rename = "task_files")]
    Files,
}

impl TaskColumn {
    /// The metric type results report for this column (`task_duration`,
    /// `task_tokens` or `task_files`).
    pub fn metric_type(self) -> MetricType {
        match self {
            TaskColumn::Duration => MetricType::TaskDuration,
            TaskColumn::Tokens => MetricType::TaskTokens,
            TaskColumn::Files => MetricType::TaskFiles,
        }
    }

    /// The column of that metric type, if it names one (`task_result`
    /// does not: success rates come from `success_rate`).
    pub fn of_metric_type(metric_type: MetricType) -> Option<TaskColumn> {
        match metric_type {
            MetricType::TaskDuration => Some(TaskColumn::Duration),
            MetricType::TaskTokens => Some(TaskColumn::Tokens),
            MetricType::TaskFiles => Some(TaskColumn::Files),
            _ => None,
        }
    }

    /// The SQL column.
    pub(crate) fn sql(self) -> &'static str {
        match self {
            TaskColumn::Duration => "duration_ms",
            TaskColumn::Tokens => "tokens_used",
            TaskColumn::Files => "files_changed",
        }
    }
}

impl Filter {
    /// A filter that matches everything.
    pub fn new() -> Self {
        Filter::default()
    }

    /// Only this task.
    pub fn task(mut self, task_id: impl Into<String>) -> Self {
        self.task_id = Some(task_id.into());
        self
    }

    /// Only this agent.
    pub fn agent(mut self, agent_id: impl Into<String>) -> Self {
        self.agent_id = Some(agent_id.into());
        self
    }

    /// Only this swarm.
    pub fn swarm(mut self, swarm_id: impl Into<String>) -> Self {
        self.swarm_id = Some(swarm_id.into());
        self
    }

    /// Only tasks with this result.
    pub fn result(mut self, result: TaskResult) -> Self {
        self.result = Some(result);
        self
    }

    /// Only this metric type (agent and swarm metrics).
    pub fn metric_type(mut self, metric_type: MetricType) -> Self {
        self.metric_type = Some(metric_type);
        self
    }

    /// A metric type as the reference uses it: a task metric type
    /// (`task_duration`, `task_tokens`, `task_files`) picks the
    /// [`column`](Self::column) task aggregates measure; any other filters
    /// agent and swarm metrics by type.
    pub fn metric_type_or_column(self, metric_type: MetricType) -> Self {
        match TaskColumn::of_metric_type(metric_type) {
            Some(column) => self.column(column),
            None => self.metric_type(metric_type),
        }
    }

    /// Measure this column in aggregates, percentiles and series of task
    /// metrics (durations without it).
    pub fn column(mut self, column: TaskColumn) -> Self {
        self.column = Some(column);
        self
    }

    /// Only this time range.
    pub fn range(mut self, range: TimeRange) -> Self {
        self.time_range = Some(range);
        self
    }

    /// Checks that every set field applies to `kind` and is well formed.
    /// `for_aggregate` allows `column` (on task metrics).
    pub(crate) fn validate(&self, kind: MetricKind, for_aggregate: bool) -> Result<()> {
        let reject = |field: &'static str| {
            Err(Error::invalid(
                field,
                format!("does not apply to {kind} metrics"),
            ))
        };
        if let Some(id) = &self.task_id {
            if kind != MetricKind::Task {
                return reject("task_id");
            }
            validate_id("task_id", id)?;
        }
        if let Some(id) = &self.agent_id {
            if kind == MetricKind::Swarm {
                return reject("agent_id");
            }
            validate_id("agent_id", id)?;
        }
        if let Some(id) = &self.swarm_id {
            if kind == MetricKind::Agent {
                return reject("swarm_id");
            }
            validate_id("swarm_id", id)?;
        }
        if self.result.is_some() && kind != MetricKind::Task {
            return reject("result");
        }
        if self.column.is_some() && !(kind == MetricKind::Task && for_aggregate) {
            return Err(Error::invalid(
                "column",
                "picks what aggregates, percentiles and series of task metrics measure; \
                 it does not apply here",
            ));
        }
        if let Some(metric_type) = self.metric_type {
            if kind == MetricKind::Task {
                return Err(Error::invalid(
                    "metric_type",
                    "filters agent and swarm metrics; to measure tokens or files of task \
                     metrics, set the column (Filter::column)",
                ));
            }
            crate::record::validate_metric_type(kind, metric_type)?;
        }
        if let Some(range) = &self.time_range {
            // Fields are private, but a deserialized range skips `new`.
            TimeRange::new(range.start, range.end)?;
        }
        Ok(())
    }

    /// What follows `FROM` in a query of `kind`'s metrics matching this
    /// filter: the rows' source, aliased `m`, and the `WHERE` clause, with
    /// their parameters. `metric_type` is left out for task metrics (it
    /// picks a column there).
    ///
    /// Task metrics filtered by task id, agent or swarm come from two
    /// parts: rows already in the task-id or agent index, read through it,
    /// and the newest rows, not in them yet, read through the primary key
    /// from the watermark on (see `task_index_state` in `schema.sql`). SQLite pushes the other
    /// conditions, such as the time range, into both parts.
    pub(crate) fn sql_from(&self, kind: MetricKind) -> (String, Vec<SqlValue>) {
        let (source, clause, params) = self.source_and_clause(kind, false);
        (format!("{source} m WHERE {clause}"), params.values(self))
    }

    /// [`sql_from`](Self::sql_from) in its two parts: the source (to
    /// alias `m`) and the `WHERE` clause (`1` when empty), with the fields
    /// their parameters take.
    ///
    /// `all_indexed` says that the time range ends at or before the index
    /// watermark read before the query (see [`Filter::all_indexed`]): every
    /// row the filter can match is then in the agent and task-id indexes,
    /// and only that part is read.
    pub(crate) fn source_and_clause(
        &self,
        kind: MetricKind,
        all_indexed: bool,
    ) -> (String, String, Params) {
        let mut params = Params::default();
        let mut clauses = Vec::new();
        let indexed = match kind {
            MetricKind::Task => self.indexed_task_source(&mut params, &mut clauses, all_indexed),
            _ => None,
        };
        if indexed.is_none() {
            self.bind_agent_and_swarm(&mut params, &mut clauses);
        }
        if self.result.is_some() {
            clauses.push(params.bind("m.result = ?", Field::Result));
        }
        // An indexed source holds the time range itself.
        if indexed.is_none() {
            self.bind_type_and_range(kind, &mut params, &mut clauses, "m", "m.timestamp");
        }
        let source = indexed.unwrap_or_else(|| kind.table().to_owned());
        (source, all_of(&clauses), params)
    }

    /// Whether every task metric this filter can match is in the agent and
    /// task-id indexes, given the index `watermark` read before the query:
    /// when the time range ends at or before it. That stays true while the
    /// query runs, since the watermark only ever moves forward and rows
    /// stored at or before it are indexed at once.
    pub(crate) fn all_indexed(&self, watermark: Option<i64>) -> bool {
        watermark
            .zip(self.time_range)
            .is_some_and(|(watermark, range)| to_micros(range.end) <= watermark)
    }

    /// The shape of this filter: which fields it sets.
    pub(crate) fn shape(&self) -> [bool; 6] {
        [
            self.task_id.is_some(),
            self.agent_id.is_some(),
            self.swarm_id.is_some(),
            self.result.is_some(),
            self.metric_type.is_some(),
            self.time_range.is_some(),
        ]
    }

    /// The value of `field`, as a query parameter (NULL when unset).
    fn value_of(&self, field: Field) -> SqlValue {
        let text = |id: &Option<String>| id.clone().map_or(SqlValue::Null, SqlValue::Text);
        let code = |code: Option<i64>| code.map_or(SqlValue::Null, SqlValue::Integer);
        let time = |at: fn(&TimeRange) -> DateTime<Utc>| {
            code(self.time_range.as_ref().map(|range| to_micros(at(range))))
        };
        match field {
            Field::TaskId => text(&self.task_id),
            Field::AgentId => text(&self.agent_id),
            Field::SwarmId => text(&self.swarm_id),
            Field::Result => code(self.result.map(TaskResult::code)),
            Field::MetricType => code(self.metric_type.map(MetricType::code)),
            Field::Start => time(|range| range.start),
            Field::End => time(|range| range.end),
        }
    }

    /// The conditions on the agent and swarm, on the table aliased `m`.
    fn bind_agent_and_swarm(&self, params: &mut Params, clauses: &mut Vec<String>) {
        if self.agent_id.is_some() {
            clauses.push(params.bind(&format!("m.{AGENT_IS}"), Field::AgentId));
        }
        if self.swarm_id.is_some() {
            clauses.push(params.bind(&format!("m.{SWARM_IS}"), Field::SwarmId));
        }
    }

    /// For task metrics filtered by task id, agent or swarm: the source
    /// that reads them through the task-id or agent index, and past the
    /// watermark through the primary key (see
    /// [`source_and_clause`](Self::source_and_clause)), with the time range
    /// inside; `None` without such a filter.
    fn indexed_task_source(
        &self,
        params: &mut Params,
        clauses: &mut Vec<String>,
        all_indexed: bool,
    ) -> Option<String> {
        // The conditions that find the rows through an index, which both
        // parts apply: the task id (its own index; agent and swarm are then
        // plain conditions), or else the agent or swarm, with one more
        // condition for the index part of a swarm.
        let mut keys = Vec::new();
        let mut through_index = String::new();
        if self.task_id.is_some() {
            keys.push(params.bind("task_id = ?", Field::TaskId));
            // The agent index must not be chosen over the task id's, for
            // the order it gives: `+` keeps it out.
            if self.agent_id.is_some() {
                clauses.push(params.bind(&format!("+m.{AGENT_IS}"), Field::AgentId));
            }
            if self.swarm_id.is_some() {
                clauses.push(params.bind(&format!("+m.{SWARM_IS}"), Field::SwarmId));
            }
        } else {
            if self.agent_id.is_some() {
                keys.push(params.bind(AGENT_IS, Field::AgentId));
            }
            if self.swarm_id.is_some() {
                keys.push(params.bind(SWARM_IS, Field::SwarmId));
                if self.agent_id.is_none() {
                    // The index part reads the ranges of the swarm's agents.
                    let n = params.count();
                    through_index = format!(
                        "agent IN (SELECT agent FROM agent_swarms \
                         WHERE swarm = (SELECT id FROM swarms WHERE name = ?{n})) AND "
                    );
                }
            }
        }
        if keys.is_empty() {
            return None;
        }
        let keys = keys.join(" AND ");
        // The time range goes into each part rather than into the outer
        // query: the part past the watermark must start at the later of
        // the watermark and the range's start in one bound, or SQLite may
        // start at the range's start and walk every row of the range
        // checking the watermark.
        let (recent_range, indexed_range) = match &self.time_range {
            Some(_) => {
                let start = params.bind("?", Field::Start);
                let end = params.bind("?", Field::End);
                (
                    format!(
                        "timestamp >= (SELECT max(watermark + 1, {start}) FROM task_index_state) \
                         AND timestamp <= {end}"
                    ),
                    format!(" AND timestamp >= {start} AND timestamp <= {end}"),
                )
            }
            None => (
                "timestamp > (SELECT watermark FROM task_index_state)".to_owned(),
                String::new(),
            ),
        };
        let indexed = format!(
            "SELECT * FROM task_metrics WHERE indexed = 1 AND {through_index}{keys}{indexed_range}"
        );
        Some(if all_indexed {
            format!("({indexed})")
        } else {
            format!(
                "(SELECT * FROM task_metrics WHERE {recent_range} AND {keys} UNION ALL {indexed})"
            )
        })
    }

    /// The conditions on the metric type (of agent and swarm metrics) and
    /// the time range, on the table aliased `alias`, with `time` the
    /// column the range applies to; raw rows and rollups share them.
    pub(crate) fn bind_type_and_range(
        &self,
        kind: MetricKind,
        params: &mut Params,
        clauses: &mut Vec<String>,
        alias: &str,
        time: &str,
    ) {
        if self.metric_type.is_some() && kind != MetricKind::Task {
            clauses.push(params.bind(&format!("{alias}.metric_type = ?"), Field::MetricType));
        }
        if self.time_range.is_some() {
            clauses.extend(params.bind_range(time));
        }
    }
}

/// Rows of one agent, by name: `agent = (…)`.
const AGENT_IS: &str = "agent = (SELECT id FROM agents WHERE name = ?)";

/// Rows of one swarm, by name: `swarm = (…)`.
const SWARM_IS: &str = "swarm = (SELECT id FROM swarms WHERE name = ?)";

/// Which of a filter's values a query parameter takes. A query is built
/// from which fields a filter sets, never from their values, so one built
/// query serves every filter of the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    TaskId,
    AgentId,
    SwarmId,
    Result,
    MetricType,
    /// The time range's start, in microseconds.
    Start,
    /// The time range's end, in microseconds.
    End,
}

/// The parameters of a query being built, numbered in order: the fields
/// of the filter they take.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(Vec<Field>);

impl Params {
    /// `clause` with its one `?` numbered for `field`, which is added.
    pub fn bind(&mut self, clause: &str, field: Field) -> String {
        self.0.push(field);
        clause.replace('?', &format!("?{}", self.0.len()))
    }

    /// The two clauses keeping `column` inside the time range, both ends
    /// included.
    pub fn bind_range(&mut self, column: &str) -> [String; 2] {
        [
            self.bind(&format!("{column} >= ?"), Field::Start),
            self.bind(&format!("{column} <= ?"), Field::End),
        ]
    }

    /// How many parameters there are: the number of the last one.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// The parameters' values for `filter`, which must have the shape
    /// the query was built for.
    pub fn values(&self, filter: &Filter) -> Vec<SqlValue> {
        self.0.iter().map(|&field| filter.value_of(field)).collect()
    }
}

/// `clauses` joined with `AND`; `1` (true) for none.
pub(crate) fn all_of(clauses: &[String]) -> String {
    if clauses.is_empty() {
        "1".to_owned()
    } else {
        clauses.join(" AND ")
    }
}

/// What results are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The agent (task and agent metrics).
    Agent,
    /// The swarm (task and swarm metrics); tasks without a swarm form the
    /// group with no key.
    Swarm,
    /// The task result (task metrics).
    Result,
    /// The metric type (agent and swarm metrics).
    MetricType,
}

impl GroupBy {
    /// The SQL expression naming the group of a row of `kind` in the
    /// table aliased `alias` (raw rows or rollups), or an error when the
    /// grouping does not apply.
    pub(crate) fn key_sql(self, kind: MetricKind, alias: &str) -> Result<String> {
        self.validate(kind)?;
        let (names, key) = match self {
            GroupBy::Agent => ("agents", "id"),
            GroupBy::Swarm => ("swarms", "id"),
            GroupBy::Result => ("task_results", "code"),
            GroupBy::MetricType => ("metric_types", "code"),
        };
        let column = self.column(alias);
        Ok(format!("(SELECT name FROM {names} WHERE {key} = {column})"))
    }

    /// Whether this grouping applies to metrics of `kind`: agents to task
    /// and agent metrics, swarms to task and swarm metrics, results to
    /// task metrics, metric types to agent and swarm metrics.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `group_by` when it does not.
    pub(crate) fn validate(self, kind: MetricKind) -> Result<()> {
        match (self, kind) {
            (GroupBy::Agent, MetricKind::Task | MetricKind::Agent)
            | (GroupBy::Swarm, MetricKind::Task | MetricKind::Swarm)
            | (GroupBy::Result, MetricKind::Task)
            | (GroupBy::MetricType, MetricKind::Agent | MetricKind::Swarm) => Ok(()),
            _ => Err(Error::invalid(
                "group_by",
                format!("{self:?} does not apply to {kind} metrics"),
            )),
        }
    }

    /// The column grouped on, in the table aliased `alias` (cheap to group
    /// by; names are looked up once per group).
    pub(crate) fn column(self, alias: &str) -> String {
        let column = match self {
            GroupBy::Agent => "agent",
            GroupBy::Swarm => "swarm",
            GroupBy::Result => "result",
            GroupBy::MetricType => "metric_type",
        };
        format!("{alias}.{column}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ranges_reject_reversed_bounds() {
        let a = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let b = Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap();
        assert!(TimeRange::new(a, b).is_ok());
        assert!(TimeRange::new(a, a).unwrap().contains(a));
        let err = TimeRange::new(b, a).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "time_range",
                ..
            }
        ));
        assert!(TimeRange::last(Duration::hours(-1)).is_err());
    }

    #[test]
    fn filters_refuse_fields_of_other_kinds() {
        assert!(Filter::new()
            .task("t")
            .validate(MetricKind::Agent, false)
            .is_err());
        assert!(Filter::new()
            .agent("a")
            .validate(MetricKind::Swarm, false)
            .is_err());
        assert!(Filter::new()
            .swarm("s")
            .validate(MetricKind::Agent, false)
            .is_err());
        assert!(Filter::new()
            .result(TaskResult::Success)
            .validate(MetricKind::Swarm, false)
            .is_err());
        // A metric type filters agent and swarm metrics only; the column
        // is for task aggregates only.
        let typed = Filter::new().metric_type(MetricType::TaskTokens);
        assert!(typed.validate(MetricKind::Task, true).is_err());
        let tokens = Filter::new().column(TaskColumn::Tokens);
        assert!(tokens.validate(MetricKind::Task, false).is_err());
        assert!(tokens.validate(MetricKind::Task, true).is_ok());
        assert!(tokens.validate(MetricKind::Agent, true).is_err());
        assert!(Filter::new()
            .agent("")
            .validate(MetricKind::Task, false)
            .is_err());
    }

    #[test]
    fn sql_from_numbers_its_parameters() {
        let (sql, params) = Filter::new()
            .agent("a")
            .result(TaskResult::Timeout)
            .sql_from(MetricKind::Task);
        let agent = "agent = (SELECT id FROM agents WHERE name = ?1)";
        assert_eq!(
            sql,
            format!(
                "(SELECT * FROM task_metrics \
                  WHERE timestamp > (SELECT watermark FROM task_index_state) AND {agent} \
                  UNION ALL \
                  SELECT * FROM task_metrics WHERE indexed = 1 AND {agent}) m \
                 WHERE m.result = ?2"
            )
        );
        assert_eq!(params.len(), 2);
        assert_eq!(
            Filter::new().sql_from(MetricKind::Swarm).0,
            "swarm_metrics m WHERE 1"
        );
    }

    #[test]
    fn micros_round_trip() {
        for us in [0, -1, 1_700_000_000_123_456, -62_135_596_800_000_000] {
            assert_eq!(to_micros(from_micros(us).unwrap()), us);
        }
    }
}
