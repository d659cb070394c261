//! Requests' bodies read within limits, and the errors a request can end
//! in.

use std::io::Read;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;

use super::Server;
use crate::Failure;

/// A request that failed: its status and a message naming the problem,
/// sent as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over --max-body ({limit} bytes)"),
        )
    }

    /// A task on a blocking thread that did not return (it panicked).
    pub fn lost(e: tokio::task::JoinError) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request's work failed: {e}"),
        )
    }
}

impl From<Failure> for ApiError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Usage(message) => ApiError::bad_request(message),
            Failure::Operational(message) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
            }
            Failure::BrokenPipe => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the answer was cut off")
            }
        }
    }
}

impl From<swarm_metrics::Error> for ApiError {
    fn from(e: swarm_metrics::Error) -> Self {
        Failure::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

/// The body as sent, refused with 413 past `max_body` (at once when its
/// Content-Length says so, else as soon as it grows past it) and with 408
/// when it does not arrive within `read_timeout` (waiting for a turn to
/// be read included: only so many bodies are read at once). Still gzipped
/// if it was: see [`decoded`].
pub async fn read(server: &Server, headers: &HeaderMap, body: Body) -> Result<Received, ApiError> {
    let limit = server.max_body;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let collect = async {
        let turn = Arc::clone(&server.readers).acquire_owned().await;
        (turn, Limited::new(body, limit).collect().await)
    };
    let collected = tokio::time::timeout(server.read_timeout, collect)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within --read-timeout ({}s)",
                    server.read_timeout.as_secs()
                ),
            )
        })?;
    let (turn, collected) = collected;
    // The semaphore is never closed, so a turn always comes.
    let turn = turn.map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
    match collected {
        Ok(collected) => Ok(Received {
            bytes: collected.to_bytes(),
            _turn: turn,
        }),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::too_large(limit)),
        Err(e) => Err(ApiError::bad_request(format!("reading the body: {e}"))),
    }
}

/// A body read whole, and its turn among the bodies read or handled at
/// once, given back when this is dropped (once the request is done with
/// it).
pub struct Received {
    pub bytes: Bytes,
    _turn: OwnedSemaphorePermit,
}

/// How a body is encoded, from its Content-Encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    /// The body's encoding; 415 for one not taken.
    pub fn of(headers: &HeaderMap) -> Result<Encoding, ApiError> {
        match headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("identity") | Some("") => Ok(Encoding::Identity),
            Some("gzip") => Ok(Encoding::Gzip),
            Some(other) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {other:?} is not taken (gzip or none)"),
            )),
        }
    }
}

/// The body with gzip undone, still within `limit` (a small gzip body can
/// inflate to gigabytes: decoding stops one byte past the limit).
pub fn decoded(body: &Received, encoding: Encoding, limit: usize) -> Result<Bytes, ApiError> {
    if encoding == Encoding::Identity {
        return Ok(body.bytes.clone());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&body.bytes[..])
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid gzip: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::too_large(limit));
    }
    Ok(out.into())
}
