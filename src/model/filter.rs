//! Filters, time ranges and groupings: what a caller selects, checked
//! before any engine reads it.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::record::{validate_id, MetricKind, MetricType, TaskResult};

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
        let end = crate::model::record::now();
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
    /// The task's cost (micro-dollars in the store; answers are in USD).
    /// Tasks without a cost are not among the values: answers count them
    /// apart, as unpriced.
    #[serde(rename = "task_cost")]
    Cost,
    /// Input tokens, cached ones included; like the other token types,
    /// only tasks with a breakdown have them.
    #[serde(rename = "task_input_tokens")]
    InputTokens,
    /// Output tokens.
    #[serde(rename = "task_output_tokens")]
    OutputTokens,
    /// Input tokens read from the prompt cache.
    #[serde(rename = "task_cache_read_tokens")]
    CacheReadTokens,
    /// Input tokens written to the prompt cache.
    #[serde(rename = "task_cache_write_tokens")]
    CacheWriteTokens,
}

impl TaskColumn {
    /// The metric type results report for this column (`task_duration`,
    /// `task_tokens` or `task_files`).
    pub fn metric_type(self) -> MetricType {
        match self {
            TaskColumn::Duration => MetricType::TaskDuration,
            TaskColumn::Tokens => MetricType::TaskTokens,
            TaskColumn::Files => MetricType::TaskFiles,
            TaskColumn::Cost => MetricType::TaskCost,
            TaskColumn::InputTokens => MetricType::TaskInputTokens,
            TaskColumn::OutputTokens => MetricType::TaskOutputTokens,
            TaskColumn::CacheReadTokens => MetricType::TaskCacheReadTokens,
            TaskColumn::CacheWriteTokens => MetricType::TaskCacheWriteTokens,
        }
    }

    /// The column of that metric type, if it names one (`task_result`
    /// does not: success rates come from `success_rate`).
    pub fn of_metric_type(metric_type: MetricType) -> Option<TaskColumn> {
        match metric_type {
            MetricType::TaskDuration => Some(TaskColumn::Duration),
            MetricType::TaskTokens => Some(TaskColumn::Tokens),
            MetricType::TaskFiles => Some(TaskColumn::Files),
            MetricType::TaskCost => Some(TaskColumn::Cost),
            MetricType::TaskInputTokens => Some(TaskColumn::InputTokens),
            MetricType::TaskOutputTokens => Some(TaskColumn::OutputTokens),
            MetricType::TaskCacheReadTokens => Some(TaskColumn::CacheReadTokens),
            MetricType::TaskCacheWriteTokens => Some(TaskColumn::CacheWriteTokens),
            _ => None,
        }
    }

    /// The column's name: as the server stores it, and as the file
    /// computes it from the usage blob (see the file engine's
    /// `measured_sql`).
    pub(crate) fn sql(self) -> &'static str {
        match self {
            TaskColumn::Duration => "duration_ms",
            TaskColumn::Tokens => "tokens_used",
            TaskColumn::Files => "files_changed",
            TaskColumn::Cost => "cost_micros",
            TaskColumn::InputTokens => "input_tokens",
            TaskColumn::OutputTokens => "output_tokens",
            TaskColumn::CacheReadTokens => "cache_read_tokens",
            TaskColumn::CacheWriteTokens => "cache_write_tokens",
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

    /// Checks a filter of the alert history: it may set the agent, the
    /// swarm (the alert's group) and the time range, nothing else.
    pub(crate) fn validate_for_alerts(&self) -> Result<()> {
        let refuse =
            |field: &'static str| Err(Error::invalid(field, "does not apply to the alert history"));
        if self.task_id.is_some() {
            return refuse("task_id");
        }
        if self.result.is_some() {
            return refuse("result");
        }
        if self.metric_type.is_some() {
            return refuse("metric_type");
        }
        if self.column.is_some() {
            return refuse("column");
        }
        for (field, id) in [("agent_id", &self.agent_id), ("swarm_id", &self.swarm_id)] {
            if let Some(id) = id {
                validate_id(field, id)?;
            }
        }
        if let Some(range) = &self.time_range {
            TimeRange::new(range.start, range.end)?;
        }
        Ok(())
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
            crate::model::record::validate_metric_type(kind, metric_type)?;
        }
        if let Some(range) = &self.time_range {
            // Fields are private, but a deserialized range skips `new`.
            TimeRange::new(range.start, range.end)?;
        }
        Ok(())
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
    /// The model that ran the task (task metrics). Tasks without a model,
    /// and tasks already folded into rollups (which do not keep the
    /// model), form the group with no key: per-model answers are whole
    /// within the raw horizon only.
    Model,
}

impl GroupBy {
    /// Whether this grouping applies to metrics of `kind`: agents to task
    /// and agent metrics, swarms to task and swarm metrics, results and
    /// models to task metrics, metric types to agent and swarm metrics.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `group_by` when it does not.
    pub(crate) fn validate(self, kind: MetricKind) -> Result<()> {
        match (self, kind) {
            (GroupBy::Agent, MetricKind::Task | MetricKind::Agent)
            | (GroupBy::Swarm, MetricKind::Task | MetricKind::Swarm)
            | (GroupBy::Result | GroupBy::Model, MetricKind::Task)
            | (GroupBy::MetricType, MetricKind::Agent | MetricKind::Swarm) => Ok(()),
            _ => Err(Error::invalid(
                "group_by",
                format!("{self:?} does not apply to {kind} metrics"),
            )),
        }
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
    fn micros_round_trip() {
        for us in [0, -1, 1_700_000_000_123_456, -62_135_596_800_000_000] {
            assert_eq!(to_micros(from_micros(us).unwrap()), us);
        }
    }
}
