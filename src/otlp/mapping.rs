//! How a span becomes a task: the contract README.md documents under
//! "OpenTelemetry spans".

use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::model::trace::{hex, TraceIds};
use crate::{TaskMetric, TaskResult, Usage};

/// The attribute that marks an agent's invocation in the GenAI
/// conventions, and the value it must have.
const OPERATION: &str = "gen_ai.operation.name";
const INVOKE_AGENT: &str = "invoke_agent";
/// The attributes this crate defines for spans of its own.
const TASK_ID: &str = "swarm.task.id";
const SWARM_ID: &str = "swarm.id";
const FILES_CHANGED: &str = "swarm.files_changed";
/// What the provider billed for the task, in USD.
const COST_USD: &str = "swarm.cost_usd";

/// The tasks a trace export holds, and what was left out.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct SpanTasks {
    /// One task per span that is a task, in the export's order.
    pub tasks: Vec<TaskMetric>,
    /// Spans that are not tasks (neither `invoke_agent` nor carrying
    /// `swarm.task.id`): left out, and not an error.
    pub ignored: u64,
    /// Spans that are tasks but cannot be stored, with why.
    pub rejected: Vec<RejectedSpan>,
}

/// A task span that cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RejectedSpan {
    /// The span: `<trace_id>:<span_id>` in lowercase hex, and its name.
    pub span: String,
    /// Why it was refused, naming the field.
    pub reason: String,
}

impl std::fmt::Display for RejectedSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "span {}: {}", self.span, self.reason)
    }
}

/// Maps every span of a trace export: tasks, ignored spans and rejected
/// ones. Nothing is stored; hand [`SpanTasks::tasks`] to
/// [`MetricsStorage::store_task_metrics`](crate::MetricsStorage::store_task_metrics).
pub fn tasks_from_spans(request: &ExportTraceServiceRequest) -> SpanTasks {
    let mut out = SpanTasks::default();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            if !is_task(span) {
                out.ignored += 1;
                continue;
            }
            match task_of(span, resource) {
                Ok(task) => out.tasks.push(task),
                Err(reason) => out.rejected.push(RejectedSpan {
                    span: format!("{} ({:?})", span_key(span), span.name),
                    reason,
                }),
            }
        }
    }
    out
}

/// A span is a task when it invokes an agent or names its task.
fn is_task(span: &Span) -> bool {
    text(&span.attributes, OPERATION).as_deref() == Some(INVOKE_AGENT)
        || attribute(&span.attributes, TASK_ID).is_some()
}

/// `<trace_id>:<span_id>`, lowercase hex.
fn span_key(span: &Span) -> String {
    format!("{}:{}", hex(&span.trace_id), hex(&span.span_id))
}

/// The span's trace and span ids, kept with its task; `None` when the
/// span has none (or all-zero ones, W3C's "no id"), an error when they
/// are not 16 and 8 bytes.
fn trace_of(span: &Span) -> Result<Option<TraceIds>, String> {
    if span.trace_id.is_empty() && span.span_id.is_empty() {
        return Ok(None);
    }
    let (Ok(trace_id), Ok(span_id)) = (
        <[u8; 16]>::try_from(span.trace_id.as_slice()),
        <[u8; 8]>::try_from(span.span_id.as_slice()),
    ) else {
        return Err(format!(
            "trace_id and span_id must be 16 and 8 bytes, not {} and {}",
            span.trace_id.len(),
            span.span_id.len()
        ));
    };
    let ids = TraceIds::new(trace_id, span_id);
    Ok(ids.validate().is_ok().then_some(ids))
}

