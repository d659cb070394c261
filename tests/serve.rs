//! `swarm-metrics serve`, as a client sees it: the real binary on a free
//! port, spoken to over TCP. Each endpoint's answers are compared with the
//! command line's over the same file; hostile requests (oversized,
//! endless, slow, malformed, unauthenticated) get their 4xx and store
//! nothing; SIGTERM drains and closes.
#![cfg(all(feature = "cli", unix))]

mod common;
#[path = "common/serving.rs"]
mod serving;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use std::process::Command;
use std::time::{Duration, Instant};

use prost::Message;
use swarm_metrics::otlp::proto::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use swarm_metrics::otlp::proto::common::v1::{any_value, AnyValue, KeyValue};
use swarm_metrics::otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};

use serving::{agent, answer, cli, json, Server, BIN};

/// JSON Lines of `n` tasks for agents a0..a2, an hour ago onwards.
fn lines(n: usize, prefix: &str) -> String {
    let start = chrono::Utc::now() - chrono::Duration::hours(1);
    let results = [
        "success",
        "success",
        "failure",
        "timeout",
        "success",
        "cancelled",
    ];
    (0..n)
        .map(|i| {
            format!(
                "{{\"kind\":\"task\",\"task_id\":\"{prefix}{i}\",\"agent_id\":\"a{}\",\
                 \"swarm_id\":\"s{}\",\"duration_ms\":{},\"result\":\"{}\",\
                 \"tokens_used\":{},\"timestamp\":\"{}\"}}\n",
                i % 3,
                i % 2,
                100 + (i * 37) % 900,
                results[i % results.len()],
                i * 11,
                (start + chrono::Duration::seconds(i as i64)).to_rfc3339()
            )
        })
        .collect()
}

fn task_count(server: &Server) -> u64 {
    let (status, body) = server.get("/api/v1/success-rate");
    assert_eq!(status, 200, "{body}");
    json(&body)["total"].as_u64().unwrap()
}

#[test]
fn ingest_answers_as_import_does_all_or_nothing_and_once() {
    let server = Server::start(&[]);
    let body = lines(50, "t");
    let (status, first) = server.post("/ingest", "application/x-ndjson", body.as_bytes());
    assert_eq!(status, 200, "{first}");
    // The same lines through `import --json` into another file.
    let other = tempfile::tempdir().unwrap();
    let file = other.path().join("in.jsonl");
    std::fs::write(&file, &body).unwrap();
    let (_, imported, _) = cli(
        &other.path().join("o.db"),
        &["--json", "import", file.to_str().unwrap()],
    );
    assert_eq!(json(&first), json(&imported));
    assert_eq!(json(&first)["tasks"]["stored"], 50);

    // Sent again: nothing new.
    let (status, again) = server.post("/ingest", "application/x-ndjson", body.as_bytes());
    assert_eq!(status, 200);
    assert_eq!(json(&again)["imported"], 0);
    assert_eq!(json(&again)["duplicates"], 50);

    // One bad line refuses the request whole, naming the line.
    let mut bad = lines(5, "u");
    bad.push_str("{\"kind\":\"task\",\"task_id\":\"x\"}\n");
    let (status, refused) = server.post("/ingest", "application/x-ndjson", bad.as_bytes());
    assert_eq!(status, 400, "{refused}");
    assert!(json(&refused)["error"]
        .as_str()
        .unwrap()
        .contains("line 6:"));
    assert_eq!(task_count(&server), 50);
}

