//! `swarm-metrics serve` under load, beside the library's own figures in
//! the same run, on a file of 1,000,000 tasks (30 days, 100 agents):
//!
//! ```text
//! cargo bench --bench serve                          # 1,000,000 tasks
//! SWARM_BENCH_ROWS=100000 cargo bench --bench serve  # quicker
//! ```
//!
//! - `POST /ingest` in batches of 1,000 JSON Lines, from one client and
//!   from four at once, against
//!   `store_batch` of the same batches (target: at least 50%);
//! - `POST /v1/traces`, OTLP protobuf exports of 1,000 spans (target: at
//!   least 50,000 spans/s);
//! - `GET /api/v1/success-rate` latency under 64 concurrent connections
//!   (p50, p99), against `success_rate` called directly;
//! - `GET /metrics` scrape time;
//! - the server's peak memory after clients send oversized and endless
//!   bodies at once.

#[path = "../tests/common/serving.rs"]
mod serving;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prost::Message;
use swarm_metrics::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use swarm_metrics::otlp::proto::common::v1::{any_value::Value, AnyValue, KeyValue};
use swarm_metrics::otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use swarm_metrics::{Filter, MetricBatch, MetricsStorage, TaskMetric, TaskResult, TimeRange};

use serving::{agent, Server};

const AGENTS: u64 = 100;
const BATCH: usize = 1_000;
/// Batches of each ingest workload.
const BATCHES: usize = 40;
const CONNECTIONS: usize = 64;
const REQUESTS_PER_CONNECTION: usize = 20;

fn task(i: u64, at: DateTime<Utc>, prefix: &str) -> TaskMetric {
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let result = match h % 100 {
        0..=84 => TaskResult::Success,
        85..=94 => TaskResult::Failure,
        95..=97 => TaskResult::Timeout,
        _ => TaskResult::Cancelled,
    };
    TaskMetric::new(
        format!("{prefix}{i:08}"),
        format!("agent-{:03}", (h >> 8) % AGENTS),
        100 + (h >> 16) % 60_000,
        result,
    )
    .swarm(format!("swarm-{:02}", (h >> 8) % AGENTS % 10))
    .tokens((h >> 24) % 8_000)
    .at(at)
}

/// `n` tasks ending now, one per `step` microseconds.
fn tasks(
    prefix: &str,
    range: std::ops::Range<u64>,
    end: DateTime<Utc>,
    step: i64,
) -> Vec<TaskMetric> {
    let total = range.end as i64;
    range
        .map(|i| {
            task(
                i,
                end - chrono::Duration::microseconds((total - i as i64) * step),
                prefix,
            )
        })
        .collect()
}

fn jsonl(tasks: &[TaskMetric]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in tasks {
        let mut v = serde_json::to_value(t).unwrap();
        v["kind"] = "task".into();
        serde_json::to_writer(&mut out, &v).unwrap();
        out.push(b'\n');
    }
    out
}