fn task_of(span: &Span, resource: &[KeyValue]) -> Result<TaskMetric, String> {
    let attrs = &span.attributes;
    let task_id = match text(attrs, TASK_ID) {
        Some(id) => id,
        None if span.trace_id.is_empty() || span.span_id.is_empty() => {
            return Err(format!(
                "no {TASK_ID} and no trace_id/span_id to name the task by"
            ))
        }
        None => span_key(span),
    };
    let agent_id = text(attrs, "gen_ai.agent.id")
        .or_else(|| text(attrs, "gen_ai.agent.name"))
        .or_else(|| text(resource, "service.name"))
        .ok_or_else(|| {
            "no agent: none of gen_ai.agent.id, gen_ai.agent.name or the resource's \
             service.name"
                .to_owned()
        })?;
    let swarm_id = text(attrs, SWARM_ID).or_else(|| text(resource, SWARM_ID));
    if span.end_time_unix_nano == 0 {
        return Err("end_time_unix_nano is missing".to_owned());
    }
    let nanos = span
        .end_time_unix_nano
        .checked_sub(span.start_time_unix_nano)
        .ok_or("end_time_unix_nano is before start_time_unix_nano")?;
    let timestamp = time(span.end_time_unix_nano)?;
    let usage = Usage {
        input_tokens: optional_count(attrs, "gen_ai.usage.input_tokens")?,
        output_tokens: optional_count(attrs, "gen_ai.usage.output_tokens")?,
        cache_read_tokens: optional_count(attrs, "gen_ai.usage.cache_read.input_tokens")?,
        cache_write_tokens: optional_count(attrs, "gen_ai.usage.cache_creation.input_tokens")?,
        model: text(attrs, "gen_ai.request.model").or_else(|| text(attrs, "gen_ai.response.model")),
        provider: text(attrs, "gen_ai.provider.name").or_else(|| text(attrs, "gen_ai.system")),
        cost_usd: amount(attrs, COST_USD)?,
    };
    let mut task = TaskMetric {
        task_id,
        agent_id,
        swarm_id,
        duration_ms: nanos / 1_000_000,
        result: result_of(span),
        // Completed from the breakdown below, by the token rule.
        tokens_used: 0,
        files_changed: count(attrs, FILES_CHANGED)?,
        timestamp,
        usage,
        trace: trace_of(span)?,
    };
    task.validate().map_err(|e| e.to_string())?;
    task.tokens_used = task.resolved_tokens().map_err(|e| e.to_string())?.total;
    Ok(task)
}

/// ERROR is a failure, unless `error.type` says it timed out or was
/// cancelled; OK and UNSET are successes.
fn result_of(span: &Span) -> TaskResult {
    let code = span.status.as_ref().map_or(0, |s| s.code);
    if code != StatusCode::Error as i32 {
        return TaskResult::Success;
    }
    match text(&span.attributes, "error.type")
        .as_deref()
        .map(str::trim)
    {
        Some(t) if t.eq_ignore_ascii_case("timeout") => TaskResult::Timeout,
        Some(t) if t.eq_ignore_ascii_case("cancelled") || t.eq_ignore_ascii_case("canceled") => {
            TaskResult::Cancelled
        }
        _ => TaskResult::Failure,
    }
}

fn time(unix_nanos: u64) -> Result<DateTime<Utc>, String> {
    let nanos = i64::try_from(unix_nanos)
        .map_err(|_| format!("end_time_unix_nano {unix_nanos} is out of range"))?;
    Ok(DateTime::from_timestamp_nanos(nanos))
}

fn attribute<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// A string attribute (an integer one written out), if present and not
/// blank.
fn text(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attrs, key)? {
        Value::StringValue(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A non-negative integer attribute; 0 when absent.
fn count(attrs: &[KeyValue], key: &str) -> Result<u64, String> {
    optional_count(attrs, key).map(Option::unwrap_or_default)
}

/// A non-negative amount attribute (a number, or a string of one).
fn amount(attrs: &[KeyValue], key: &str) -> Result<Option<f64>, String> {
    let value = match attribute(attrs, key) {
        None => return Ok(None),
        Some(Value::DoubleValue(d)) => *d,
        Some(Value::IntValue(i)) => *i as f64,
        Some(Value::StringValue(s)) => s
            .trim()
            .parse()
            .map_err(|_| format!("{key} is not a number ({s:?})"))?,
        Some(other) => return Err(format!("{key} is not a number ({other:?})")),
    };
    Ok(Some(value))
}

/// A non-negative integer attribute, if present.
fn optional_count(attrs: &[KeyValue], key: &str) -> Result<Option<u64>, String> {
    let n = match attribute(attrs, key) {
        None => return Ok(None),
        Some(Value::IntValue(i)) => {
            u64::try_from(*i).map_err(|_| format!("{key} is negative ({i})"))
        }
        Some(Value::StringValue(s)) => s
            .trim()
            .parse()
            .map_err(|_| format!("{key} is not a whole number ({s:?})")),
        Some(Value::DoubleValue(d)) if d.fract() == 0.0 && *d >= 0.0 && *d < 2f64.powi(63) => {
            Ok(*d as u64)
        }
        Some(other) => Err(format!("{key} is not a whole number ({other:?})")),
    }?;
    Ok(Some(n))
}