#[test]
fn questions_answer_as_the_command_line_does() {
    let server = Server::start(&[]);
    let (status, _) = server.post("/ingest", "application/x-ndjson", lines(90, "t").as_bytes());
    assert_eq!(status, 200);
    let asked = [
        (
            "success-rate?by=agent",
            vec!["success-rate", "--by", "agent"],
        ),
        (
            "success-rate?agent=a1&since=24h",
            vec!["success-rate", "--agent", "a1", "--since", "24h"],
        ),
        (
            "aggregate?agg=avg&by=swarm",
            vec!["aggregate", "--agg", "avg", "--by", "swarm"],
        ),
        (
            "percentile?p=95&by=agent",
            vec!["aggregate", "--agg", "p95", "--by", "agent"],
        ),
        ("top?by=success-rate", vec!["top", "--by", "success-rate"]),
        ("slowest?n=3", vec!["slowest", "-n", "3"]),
        ("summary", vec!["summary"]),
        ("outliers", vec!["outliers"]),
        (
            "compare?agent=a0&with_agent=a1",
            vec!["compare", "--agent", "a0", "--with-agent", "a1"],
        ),
        ("alerts", vec!["alerts", "list"]),
    ];
    for (path, args) in asked {
        let (status, body) = server.get(&format!("/api/v1/{path}"));
        assert_eq!(status, 200, "{path}: {body}");
        let mut cli_args = vec!["--json"];
        cli_args.extend(args);
        let (code, stdout, stderr) = cli(&server.db, &cli_args);
        assert_eq!(code, 0, "{path}: {stderr}");
        assert_eq!(json(&body), json(&stdout), "{path}");
    }
    // `stats` gives sizes, which move as the WAL does: compare the rows.
    let (_, stats) = server.get("/api/v1/stats");
    let (_, cli_stats, _) = cli(&server.db, &["--json", "stats"]);
    for kind in ["task_metrics", "agent_metrics", "swarm_metrics"] {
        assert_eq!(json(&stats)[kind], json(&cli_stats)[kind], "{kind}");
    }
    assert_eq!(json(&stats)["task_metrics"]["rows"], 90);

    // A bad parameter is a 400 with the command line's message.
    let (status, body) = server.get("/api/v1/success-rate?by=planet");
    assert_eq!(status, 400);
    let (code, _, stderr) = cli(&server.db, &["success-rate", "--by", "planet"]);
    assert_eq!(code, 2);
    let message = json(&body)["error"].as_str().unwrap().to_owned();
    assert!(
        message.contains("invalid value 'planet' for '--by <BY>'"),
        "{message}"
    );
    assert!(
        stderr.contains("invalid value 'planet' for '--by <BY>'"),
        "{stderr}"
    );
    for (path, status) in [
        ("/api/v1/success-rate?since=yesterday", 400),
        ("/api/v1/success-rate?db=/etc/passwd", 400),
        ("/api/v1/percentile", 400),
        ("/api/v1/drop-table", 404),
        ("/nowhere", 404),
    ] {
        assert_eq!(server.get(path).0, status, "{path}");
    }
}

#[test]
fn metrics_are_the_prometheus_export_and_health_says_200_or_503() {
    let server = Server::start(&[]);
    server.post("/ingest", "application/x-ndjson", lines(30, "t").as_bytes());
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    let (_, exported, _) = cli(&server.db, &["export", "--format", "prometheus"]);
    assert_eq!(metrics, exported);
    assert!(metrics.contains("swarm_tasks{agent=\"a0\",swarm=\"s0\",result=\"success\"}"));
    // OpenMetrics when asked for: the same families, and `# EOF`.
    let (status, openmetrics) = answer(
        agent()
            .get(&server.url("/metrics"))
            .header(
                "Accept",
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
            )
            .call(),
    );
    assert_eq!(status, 200);
    assert_eq!(openmetrics, format!("{exported}# EOF\n"));

    let (status, health) = server.get("/health?stale_after=2h");
    assert_eq!(status, 200, "{health}");
    assert_eq!(json(&health)["healthy"], true);
    // The tasks are an hour old at most: stale after a minute.
    let (status, health) = server.get("/health?stale_after=1m");
    assert_eq!(status, 503, "{health}");
    assert!(health.contains("stale:s0"), "{health}");
}

