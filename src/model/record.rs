//! Typed metric records, and the checks every field passes before
//! anything is written. The enums they use are in [`crate::model::enums`].

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::trace::TraceIds;
use crate::model::usage::{Tokens, Usage};

pub use crate::model::checks::MAX_ID_LEN;
pub(crate) use crate::model::checks::{validate_count, validate_id};

pub use crate::model::enums::{AggregationType, MetricKind, MetricType, TaskResult};

/// Reads a timestamp from an RFC 3339 string, truncated to microseconds.
fn rfc3339<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(deserializer)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc).trunc_subsecs(6))
        .map_err(|e| serde::de::Error::custom(format!("{text:?} is not RFC 3339: {e}")))
}

/// The current time, truncated to the microsecond resolution of the store.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// One completed task, as an orchestrator reports it.
///
/// `(task_id, timestamp)` identifies a task metric: storing the same pair
/// again is ignored (the first write wins), so a retried store is never
/// counted twice.
///
/// What the task's model calls used and cost is in [`usage`](Self::usage);
/// in JSON its fields sit beside the others (`input_tokens`, `model`,
/// `cost_usd` …), and are left out when not set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TaskFields", into = "TaskFields")]
pub struct TaskMetric {
    /// The task's id.
    pub task_id: String,
    /// The agent that ran it.
    pub agent_id: String,
    /// The swarm it ran in, if any.
    #[serde(default)]
    pub swarm_id: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// How it ended.
    pub result: TaskResult,
    /// Tokens it used, in all: with a breakdown in
    /// [`usage`](Self::usage), input plus output (completed from the
    /// breakdown when 0).
    pub tokens_used: u64,
    /// Files it changed.
    pub files_changed: u64,
    /// When it was recorded (UTC, microsecond resolution); in JSON an
    /// RFC 3339 string, and now when missing.
    pub timestamp: DateTime<Utc>,
    /// Tokens by type, model, provider and bill; empty by default.
    pub usage: Usage,
    /// The OpenTelemetry trace and span it was recorded from, if any; in
    /// JSON `trace_id` and `span_id` beside the other fields.
    pub trace: Option<TraceIds>,
}

/// A task metric as JSON has it: the usage fields beside the others, and
/// unknown fields refused.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFields {
    task_id: String,
    agent_id: String,
    #[serde(default)]
    swarm_id: Option<String>,
    duration_ms: u64,
    result: TaskResult,
    #[serde(default)]
    tokens_used: u64,
    #[serde(default)]
    files_changed: u64,
    #[serde(default = "now", deserialize_with = "rfc3339")]
    timestamp: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_read_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_write_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    span_id: Option<String>,
}

impl TryFrom<TaskFields> for TaskMetric {
    type Error = Error;

    fn try_from(f: TaskFields) -> Result<Self> {
        let trace = match (&f.trace_id, &f.span_id) {
            (Some(trace), Some(span)) => Some(TraceIds::from_hex(trace, span)?),
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::invalid("span_id", "a trace_id needs its span_id"))
            }
            (None, Some(_)) => {
                return Err(Error::invalid("trace_id", "a span_id needs its trace_id"))
            }
        };
        Ok(TaskMetric {
            task_id: f.task_id,
            agent_id: f.agent_id,
            swarm_id: f.swarm_id,
            duration_ms: f.duration_ms,
            result: f.result,
            tokens_used: f.tokens_used,
            files_changed: f.files_changed,
            timestamp: f.timestamp,
            usage: Usage {
                input_tokens: f.input_tokens,
                output_tokens: f.output_tokens,
                cache_read_tokens: f.cache_read_tokens,
                cache_write_tokens: f.cache_write_tokens,
                model: f.model,
                provider: f.provider,
                cost_usd: f.cost_usd,
            },
            trace,
        })
    }
}

impl From<TaskMetric> for TaskFields {
    fn from(t: TaskMetric) -> Self {
        let u = t.usage;
        TaskFields {
            task_id: t.task_id,
            agent_id: t.agent_id,
            swarm_id: t.swarm_id,
            duration_ms: t.duration_ms,
            result: t.result,
            tokens_used: t.tokens_used,
            files_changed: t.files_changed,
            timestamp: t.timestamp,
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_tokens,
            model: u.model,
            provider: u.provider,
            cost_usd: u.cost_usd,
            trace_id: t.trace.map(|ids| ids.trace_hex()),
            span_id: t.trace.map(|ids| ids.span_hex()),
        }
    }
}

impl TaskMetric {
    /// A task metric stamped now, with no tokens, files or swarm.
    pub fn new(
        task_id: impl Into<String>,
        agent_id: impl Into<String>,
        duration_ms: u64,
        result: TaskResult,
    ) -> Self {
        TaskMetric {
            task_id: task_id.into(),
            agent_id: agent_id.into(),
            swarm_id: None,
            duration_ms,
            result,
            tokens_used: 0,
            files_changed: 0,
            timestamp: now(),
            usage: Usage::default(),
            trace: None,
        }
    }

