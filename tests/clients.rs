//! `swarm-metrics serve` against real clients no one here wrote:
//!
//! - the OpenTelemetry Python SDK with its OTLP/HTTP protobuf exporter
//!   sends `invoke_agent` spans; every one is stored as README.md's
//!   mapping says (the sender works out each expected task on its side);
//! - a real Prometheus scrapes `/metrics`, and its HTTP API's task counts
//!   by agent and result are the store's;
//! - headless Chromium keeps `/report` open while tasks arrive, and the
//!   page's task count changes without a reload.
//!
//! `scripts/test` provides them: the SDK in a virtual environment
//! (`SWARM_METRICS_OTEL_PYTHON` names its python), the distribution's
//! `prometheus` and `chromium` packages (`SWARM_METRICS_PROMETHEUS` and
//! `SWARM_METRICS_CHROMIUM` name other binaries). A missing one fails its
//! test with a message saying so.
#![cfg(all(feature = "cli", unix))]

#[path = "common/chromium.rs"]
mod chromium;
#[path = "common/serving.rs"]
mod serving;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use swarm_metrics::{Filter, GroupBy, MetricsStorage};

use serving::{agent, json as parse, Server};

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `check` until it gives a value, for at most `limit`.
fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tasks(n: usize, offset: usize) -> String {
    let now = chrono::Utc::now();
    (offset..offset + n)
        .map(|i| {
            format!(
                "{{\"kind\":\"task\",\"task_id\":\"t{i}\",\"agent_id\":\"agent-{}\",\
                 \"duration_ms\":{},\"result\":\"{}\",\"timestamp\":\"{}\"}}\n",
                i % 4,
                10 + i,
                ["success", "failure", "success", "timeout", "cancelled"][i % 5],
                (now - chrono::Duration::seconds(i as i64)).to_rfc3339()
            )
        })
        .collect()
}

#[test]
fn the_opentelemetry_python_sdk_spans_are_stored_as_the_mapping_says() {
    let python = std::env::var_os("SWARM_METRICS_OTEL_PYTHON")
        .map(PathBuf::from)
        .expect(
            "SWARM_METRICS_OTEL_PYTHON names a python with opentelemetry-sdk and \
         opentelemetry-exporter-otlp-proto-http: run scripts/test, which installs them",
        );
    let server = Server::start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/otel_send.py");
    let out = Command::new(python)
        .args([script, &server.url(""), "300"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(parse)
        .collect();
    assert_eq!(expected.len(), 300);
    let store = MetricsStorage::open(&server.db).unwrap();
    let stored: BTreeMap<String, Value> = store
        .get_task_metrics(&Filter::default(), 10_000)
        .unwrap()
        .into_iter()
        .map(|t| {
            let task = json!({
                "task_id": t.task_id,
                "agent_id": t.agent_id,
                "swarm_id": t.swarm_id,
                "duration_ms": t.duration_ms,
                "result": t.result.to_string(),
                "tokens_used": t.tokens_used,
                "files_changed": t.files_changed,
                "timestamp_us": t.timestamp.timestamp_micros(),
                "trace_id": t.trace.map(|ids| ids.trace_hex()),
                "span_id": t.trace.map(|ids| ids.span_hex()),
            });
            (t.task_id, task)
        })
        .collect();
    // Every span stored once, and nothing else (the `chat` spans are
    // not tasks).
    assert_eq!(stored.len(), 300);
    for task in &expected {
        let id = task["task_id"].as_str().unwrap();
        assert_eq!(stored.get(id), Some(task), "{id}");
    }
    let results: BTreeMap<&str, usize> = expected.iter().fold(BTreeMap::new(), |mut m, t| {
        *m.entry(t["result"].as_str().unwrap()).or_default() += 1;
        m
    });
    // The sample has every outcome the mapping knows.
    assert_eq!(results.len(), 4, "{results:?}");
}

#[test]
fn a_real_prometheus_scrapes_the_store_s_task_counts() {
    let prometheus = std::env::var_os("SWARM_METRICS_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("prometheus"));
    let server = Server::start(&[]);
    let (status, _) = server.post("/ingest", "application/x-ndjson", tasks(97, 0).as_bytes());
    assert_eq!(status, 200);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: swarm\n    \
             static_configs:\n      - targets: [\"{}\"]\n",
            server.addr
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = Killed(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e}; run scripts/test, which installs the \
                     prometheus package, or set SWARM_METRICS_PROMETHEUS",
                    prometheus.display()
                )
            }),
    );
    let query = format!(
        "http://127.0.0.1:{port}/api/v1/query?query=sum%20by%20(agent%2Cresult)%20(swarm_tasks)"
    );
    let scraped: BTreeMap<(String, String), u64> =
        eventually(Duration::from_secs(60), "Prometheus scrapes", || {
            let mut response = agent().get(&query).call().ok()?;
            let body: Value =
                serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()?;
            let series = body["data"]["result"].as_array()?;
            if series.is_empty() {
                return None;
            }
            Some(
                series
                    .iter()
                    .map(|s| {
                        let key = (
                            s["metric"]["agent"].as_str().unwrap().to_owned(),
                            s["metric"]["result"].as_str().unwrap().to_owned(),
                        );
                        (key, s["value"][1].as_str().unwrap().parse().unwrap())
                    })
                    .collect(),
            )
        });
    let store = MetricsStorage::open(&server.db).unwrap();
    let mut expected = BTreeMap::new();
    for group in store
        .success_rate_by(GroupBy::Agent, &Filter::default())
        .unwrap()
    {
        let rate = group.value;
        let agent = group.key.unwrap();
        for (result, n) in [
            ("success", rate.success),
            ("failure", rate.failure),
            ("timeout", rate.timeout),
            ("cancelled", rate.cancelled),
        ] {
            expected.insert((agent.clone(), result.to_owned()), n);
        }
    }
    assert_eq!(scraped, expected);
    assert_eq!(scraped.values().sum::<u64>(), 97);
}

