//! The endpoints, and the checks every request passes first.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use swarm_metrics::{Filter, MetricsStorage};
use tower_http::catch_panic::CatchPanicLayer;

use super::api::{self, TOKEN_PARAMETER};
use super::body::{self, ApiError, Encoding};
use super::ingest::{ingest, Announced};
use super::traces::{self, Format};
use super::Server;
use crate::args::Command;
use crate::{export, maintain, transfer};

/// Query parameters in their order, repeated ones kept.
type Params = Query<Vec<(String, String)>>;

/// Every endpoint, behind the token check and a panic guard.
pub fn router(server: Arc<Server>) -> Router {
    let routes = Router::new()
        .route("/v1/traces", post(traces_endpoint))
        .route("/ingest", post(ingest_endpoint))
        .route("/metrics", get(metrics))
        .route("/api/v1/{question}", get(question))
        .route("/report", get(report))
        .route("/events", get(events))
        .route("/health", get(health));
    // Debug builds (the tests') can make a handler panic, on the request's
    // task or on a blocking thread, to show that the guards answer it.
    #[cfg(debug_assertions)]
    let routes = routes
        .route(
            "/debug/panic",
            get(|| async { panic!("a handler panicked on purpose") as &'static str }),
        )
        .route(
            "/debug/panic-blocking",
            get(|| async {
                tokio::task::spawn_blocking(|| -> &'static str {
                    panic!("a blocking task panicked on purpose")
                })
                .await
                .map_err(ApiError::lost)
            }),
        );
    routes
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(middleware::from_fn_with_state(
            Arc::clone(&server),
            authorize,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the request failed unexpectedly; the store is unchanged by it",
            )
            .into_response()
        }))
        .with_state(server)
}

/// With a token, every endpoint but /health needs it: as `Authorization:
/// Bearer TOKEN`, or (for a browser's page and event stream, which cannot
/// set headers) as the `access_token` query parameter.
async fn authorize(State(server): State<Arc<Server>>, request: Request, next: Next) -> Response {
    let Some(token) = &server.token else {
        return next.run(request).await;
    };
    if request.uri().path() == "/health" || carries(&request, token) {
        return next.run(request).await;
    }
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "this server needs its token: Authorization: Bearer TOKEN",
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

fn carries(request: &Request, token: &str) -> bool {
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let from_query = request.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, _)| *name == TOKEN_PARAMETER)
            .map(|(_, value)| value)
    });
    from_header
        .into_iter()
        .chain(from_query)
        .any(|given| same(given.as_bytes(), token.as_bytes()))
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Runs `work` on a blocking thread with the store.
async fn with_store<T, F>(server: &Server, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&MetricsStorage) -> Result<T, ApiError> + Send + 'static,
{
    let store = Arc::clone(&server.store);
    tokio::task::spawn_blocking(move || work(&store))
        .await
        .map_err(ApiError::lost)?
}

fn json_bytes(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// Reads the request's body (within limits, gzip undone), hands it with
/// the store to `work` on a blocking thread, and announces the tasks it
/// stored. The body keeps its turn among those read at once until `work`
/// is done with it.
async fn store_body<T, F>(
    server: &Arc<Server>,
    headers: &HeaderMap,
    request: Body,
    work: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&MetricsStorage, &[u8]) -> Result<Announced<T>, ApiError> + Send + 'static,
{
    let encoding = Encoding::of(headers)?;
    let received = body::read(server, headers, request).await?;
    let max_body = server.max_body;
    let announced = with_store(server, move |store| {
        work(store, &body::decoded(&received, encoding, max_body)?)
    })
    .await?;
    if let Some(event) = &announced.event {
        server.events.send("task", event);
    }
    Ok(announced.answer)
}

async fn traces_endpoint(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    request: Body,
) -> Response {
    let format = match Format::of(&headers) {
        Ok(format) => format,
        Err(e) => return traces::failure(Format::Json, e),
    };
    let exported = store_body(&server, &headers, request, move |store, body| {
        traces::export(store, format, body)
    })
    .await;
    match exported {
        Ok(exported) => exported.into_response(),
        Err(e) => traces::failure(format, e),
    }
}

async fn ingest_endpoint(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let report = store_body(&server, &headers, request, ingest).await?;
    Ok(Json(report).into_response())
}

/// The exposition in the Prometheus text format, or in OpenMetrics when
/// the scraper asks for it (every family is a gauge, which both write
/// alike; OpenMetrics adds its `# EOF`).
async fn metrics(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    let mut text = with_store(&server, |store| {
        let mut out = Vec::new();
        export::prometheus(store, &mut out, None, &Filter::default())?;
        Ok(out)
    })
    .await?;
    let content_type = if openmetrics {
        text.extend_from_slice(b"# EOF\n");
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

async fn question(
    State(server): State<Arc<Server>>,
    Path(name): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let command = api::question(&name, params)?;
    let answer = with_store(&server, move |store| Ok(api::answer(store, command)?)).await?;
    Ok(json_bytes(answer))
}

async fn report(
    State(server): State<Arc<Server>>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let Command::Report(args) = api::command(&["report"], &params)? else {
        return Err(ApiError::bad_request("not a report"));
    };
    let page = with_store(&server, move |store| {
        Ok(transfer::report_of(store, args)?.to_html())
    })
    .await?;
    Ok(Html(live(page)).into_response())
}

/// The report's page, redrawn whenever `/events` says tasks arrived or an
/// alert moved: the page fetches itself again and swaps in its new main
/// part, at most once per second.
fn live(page: String) -> String {
    const SCRIPT: &str = r#"<script>(function () {
  var token = new URLSearchParams(location.search).get("access_token");
  var source = new EventSource("/events" + (token ? "?access_token=" + encodeURIComponent(token) : ""));
  var busy = false, again = false, redraws = 0;
  function redraw() {
    if (busy) { again = true; return; }
    busy = true; again = false;
    fetch(location.href, { cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        var main = document.querySelector("main");
        if (next) { if (main) { main.replaceWith(next); } redraws += 1; }
        document.documentElement.setAttribute("data-redraws", String(redraws));
      })
      .catch(function () {})
      .finally(function () { setTimeout(function () { busy = false; if (again) { redraw(); } }, 1000); });
  }
  source.addEventListener("task", redraw);
  source.addEventListener("alert", redraw);
})();</script>"#;
    match page.find("</head>") {
        Some(at) => {
            let mut live = String::with_capacity(page.len() + SCRIPT.len());
            live.push_str(&page[..at]);
            live.push_str(SCRIPT);
            live.push_str(&page[at..]);
            live
        }
        None => page,
    }
}

async fn events(State(server): State<Arc<Server>>) -> impl IntoResponse {
    server.events.subscribe()
}

async fn health(
    State(server): State<Arc<Server>>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let Command::Health(args) = api::command(&["health"], &params)? else {
        return Err(ApiError::bad_request("not a health check"));
    };
    let options = maintain::health_options(&args)?;
    let health = with_store(&server, move |store| Ok(store.health(&options))).await?;
    let status = if health.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, Json(health)).into_response())
}