    /// Sets the swarm the task ran in.
    pub fn swarm(mut self, swarm_id: impl Into<String>) -> Self {
        self.swarm_id = Some(swarm_id.into());
        self
    }

    /// Sets the tokens used.
    pub fn tokens(mut self, tokens_used: u64) -> Self {
        self.tokens_used = tokens_used;
        self
    }

    /// Sets the files changed.
    pub fn files(mut self, files_changed: u64) -> Self {
        self.files_changed = files_changed;
        self
    }

    /// Sets the timestamp (truncated to microseconds).
    pub fn at(mut self, timestamp: DateTime<Utc>) -> Self {
        self.timestamp = timestamp.trunc_subsecs(6);
        self
    }

    /// Sets tokens by type, model, provider and bill.
    pub fn usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }

    /// Sets the trace and span the task was recorded from.
    pub fn trace(mut self, trace: TraceIds) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The token counts the store keeps: `tokens_used` and the breakdown,
    /// completed by the token rule.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the counts contradict each other.
    pub(crate) fn resolved_tokens(&self) -> Result<Tokens> {
        self.usage.resolve(self.tokens_used)
    }

    /// Checks every field; called before anything is written.
    pub(crate) fn validate(&self) -> Result<()> {
        validate_id("task_id", &self.task_id)?;
        validate_id("agent_id", &self.agent_id)?;
        if let Some(swarm_id) = &self.swarm_id {
            validate_id("swarm_id", swarm_id)?;
        }
        validate_count("duration_ms", self.duration_ms)?;
        validate_count("tokens_used", self.tokens_used)?;
        validate_count("files_changed", self.files_changed)?;
        if let Some(trace) = &self.trace {
            trace.validate()?;
        }
        self.resolved_tokens()?;
        Ok(())
    }
}

/// Defines the agent and swarm metric records: the same fields, with the id
/// named `agent_id` or `swarm_id` as in the reference.
macro_rules! entity_metric {
    ($(#[$meta:meta])* $name:ident, $id:ident, $kind:expr, $what:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[doc = concat!("The ", $what, "'s id.")]
            pub $id: String,
            /// What the value measures; must be one of this kind's types.
            pub metric_type: MetricType,
            /// The value: finite and not negative.
            pub value: f64,
            /// Optional metadata: a JSON object.
            #[serde(default)]
            pub metadata: Option<Value>,
            /// When it was recorded (UTC, microsecond resolution); in JSON
            /// an RFC 3339 string, and now when missing.
            #[serde(default = "now", deserialize_with = "rfc3339")]
            pub timestamp: DateTime<Utc>,
        }

        impl $name {
            #[doc = concat!("A ", $what, " metric stamped now, without metadata.")]
            pub fn new($id: impl Into<String>, metric_type: MetricType, value: f64) -> Self {
                $name {
                    $id: $id.into(),
                    metric_type,
                    value,
                    metadata: None,
                    timestamp: now(),
                }
            }

            /// Sets the metadata (must be a JSON object).
            pub fn metadata(mut self, metadata: Value) -> Self {
                self.metadata = Some(metadata);
                self
            }

            /// Sets the timestamp (truncated to microseconds).
            pub fn at(mut self, timestamp: DateTime<Utc>) -> Self {
                self.timestamp = timestamp.trunc_subsecs(6);
                self
            }

            /// Checks every field, as the store does before it writes.
            pub(crate) fn validate(&self) -> Result<()> {
                self.record().validate()
            }

        }

        impl Entity for $name {
            fn stored(fields: EntityFields) -> Stored<Self> {
                let (metric_id, $id, metric_type, value, metadata, timestamp) = fields;
                Stored {
                    metric_id,
                    metric: $name {
                        $id,
                        metric_type,
                        value,
                        metadata,
                        timestamp,
                    },
                }
            }

            fn record(&self) -> EntityRecord<'_> {
                EntityRecord {
                    kind: $kind,
                    id: &self.$id,
                    metric_type: self.metric_type,
                    value: self.value,
                    metadata: self.metadata.as_ref(),
                    timestamp: self.timestamp,
                }
            }
        }
    };
}

entity_metric! {
    /// A measurement of one agent: success rate, error count, throughput or
    /// duration, with optional JSON metadata.
    AgentMetric, agent_id, MetricKind::Agent, "agent"
}

entity_metric! {
    /// A measurement of one swarm: health, throughput, latency or resource
    /// use, with optional JSON metadata.
    SwarmMetric, swarm_id, MetricKind::Swarm, "swarm"
}

