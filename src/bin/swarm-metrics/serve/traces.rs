//! `POST /v1/traces`: OTLP/HTTP trace exports, protobuf or JSON, gzipped
//! or not; each task span stored as the mapping in `swarm_metrics::otlp`
//! says.

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