/// A page's value of `expression`, through Chromium's DevTools protocol.
struct Page {
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    next_id: u64,
}

impl Page {
    fn connect(devtools_port: u16) -> Page {
        let list = format!("http://127.0.0.1:{devtools_port}/json/list");
        let url: String = eventually(Duration::from_secs(60), "Chromium's page", || {
            let mut response = agent().get(&list).call().ok()?;
            let targets: Value =
                serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()?;
            targets
                .as_array()?
                .iter()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_owned))
        });
        let (socket, _) = tungstenite::connect(url).unwrap();
        Page { socket, next_id: 1 }
    }

    fn evaluate(&mut self, expression: &str) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": {"expression": expression, "returnByValue": true},
        });
        self.socket
            .send(tungstenite::Message::text(request.to_string()))
            .unwrap();
        loop {
            let message = self.socket.read().unwrap();
            let Ok(text) = message.to_text() else {
                continue;
            };
            let Ok(reply) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if reply["id"] == id {
                return reply["result"]["result"]["value"].clone();
            }
        }
    }
}

#[test]
fn chromium_sees_the_live_report_count_tasks_as_they_arrive() {
    let server = Server::start(&[]);
    server.post("/ingest", "application/x-ndjson", tasks(30, 0).as_bytes());
    let profile = tempfile::tempdir().unwrap();
    let devtools = free_port();
    let _chromium = Killed(
        Command::new(chromium::binary())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--remote-debugging-port={devtools}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(server.url("/report"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut page = Page::connect(devtools);
    let count = "(document.querySelector('#tasks') || {dataset: {}}).dataset.value";
    eventually(Duration::from_secs(60), "the report shows 30 tasks", || {
        (page.evaluate(count) == "30").then_some(())
    });
    // Marks this load of the page: a reload would lose the mark.
    page.evaluate("window.loadedOnce = 'yes'");
    let (status, _) = server.post("/ingest", "application/x-ndjson", tasks(12, 30).as_bytes());
    assert_eq!(status, 200);
    eventually(Duration::from_secs(60), "the report shows 42 tasks", || {
        (page.evaluate(count) == "42").then_some(())
    });
    assert_eq!(page.evaluate("window.loadedOnce"), "yes");
    assert!(page
        .evaluate("document.documentElement.dataset.redraws")
        .is_string());
}