/// An agent or swarm metric.
pub(crate) trait Entity: Clone + Send + Sync + 'static {
    /// The metric a row of either engine holds, with its id.
    fn stored(fields: EntityFields) -> Stored<Self>;

    /// The fields the store writes, unchecked: for the writer, which only
    /// receives records already checked.
    fn record(&self) -> EntityRecord<'_>;
}

/// An agent or swarm metric as a row gives it back: id, agent or swarm
/// id, metric type, value, metadata, timestamp.
pub(crate) type EntityFields = (i64, String, MetricType, f64, Option<Value>, DateTime<Utc>);

/// An agent or swarm metric as the storage layer sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntityRecord<'a> {
    pub kind: MetricKind,
    pub id: &'a str,
    pub metric_type: MetricType,
    pub value: f64,
    pub metadata: Option<&'a Value>,
    pub timestamp: DateTime<Utc>,
}

impl EntityRecord<'_> {
    fn validate(&self) -> Result<()> {
        let id_field = match self.kind {
            MetricKind::Agent => "agent_id",
            _ => "swarm_id",
        };
        validate_id(id_field, self.id)?;
        validate_metric_type(self.kind, self.metric_type)?;
        validate_value("value", self.value)?;
        if let Some(metadata) = self.metadata {
            if !metadata.is_object() {
                return Err(Error::invalid(
                    "metadata",
                    format!("must be a JSON object, not {}", json_type_name(metadata)),
                ));
            }
        }
        Ok(())
    }
}

/// A stored agent or swarm metric with the id the store gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored<T> {
    /// The id the store assigned (increasing, never reused).
    pub metric_id: i64,
    /// The metric itself.
    #[serde(flatten)]
    pub metric: T,
}

/// Values must be finite and not negative.
pub(crate) fn validate_value(field: &'static str, value: f64) -> Result<()> {
    if !value.is_finite() {
        return Err(Error::invalid(
            field,
            format!("must be finite, not {value}"),
        ));
    }
    if value < 0.0 {
        return Err(Error::invalid(
            field,
            format!("must not be negative, got {value}"),
        ));
    }
    Ok(())
}

/// An agent metric must have an `agent_*` type, a swarm metric a `swarm_*`.
pub(crate) fn validate_metric_type(kind: MetricKind, metric_type: MetricType) -> Result<()> {
    if metric_type.kind() != kind {
        let allowed: Vec<&str> = MetricType::ALL
            .iter()
            .filter(|t| t.kind() == kind)
            .map(|t| t.as_str())
            .collect();
        return Err(Error::invalid(
            "metric_type",
            format!(
                "{metric_type} is not a {kind} metric type; expected one of: {}",
                allowed.join(", ")
            ),
        ));
    }
    Ok(())
}

pub(crate) fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("agent_id", "a").is_ok());
        assert!(validate_id("agent_id", "agent 'x'; DROP TABLE t; --").is_ok());
        assert!(validate_id("agent_id", "").is_err());
        assert!(validate_id("agent_id", "  \t").is_err());
        assert!(validate_id("agent_id", "a\0b").is_err());
        assert!(validate_id("agent_id", &"x".repeat(MAX_ID_LEN)).is_ok());
        assert!(validate_id("agent_id", &"x".repeat(MAX_ID_LEN + 1)).is_err());
    }

    #[test]
    fn values_and_types_are_checked() {
        let ok = AgentMetric::new("a", MetricType::AgentThroughput, 1.5);
        assert!(ok.validate().is_ok());
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.5] {
            let err = AgentMetric::new("a", MetricType::AgentThroughput, bad)
                .validate()
                .unwrap_err();
            assert!(
                matches!(err, Error::InvalidInput { field: "value", .. }),
                "{bad}"
            );
        }
        let err = AgentMetric::new("a", MetricType::SwarmHealth, 1.0)
            .validate()
            .unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "metric_type",
                ..
            }
        ));
        let err = SwarmMetric::new("s", MetricType::SwarmHealth, 1.0)
            .metadata(serde_json::json!([1, 2]))
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("an array"));
    }

    #[test]
    fn task_counts_must_fit_sqlite_integers() {
        let t = TaskMetric::new("t", "a", u64::MAX, TaskResult::Success);
        let err = t.validate().unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "duration_ms",
                ..
            }
        ));
        assert!(
            TaskMetric::new("t", "a", i64::MAX as u64, TaskResult::Success)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn records_serialize_with_the_reference_field_names() {
        let m = SwarmMetric::new("s1", MetricType::SwarmHealth, 0.5);
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["swarm_id"], "s1");
        assert_eq!(v["metric_type"], "swarm_health");
        let stored = Stored {
            metric_id: 7,
            metric: m,
        };
        let v = serde_json::to_value(&stored).unwrap();
        assert_eq!(v["metric_id"], 7);
        assert_eq!(v["swarm_id"], "s1");
    }
}