fn export(first: u64, end: DateTime<Utc>) -> Vec<u8> {
    let end_ns = end.timestamp_nanos_opt().unwrap() as u64;
    let attr = |key: &str, value: Value| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    };
    let spans = (first..first + BATCH as u64)
        .map(|i| Span {
            trace_id: (i as u128).to_be_bytes().to_vec(),
            span_id: i.to_be_bytes().to_vec(),
            name: "invoke_agent".into(),
            start_time_unix_nano: end_ns - 1_500_000_000 - i * 100_000,
            end_time_unix_nano: end_ns - i * 100_000,
            attributes: vec![
                attr(
                    "gen_ai.operation.name",
                    Value::StringValue("invoke_agent".into()),
                ),
                attr(
                    "gen_ai.agent.name",
                    Value::StringValue(format!("otel-{:03}", i % AGENTS)),
                ),
                attr(
                    "gen_ai.usage.input_tokens",
                    Value::IntValue((i % 4000) as i64),
                ),
                attr(
                    "gen_ai.usage.output_tokens",
                    Value::IntValue((i % 900) as i64),
                ),
                attr("gen_ai.request.model", Value::StringValue("model-x".into())),
            ],
            ..Span::default()
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
    .encode_to_vec()
}

fn post(agent: &ureq::Agent, url: &str, content_type: &str, body: &[u8]) {
    let mut response = agent
        .post(url)
        .header("Content-Type", content_type)
        .send(body)
        .unwrap();
    let answer = response.body_mut().read_to_vec().unwrap();
    assert_eq!(
        response.status(),
        200,
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

fn main() {
    let rows: u64 = std::env::var("SWARM_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let end = Utc::now();
    println!("machine: {}", machine());
    let fill = Instant::now();
    {
        let store = MetricsStorage::open(&db).unwrap();
        let step = 30 * 86_400_000_000 / rows as i64;
        for chunk in (0..rows).step_by(10 * BATCH) {
            let upto = (chunk + 10 * BATCH as u64).min(rows);
            // Each chunk ends where the next begins: 30 days in all, the
            // last task two hours before the workloads' tasks.
            let chunk_end = end
                - chrono::Duration::hours(2)
                - chrono::Duration::microseconds((rows - upto) as i64 * step);
            store
                .store_task_metrics(&tasks("fill-", chunk..upto, chunk_end, step))
                .unwrap();
        }
        store.close().unwrap();
    }
    println!(
        "filled {rows} tasks in {:.1} s",
        fill.elapsed().as_secs_f64()
    );

    // The library: store_batch of BATCHES batches of 1,000, then
    // success_rate over the last 24 h, on the filled file.
    let direct: Vec<Vec<TaskMetric>> = (0..BATCHES as u64)
        .map(|b| {
            tasks(
                "direct-",
                b * BATCH as u64..(b + 1) * BATCH as u64,
                end,
                100,
            )
        })
        .collect();
    let (direct_rows_s, direct_rate_ms) = {
        let store = MetricsStorage::open(&db).unwrap();
        let started = Instant::now();
        for batch in &direct {
            let batch = MetricBatch {
                tasks: batch.clone(),
                ..MetricBatch::default()
            };
            store.store_batch(&batch).unwrap();
        }
        let rows_s = (BATCHES * BATCH) as f64 / started.elapsed().as_secs_f64();
        let day =
            Filter::new().range(TimeRange::new(end - chrono::Duration::hours(24), end).unwrap());
        let mut samples: Vec<f64> = (0..50)
            .map(|_| {
                let t = Instant::now();
                store.success_rate(&day).unwrap();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        store.close().unwrap();
        (rows_s, percentile(&samples, 0.5))
    };

    let server = Server::start_at(db.to_str().unwrap(), &["--max-body", "32MiB"]);
    let base = format!("http://{}", server.addr);
    let client = agent();

    let bodies: Vec<Vec<u8>> = (0..BATCHES as u64)
        .map(|b| {
            // Each workload has its own microseconds: a task sharing one
            // with a stored task costs the store a lookup.
            jsonl(&tasks(
                "ingest-",
                b * BATCH as u64..(b + 1) * BATCH as u64,
                end - chrono::Duration::microseconds(33),
                100,
            ))
        })
        .collect();
    // One client sending batch after batch, then four at once (the second
    // half of the batches), as agents of a swarm would.
    let half = BATCHES / 2;
    let started = Instant::now();
    for body in &bodies[..half] {
        post(
            &client,
            &format!("{base}/ingest"),
            "application/x-ndjson",
            body,
        );
    }
    let ingest_rows_s = (half * BATCH) as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for share in bodies[half..].chunks(half.div_ceil(4)) {
            let url = format!("{base}/ingest");
            scope.spawn(move || {
                let client = agent();
                for body in share {
                    post(&client, &url, "application/x-ndjson", body);
                }
            });
        }
    });
    let ingest_4_rows_s = ((BATCHES - half) * BATCH) as f64 / started.elapsed().as_secs_f64();

    let exports: Vec<Vec<u8>> = (0..BATCHES as u64)
        .map(|b| export(b * BATCH as u64, end - chrono::Duration::microseconds(66)))
        .collect();
    let started = Instant::now();
    for body in &exports {
        post(
            &client,
            &format!("{base}/v1/traces"),
            "application/x-protobuf",
            body,
        );
    }
    let otlp_spans_s = (BATCHES * BATCH) as f64 / started.elapsed().as_secs_f64();

    let url = Arc::new(format!("{base}/api/v1/success-rate?since=24h"));
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let url = Arc::clone(&url);
            std::thread::spawn(move || {
                let client = agent();
                (0..REQUESTS_PER_CONNECTION)
                    .map(|_| {
                        let t = Instant::now();
                        let mut r = client.get(url.as_str()).call().unwrap();
                        assert_eq!(r.status(), 200);
                        r.body_mut().read_to_vec().unwrap();
                        t.elapsed().as_secs_f64() * 1e3
                    })
                    .collect::<Vec<f64>>()
            })
        })
        .collect();
    let mut latencies: Vec<f64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    latencies.sort_by(f64::total_cmp);

    let mut scrapes: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let mut r = client.get(&format!("{base}/metrics")).call().unwrap();
            r.body_mut().read_to_vec().unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    scrapes.sort_by(f64::total_cmp);

    let rss_before = peak_rss_mb(server.child.id());
    let hostile: Vec<_> = (0..16)
        .map(|i| {
            let addr = server.addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
                if i % 2 == 0 {
                    let _ = s.write_all(
                        b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n",
                    );
                }
                let _ = s.write_all(
                    b"POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                );
                let chunk = format!("100000\r\n{}\r\n", "x".repeat(0x100000));
                // Up to 256 MiB each, until the server says no.
                for _ in 0..256 {
                    if s.write_all(chunk.as_bytes()).is_err() {
                        break;
                    }
                }
                let mut reply = Vec::new();
                let _ = s.read_to_end(&mut reply);
            })
        })
        .collect();
    for h in hostile {
        h.join().unwrap();
    }
    let rss_after = peak_rss_mb(server.child.id());

    println!();
    println!(
        "{:<34} {:>14} {:>14} {:>8}",
        "workload", "serve", "library", "ratio"
    );
    println!(
        "{:<34} {:>14.0} {:>14.0} {:>7.2}x",
        "ingest_1000_1_client (higher)",
        ingest_rows_s,
        direct_rows_s,
        ingest_rows_s / direct_rows_s
    );
    println!(
        "{:<34} {:>14.0} {:>14.0} {:>7.2}x",
        "ingest_1000_4_clients (higher)",
        ingest_4_rows_s,
        direct_rows_s,
        ingest_4_rows_s / direct_rows_s
    );
    println!(
        "{:<34} {:>14.0} {:>14} {:>8}",
        "otlp_protobuf_spans_per_s (higher)", otlp_spans_s, "-", "-"
    );
    println!(
        "{:<34} {:>14.2} {:>14.2} {:>7.2}x",
        "success_rate_24h_p50_ms (64 conns)",
        percentile(&latencies, 0.5),
        direct_rate_ms,
        percentile(&latencies, 0.5) / direct_rate_ms
    );
    println!(
        "{:<34} {:>14.2} {:>14} {:>8}",
        "success_rate_24h_p99_ms (64 conns)",
        percentile(&latencies, 0.99),
        "-",
        "-"
    );
    println!(
        "{:<34} {:>14.1} {:>14} {:>8}",
        "metrics_scrape_ms (median of 5)",
        percentile(&scrapes, 0.5),
        "-",
        "-"
    );
    println!(
        "{:<34} {:>14.1} {:>14.1} {:>8}",
        "server_peak_rss_mib (after/before)", rss_after, rss_before, "-"
    );
}