fn attr(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// An export of `n` spans: every one an `invoke_agent` span but the
/// first (a plain span, ignored), the second without an agent (rejected).
fn spans(n: u8) -> ExportTraceServiceRequest {
    let end = u64::try_from(chrono::Utc::now().timestamp_nanos_opt().unwrap()).unwrap();
    let spans = (0..n)
        .map(|i| {
            let mut attributes = vec![];
            if i != 0 {
                attributes.push(attr(
                    "gen_ai.operation.name",
                    any_value::Value::StringValue("invoke_agent".into()),
                ));
            }
            if i != 1 {
                attributes.push(attr(
                    "gen_ai.agent.name",
                    any_value::Value::StringValue(format!("otel-{}", i % 2)),
                ));
            }
            attributes.push(attr(
                "gen_ai.usage.input_tokens",
                any_value::Value::IntValue(10),
            ));
            Span {
                trace_id: vec![7; 16],
                span_id: vec![0, 0, 0, 0, 0, 0, 1, i],
                name: "invoke_agent".into(),
                start_time_unix_nano: end - 5_000_000,
                end_time_unix_nano: end,
                attributes,
                ..Span::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn otlp_exports_store_their_task_spans_once_in_any_encoding() {
    let server = Server::start(&[]);
    let request = spans(10);
    let protobuf = request.encode_to_vec();
    let mut response = agent()
        .post(&server.url("/v1/traces"))
        .header("Content-Type", "application/x-protobuf")
        .send(&protobuf[..])
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let body = response.body_mut().read_to_vec().unwrap();
    let response = ExportTraceServiceResponse::decode(&body[..]).unwrap();
    let partial = response.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("no agent"),
        "{}",
        partial.error_message
    );
    assert_eq!(task_count(&server), 8);

    // The same spans again, as OTLP JSON and gzipped: nothing new.
    let text = serde_json::to_vec(&request).unwrap();
    let response = agent()
        .post(&server.url("/v1/traces"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .send(&gzip(&text)[..])
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-swarm-ignored-spans"], "1");
    let (_, body) = answer(Ok(response));
    // An int64: a string in the OTLP JSON encoding, a number also read.
    let rejected = &json(&body)["partialSuccess"]["rejectedSpans"];
    assert!(rejected == "1" || rejected == 1, "{body}");
    assert_eq!(task_count(&server), 8);

    // Bad exports: 4xx with a google.rpc.Status in the request's encoding
    // (JSON for an unknown one) naming the problem; nothing stored.
    for (content_type, body, status, named) in [
        (
            "application/x-protobuf",
            b"\xff\xff\xff\xff".to_vec(),
            400,
            "protobuf",
        ),
        (
            "application/json",
            b"{\"resourceSpans\": 3}".to_vec(),
            400,
            "resourceSpans",
        ),
        ("text/plain", protobuf.clone(), 415, "text/plain"),
    ] {
        let mut response = agent()
            .post(&server.url("/v1/traces"))
            .header("Content-Type", content_type)
            .send(&body[..])
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{content_type}");
        let answered = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let bytes = response.body_mut().read_to_vec().unwrap();
        let (code, message) = if content_type == "application/x-protobuf" {
            assert_eq!(answered, "application/x-protobuf");
            let status = RpcStatus::decode(&bytes[..]).unwrap();
            (status.code, status.message)
        } else {
            assert_eq!(answered, "application/json");
            let status = json(&String::from_utf8(bytes).unwrap());
            (
                status["code"].as_i64().unwrap() as i32,
                status["message"].as_str().unwrap().to_owned(),
            )
        };
        assert_eq!(code, 3, "{content_type}: INVALID_ARGUMENT");
        assert!(message.contains(named), "{content_type}: {message}");
    }
    assert_eq!(task_count(&server), 8);
}

/// A handler that panics, on its task or on a blocking thread, answers 500
/// with an error body; the connection gets its answer, and the server goes
/// on serving. (The panicking endpoints exist in debug builds only.)
#[test]
fn a_panicking_handler_is_a_500_and_the_server_goes_on() {
    let server = Server::start(&[]);
    for path in ["/debug/panic", "/debug/panic-blocking"] {
        let (status, body) = server.get(path);
        assert_eq!(status, 500, "{path}: {body}");
        assert!(json(&body)["error"].as_str().is_some(), "{path}: {body}");
    }
    let (status, body) = server.post("/ingest", "application/x-ndjson", lines(5, "p").as_bytes());
    assert_eq!(status, 200, "{body}");
    assert_eq!(task_count(&server), 5);
    let (status, body) = server.get("/api/v1/success-rate");
    assert_eq!(
        (status, json(&body)["total"].as_u64()),
        (200, Some(5)),
        "{body}"
    );
}

/// `google.rpc.Status`, as an OTLP exporter decodes an error body.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// A request written by hand, to send what a client library would not.
fn raw(server: &Server, request: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    stream
}

/// The status line's code of what the server sent back.
fn status_of(stream: &mut TcpStream) -> u16 {
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

#[test]
fn oversized_endless_and_inflating_bodies_get_413_before_they_are_read_whole() {
    let server = Server::start(&["--max-body", "64KiB"]);
    // Declared too large: refused without a byte of the body sent.
    let mut declared = raw(
        &server,
        b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n",
    );
    assert_eq!(status_of(&mut declared), 413);

    // Endless chunked body: refused once it passes the limit.
    let mut endless = raw(
        &server,
        b"POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
    let mut refused = None;
    for _ in 0..64 {
        if endless.write_all(chunk.as_bytes()).is_err() {
            break;
        }
        endless
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut head = [0u8; 12];
        if endless.read_exact(&mut head).is_ok() {
            refused = Some(std::str::from_utf8(&head[9..12]).unwrap().to_owned());
            break;
        }
    }
    assert_eq!(refused.as_deref(), Some("413"));

    // A small gzip body that inflates past the limit.
    let bomb = gzip(&vec![b'\n'; 10 << 20]);
    assert!(bomb.len() < 64 << 10);
    let response = agent()
        .post(&server.url("/ingest"))
        .header("Content-Encoding", "gzip")
        .send(&bomb[..])
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    assert_eq!(task_count(&server), 0);
}

#[test]
fn slow_clients_are_cut_off() {
    let server = Server::start(&["--read-timeout", "1s"]);
    // Headers never finished: the connection is closed.
    let mut stalled = raw(&server, b"POST /ingest HTTP/1.1\r\nHost: x\r\n");
    let mut rest = Vec::new();
    let started = Instant::now();
    let _ = stalled.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(20));
    // A body that stops half-way: 408.
    let mut slow = raw(
        &server,
        b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"kind\"",
    );
    assert_eq!(status_of(&mut slow), 408);
    // The server still answers others.
    assert_eq!(server.get("/health").0, 200);
}

#[test]
fn a_token_guards_everything_but_health_and_other_addresses_need_one() {
    let dir = tempfile::tempdir().unwrap();
    let refused = Command::new(BIN)
        .arg("--db")
        .arg(dir.path().join("s.db"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--token-file"));

    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let server = Server::start(&["--token-file", token.to_str().unwrap()]);
    assert_eq!(server.get("/api/v1/summary").0, 401);
    assert_eq!(server.get("/metrics").0, 401);
    assert_eq!(server.post("/ingest", "application/x-ndjson", b"").0, 401);
    assert_eq!(server.get("/health").0, 200);
    let (status, _) = answer(
        agent()
            .get(&server.url("/api/v1/summary"))
            .header("Authorization", "Bearer s3cret")
            .call(),
    );
    assert_eq!(status, 200);
    let (status, _) = answer(
        agent()
            .get(&server.url("/api/v1/summary"))
            .header("Authorization", "Bearer s3cre")
            .call(),
    );
    assert_eq!(status, 401);
    assert_eq!(server.get("/api/v1/summary?access_token=s3cret").0, 200);
}

#[test]
fn events_announce_each_stored_batch() {
    let server = Server::start(&[]);
    let stream = raw(&server, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    // The stream is open once its headers are through.
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    server.post("/ingest", "application/x-ndjson", lines(6, "t").as_bytes());
    let mut seen = String::new();
    while !seen.contains("\"stored\":6") {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "stream ended: {seen}"
        );
        seen.push_str(&line);
    }
    assert!(seen.contains("event: task"), "{seen}");
    assert!(
        seen.contains("\"a0\":{\"success\":1,\"timeout\":1}"),
        "{seen}"
    );
    drop(stream.shutdown(std::net::Shutdown::Both));
}

#[test]
fn sigterm_finishes_requests_in_flight_ends_streams_and_closes_the_store() {
    let mut server = Server::start(&[]);
    let _events = raw(&server, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
    let body = lines(20_000, "t");
    // A request whose body is through before the signal.
    let request = format!(
        "POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut in_flight = raw(&server, request.as_bytes());
    std::thread::sleep(Duration::from_millis(50));
    let db = server.db.clone();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let mut response = String::new();
    in_flight.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // Closed: the WAL is folded into the file and removed.
    assert!(!db.with_extension("db-wal").exists());
    let (code, stdout, stderr) = cli(&db, &["--json", "success-rate"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["total"], 20_000);
}

#[test]
fn with_rules_each_alert_transition_is_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"agent-success\"\nkind = \"success_rate\"\ngroup_by = \"agent\"\n\
         window = \"1h\"\nbelow = 0.85\nfor = \"0s\"\nseverity = \"page\"\n",
    )
    .unwrap();
    let db = dir.path().join("s.db");
    let server = Server::start_on(
        dir,
        db,
        &["--rules", rules.to_str().unwrap(), "--eval-every", "1s"],
    );
    let stream = raw(&server, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    // Thirty failures of agent "bad" in the last hour: its interval lies
    // wholly below 0.85, so the next evaluation fires it.
    let now = chrono::Utc::now();
    let failures: String = (0..30)
        .map(|i| {
            format!(
                "{{\"kind\":\"task\",\"task_id\":\"f{i}\",\"agent_id\":\"bad\",\"duration_ms\":5,\
                 \"result\":\"failure\",\"timestamp\":\"{}\"}}\n",
                (now - chrono::Duration::seconds(i)).to_rfc3339()
            )
        })
        .collect();
    let (status, _) = server.post("/ingest", "application/x-ndjson", failures.as_bytes());
    assert_eq!(status, 200);
    let mut seen = String::new();
    let mut line = String::new();
    while !(seen.contains("event: alert") && seen.contains("\"state\":\"firing\"")) {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "stream ended: {seen}"
        );
        seen.push_str(&line);
    }
    assert!(seen.contains("\"alertname\":\"agent-success\""), "{seen}");
    assert!(seen.contains("\"agent\":\"bad\""), "{seen}");
    let (_, states) = server.get("/api/v1/alerts");
    assert!(states.contains("firing"), "{states}");
}

/// The same requests on every backend this build has (a file; with the
/// `postgres` feature, a server database too): each answers as the
/// command line does over the same store.
#[test]
fn every_backend_serves_ingest_spans_and_questions() {
    for test in common::server::stores() {
        let server = Server::start_at(&test.location, &[]);
        let (status, body) =
            server.post("/ingest", "application/x-ndjson", lines(60, "t").as_bytes());
        assert_eq!(status, 200, "{}: {body}", test.backend);
        let (status, body) = server.post(
            "/v1/traces",
            "application/json",
            &serde_json::to_vec(&spans(6)).unwrap(),
        );
        assert_eq!(status, 200, "{}: {body}", test.backend);
        assert_eq!(task_count(&server), 64, "{}", test.backend);
        for (path, args) in [
            (
                "success-rate?by=agent",
                vec!["success-rate", "--by", "agent"],
            ),
            ("summary", vec!["summary"]),
        ] {
            let (_, body) = server.get(&format!("/api/v1/{path}"));
            let mut cli_args = vec!["--json"];
            cli_args.extend(args);
            let (code, stdout, stderr) = cli(std::path::Path::new(&test.location), &cli_args);
            assert_eq!(code, 0, "{}: {stderr}", test.backend);
            assert_eq!(json(&body), json(&stdout), "{}: {path}", test.backend);
        }
    }
}
