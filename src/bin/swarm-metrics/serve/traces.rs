//! `POST /v1/traces`: OTLP/HTTP trace exports, protobuf or JSON, gzipped
//! or not; each task span stored as the mapping in `swarm_metrics::otlp`
//! says. Failures answer as OTLP/HTTP has them: a `google.rpc.Status`.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;
use swarm_metrics::otlp::proto::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use swarm_metrics::otlp::{self, RejectedSpan};
use swarm_metrics::MetricsStorage;

use super::body::ApiError;
use super::ingest::{task_event, Announced};

/// Rejected spans named in `partial_success.error_message`.
const NAMED: usize = 10;

/// How the export is encoded, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

impl Format {
    /// The export's format; 415 for any other content type.
    pub fn of(headers: &HeaderMap) -> Result<Format, ApiError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
            "application/json" => Ok(Format::Json),
            _ => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type {content_type:?} is not an OTLP/HTTP encoding \
                     (application/x-protobuf or application/json)"
                ),
            )),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// What an export answers.
pub struct Exported {
    pub format: Format,
    pub response: ExportTraceServiceResponse,
    /// Spans that were not tasks.
    pub ignored: u64,
}

/// Decodes, maps and stores one export (all its task spans in one
/// transaction). Rejected spans are counted in `partial_success` with the
/// first reasons; a body that is not an export is 400, nothing stored.
pub fn export(
    store: &MetricsStorage,
    format: Format,
    body: &[u8],
) -> Result<Announced<Exported>, ApiError> {
    let request = match format {
        Format::Protobuf => otlp::decode_protobuf(body)?,
        Format::Json => otlp::decode_json(body)?,
    };
    let mapped = otlp::tasks_from_spans(&request);
    let new = store.store_task_metrics(&mapped.tasks)?;
    let partial_success = (!mapped.rejected.is_empty()).then(|| ExportTracePartialSuccess {
        rejected_spans: mapped.rejected.len() as i64,
        error_message: reasons(&mapped.rejected),
    });
    Ok(Announced {
        answer: Exported {
            format,
            response: ExportTraceServiceResponse { partial_success },
            ignored: mapped.ignored,
        },
        event: (new > 0).then(|| task_event(&mapped.tasks, new)),
    })
}

fn reasons(rejected: &[RejectedSpan]) -> String {
    let mut text = rejected
        .iter()
        .take(NAMED)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if rejected.len() > NAMED {
        text.push_str(&format!("; and {} more", rejected.len() - NAMED));
    }
    text
}

/// `google.rpc.Status`, the body OTLP/HTTP gives every 4xx and 5xx
/// response, in the request's encoding (its `details` left out).
#[derive(Clone, PartialEq, prost::Message)]
struct Status {
    /// The gRPC status code.
    #[prost(int32, tag = "1")]
    code: i32,
    /// What went wrong, as the other endpoints say it.
    #[prost(string, tag = "2")]
    message: String,
}

/// The failure of an export as OTLP/HTTP clients read it: the HTTP status,
/// and a `Status` in the request's encoding (JSON for a content type that
/// is neither) carrying the same message as the other endpoints' errors.
pub fn failure(format: Format, error: ApiError) -> Response {
    let code = match error.status {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => 3, // INVALID_ARGUMENT
        StatusCode::UNAUTHORIZED => 16,                                    // UNAUTHENTICATED
        StatusCode::REQUEST_TIMEOUT => 4,                                  // DEADLINE_EXCEEDED
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => 8, // RESOURCE_EXHAUSTED
        StatusCode::SERVICE_UNAVAILABLE => 14,                             // UNAVAILABLE
        _ => 13,                                                           // INTERNAL
    };
    let status = Status {
        code,
        message: error.message,
    };
    let body = match format {
        Format::Protobuf => status.encode_to_vec(),
        Format::Json => serde_json::to_vec(&serde_json::json!({
            "code": status.code,
            "message": status.message,
        }))
        .unwrap_or_default(),
    };
    (
        error.status,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}

impl IntoResponse for Exported {
    fn into_response(self) -> Response {
        let body = match self.format {
            Format::Protobuf => self.response.encode_to_vec(),
            // Serializing generated message types cannot fail.
            Format::Json => serde_json::to_vec(&self.response).unwrap_or_default(),
        };
        let mut response =
            ([(header::CONTENT_TYPE, self.format.content_type())], body).into_response();
        response
            .headers_mut()
            .insert("x-swarm-ignored-spans", HeaderValue::from(self.ignored));
        response
    }
}
