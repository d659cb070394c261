//! `serve`: the store over HTTP, for what cannot link the crate.
//!
//! One process holds the store open; each request's store work runs on
//! tokio's blocking threads (the store is synchronous), the connections on
//! its async workers. Safety first: loopback unless a token guards every
//! endpoint, bodies capped before they are read whole, slow clients cut
//! off, no panic reaching a connection, and on SIGTERM the listener
//! closes, requests in flight finish and the store is closed.

mod api;
mod body;
mod events;
mod ingest;
mod routes;
mod traces;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use swarm_metrics::{MetricsStorage, Rules};

use crate::args::ServeArgs;
use crate::parse::parse_span;
use crate::{Context, Failure};

/// How long requests in flight may take to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(30);

/// What every request is served from.
pub struct Server {
    /// The store, open for the server's life.
    pub store: Arc<MetricsStorage>,
    /// The bearer token every endpoint but /health needs, if any.
    pub token: Option<String>,
    /// The largest body taken, in bytes (after gzip is undone).
    pub max_body: usize,
    /// How long a client may take to send its body.
    pub read_timeout: Duration,
    /// Bodies read or handled at once: memory for bodies stays under this
    /// many times `max_body` (twice for gzip), however many clients send.
    pub readers: Arc<tokio::sync::Semaphore>,
    /// Where stored batches and alert transitions are announced.
    pub events: events::Hub,
}

/// `serve`: runs until SIGTERM or Ctrl-C.
pub fn run(cx: &Context, args: ServeArgs) -> Result<ExitCode, Failure> {
    let addr: SocketAddr = args.listen.parse().map_err(|e| {
        Failure::Usage(format!(
            "--listen {:?} is not an address such as 127.0.0.1:9464: {e}",
            args.listen
        ))
    })?;
    let token = args.token_file.as_deref().map(read_token).transpose()?;
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(Failure::Usage(format!(
            "--listen {addr}: refusing to serve beyond this machine without --token-file \
             (anyone who can reach it could store and read metrics)"
        )));
    }
    let max_body = parse_size("--max-body", &args.max_body)?;
    let read_timeout = std_span("--read-timeout", &args.read_timeout)?;
    let eval_every = std_span("--eval-every", &args.eval_every)?;
    let rules = args.rules.as_deref().map(Rules::from_path).transpose()?;
    let store = MetricsStorage::builder(&cx.db)
        .busy_timeout(cx.busy)
        .open()?;
    let server = Arc::new(Server {
        store: Arc::new(store),
        token,
        max_body,
        read_timeout,
        readers: Arc::new(tokio::sync::Semaphore::new(body_readers())),
        events: events::Hub::new(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Operational(format!("cannot start the server's runtime: {e}")))?;
    let served = runtime.block_on(serve(Arc::clone(&server), addr, rules, eval_every));
    // Requests still running on blocking threads after the drain are
    // given as long again, then abandoned: the store's transactions are
    // all or nothing, so an abandoned one leaves nothing half written.
    runtime.shutdown_timeout(DRAIN);
    served?;
    let Ok(server) = Arc::try_unwrap(server) else {
        return Ok(ExitCode::SUCCESS);
    };
    if let Ok(store) = Arc::try_unwrap(server.store) {
        store.close()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Accepts connections until a stop signal, then drains them.
async fn serve(
    server: Arc<Server>,
    addr: SocketAddr,
    rules: Option<Rules>,
    eval_every: Duration,
) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::Operational(format!("--listen {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::Operational(format!("--listen {addr}: {e}")))?;
    // The first line on stdout says where to connect (port 0 picks one).
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{local}")?;
    stdout.flush()?;
    if let Some(rules) = rules {
        tokio::spawn(events::evaluate_every(
            Arc::clone(&server),
            rules,
            eval_every,
        ));
    }
    let app = routes::router(Arc::clone(&server));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(server.read_timeout);
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a
                        // little rather than spin.
                        eprintln!("swarm-metrics: accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let service = TowerToHyperService::new(app.clone());
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    // A client that goes away is its own business.
                    let _ = connection.await;
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    // Event streams never end by themselves: end them, so that the drain
    // waits only for requests.
    server.events.close();
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!(
            "swarm-metrics: requests still running {}s after the stop signal were abandoned",
            DRAIN.as_secs()
        );
    }
    Ok(())
}

/// Bodies read at once: two per core, at least four.
fn body_readers() -> usize {
    std::thread::available_parallelism().map_or(4, |n| (2 * n.get()).max(4))
}

/// SIGTERM or Ctrl-C.
async fn stop_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// The token in `path`, without surrounding white space.
fn read_token(path: &Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("--token-file {}: {e}", path.display())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Failure::Usage(format!(
            "--token-file {}: the file is empty",
            path.display()
        )));
    }
    Ok(token.to_owned())
}

/// A span such as `30s` as a standard duration.
fn std_span(flag: &str, text: &str) -> Result<Duration, Failure> {
    parse_span(flag, text)?
        .to_std()
        .map_err(|_| Failure::Usage(format!("{flag} {text:?} must be positive")))
}

/// A size in bytes: a number, optionally with a KiB, MiB or GiB suffix.
pub fn parse_size(flag: &str, text: &str) -> Result<usize, Failure> {
    let bad = || {
        Failure::Usage(format!(
            "{flag} {text:?} is not a size such as 32MiB, 512KiB or 1048576"
        ))
    };
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let n: usize = digits.parse().map_err(|_| bad())?;
    let unit = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    match n.checked_mul(unit) {
        Some(0) => Err(Failure::Usage(format!("{flag} must be more than 0 bytes"))),
        Some(bytes) => Ok(bytes),
        None => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("--max-body", "32MiB").unwrap(), 32 << 20);
        assert_eq!(parse_size("--max-body", "512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("--max-body", "1000").unwrap(), 1000);
        for bad in [
            "",
            "0",
            "MiB",
            "1.5MiB",
            "12MB",
            "-1",
            "99999999999999999999GiB",
        ] {
            assert!(parse_size("--max-body", bad).is_err(), "{bad}");
        }
    }
}
