//! OpenTelemetry spans as tasks (feature `otlp`).
//!
//! Agent frameworks already emit spans in the GenAI semantic conventions:
//! an `invoke_agent` span per agent invocation, with `gen_ai.agent.*` and
//! `gen_ai.usage.*` attributes. This module decodes an OTLP trace export
//! (protobuf, or the OTLP JSON encoding with hex ids) and maps each such
//! span to a [`TaskMetric`](crate::TaskMetric), following the contract in
//! README.md ("OpenTelemetry spans"):
//!
//! ```
//! use swarm_metrics::otlp::{self, proto};
//! use proto::common::v1::{any_value::Value, AnyValue, KeyValue};
//!
//! let attr = |key: &str, value: Value| KeyValue {
//!     key: key.into(),
//!     value: Some(AnyValue { value: Some(value) }),
//!     ..KeyValue::default()
//! };
//! let span = proto::trace::v1::Span {
//!     trace_id: vec![0xab; 16],
//!     span_id: vec![0xcd; 8],
//!     name: "invoke_agent planner".into(),
//!     start_time_unix_nano: 1_750_000_000_000_000_000,
//!     end_time_unix_nano: 1_750_000_001_250_000_000,
//!     attributes: vec![
//!         attr("gen_ai.operation.name", Value::StringValue("invoke_agent".into())),
//!         attr("gen_ai.agent.name", Value::StringValue("planner".into())),
//!         attr("gen_ai.usage.input_tokens", Value::IntValue(300)),
//!         attr("gen_ai.usage.output_tokens", Value::IntValue(45)),
//!     ],
//!     ..Default::default()
//! };
//! let request = proto::collector::trace::v1::ExportTraceServiceRequest {
//!     resource_spans: vec![proto::trace::v1::ResourceSpans {
//!         scope_spans: vec![proto::trace::v1::ScopeSpans {
//!             spans: vec![span],
//!             ..Default::default()
//!         }],
//!         ..Default::default()
//!     }],
//! };
//! let mapped = otlp::tasks_from_spans(&request);
//! let task = &mapped.tasks[0];
//! assert_eq!(task.agent_id, "planner");
//! assert_eq!(task.duration_ms, 1_250);
//! assert_eq!(task.tokens_used, 345);
//! assert!(task.task_id.starts_with("abababab"));
//! ```

mod mapping;

pub use mapping::{tasks_from_spans, RejectedSpan, SpanTasks};
/// The OTLP message types (generated from the OpenTelemetry protos by
/// the `opentelemetry-proto` crate), to build or inspect exports.
pub use opentelemetry_proto::tonic as proto;

use proto::collector::trace::v1::ExportTraceServiceRequest;

use crate::{Error, Result};

/// Decodes an OTLP/HTTP trace export sent as `application/x-protobuf`.
///
/// # Errors
/// [`Error::InvalidInput`] (field `body`) when the bytes are not an
/// `ExportTraceServiceRequest`, saying where decoding failed.
pub fn decode_protobuf(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    prost::Message::decode(body).map_err(|e| {
        Error::invalid(
            "body",
            format!("not an OTLP protobuf ExportTraceServiceRequest: {e}"),
        )
    })
}

/// Decodes an OTLP/HTTP trace export sent as `application/json`: the OTLP
/// JSON encoding (camelCase fields, trace and span ids as hex, 64-bit
/// integers as strings or numbers). One line of the OpenTelemetry
/// Collector's file exporter is one such document.
///
/// # Errors
/// [`Error::InvalidInput`] (field `body`) when the text is not such a
/// document, naming the JSON path that failed (such as
/// `resourceSpans[0].scopeSpans[0].spans[3].traceId`).
pub fn decode_json(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let request: ExportTraceServiceRequest =
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            Error::invalid(
                "body",
                format!("not an OTLP JSON trace export: at {path}: {}", e.inner()),
            )
        })?;
    de.end().map_err(|e| {
        Error::invalid(
            "body",
            format!("not an OTLP JSON trace export: trailing data: {e}"),
        )
    })?;
    Ok(request)
}
