//! How a span becomes a task: each clause of the contract in README.md
//! ("OpenTelemetry spans"), on spans built here, decoded from protobuf and
//! from OTLP JSON, and stored.
#![cfg(feature = "otlp")]

mod common;

use common::server::stores;
use prost::Message;
use swarm_metrics::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use swarm_metrics::otlp::proto::common::v1::{any_value::Value, AnyValue, KeyValue};
use swarm_metrics::otlp::proto::resource::v1::Resource;
use swarm_metrics::otlp::proto::trace::v1::{
    status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};
use swarm_metrics::otlp::{self, SpanTasks};
use swarm_metrics::{Filter, MetricsStorage, TaskMetric, TaskResult, TraceIds};

const START: u64 = 1_765_000_000_000_000_000;

fn attr(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn s(key: &str, value: &str) -> KeyValue {
    attr(key, Value::StringValue(value.into()))
}

fn i(key: &str, value: i64) -> KeyValue {
    attr(key, Value::IntValue(value))
}

/// An `invoke_agent` span of `ms` milliseconds with these attributes
/// added.
fn span(n: u8, ms: u64, attrs: Vec<KeyValue>) -> Span {
    let mut attributes = vec![s("gen_ai.operation.name", "invoke_agent")];
    attributes.extend(attrs);
    Span {
        trace_id: vec![
            0xA0 | (n >> 4),
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            8,
            9,
            10,
            11,
            12,
            13,
            14,
            n,
        ],
        span_id: vec![0xB0, 0, 0, 0, 0, 0, 0, n],
        name: format!("invoke_agent {n}"),
        start_time_unix_nano: START,
        end_time_unix_nano: START + ms * 1_000_000 + 999_999,
        attributes,
        ..Span::default()
    }
}

fn export(resource: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

fn errored(mut span: Span, error_type: Option<&str>) -> Span {
    span.status = Some(Status {
        code: StatusCode::Error as i32,
        message: "boom".into(),
    });
    if let Some(t) = error_type {
        span.attributes.push(s("error.type", t));
    }
    span
}

fn map(request: &ExportTraceServiceRequest) -> SpanTasks {
    otlp::tasks_from_spans(request)
}

#[test]
fn an_invoke_agent_span_maps_field_by_field() {
    let request = export(
        vec![s("service.name", "svc"), s("swarm.id", "swarm-res")],
        vec![span(
            1,
            1_250,
            vec![
                s("gen_ai.agent.id", "agent-id"),
                s("gen_ai.agent.name", "agent-name"),
                s("swarm.id", "swarm-span"),
                i("gen_ai.usage.input_tokens", 300),
                i("gen_ai.usage.output_tokens", 45),
                i("swarm.files_changed", 3),
            ],
        )],
    );
    let mapped = map(&request);
    assert_eq!((mapped.ignored, mapped.rejected.len()), (0, 0));
    let t = &mapped.tasks[0];
    assert_eq!(
        t.task_id,
        "a00102030405060708090a0b0c0d0e01:b000000000000001"
    );
    assert_eq!(t.agent_id, "agent-id");
    assert_eq!(t.swarm_id.as_deref(), Some("swarm-span"));
    // Whole milliseconds: 1250.999999 ms is 1250.
    assert_eq!(t.duration_ms, 1_250);
    assert_eq!(t.result, TaskResult::Success);
    assert_eq!(t.tokens_used, 345);
    assert_eq!(t.files_changed, 3);
    let trace = t.trace.expect("the span's ids");
    assert_eq!(trace.trace_hex(), "a00102030405060708090a0b0c0d0e01");
    assert_eq!(trace.span_hex(), "b000000000000001");
    let end = START + 1_250_999_999;
    // The timestamp is the span's end, at the store's microseconds.
    assert_eq!(
        t.timestamp.timestamp_micros(),
        i64::try_from(end / 1_000).unwrap()
    );
}

#[test]
fn ids_fall_back_in_the_contracts_order() {
    let request = export(
        vec![s("service.name", "svc"), s("swarm.id", "swarm-res")],
        vec![
            span(1, 10, vec![s("gen_ai.agent.name", "by-name")]),
            span(2, 10, vec![]),
            span(3, 10, vec![s("swarm.task.id", "task-42")]),
        ],
    );
    let tasks = map(&request).tasks;
    assert_eq!(tasks[0].agent_id, "by-name");
    assert_eq!(tasks[1].agent_id, "svc");
    assert_eq!(tasks[1].swarm_id.as_deref(), Some("swarm-res"));
    assert_eq!(tasks[2].task_id, "task-42");
    let no_swarm = export(vec![s("service.name", "svc")], vec![span(4, 1, vec![])]);
    assert_eq!(map(&no_swarm).tasks[0].swarm_id, None);
}

#[test]
fn status_and_error_type_decide_the_result() {
    let request = export(
        vec![s("service.name", "svc")],
        vec![
            errored(span(1, 5, vec![]), None),
            errored(span(2, 5, vec![]), Some("timeout")),
            errored(span(3, 5, vec![]), Some("cancelled")),
            errored(span(4, 5, vec![]), Some("canceled")),
            errored(span(5, 5, vec![]), Some("RateLimitError")),
            {
                let mut ok = span(6, 5, vec![]);
                ok.status = Some(Status {
                    code: StatusCode::Ok as i32,
                    ..Status::default()
                });
                ok
            },
            // error.type without an ERROR status is no failure.
            span(7, 5, vec![s("error.type", "timeout")]),
        ],
    );
    let results: Vec<TaskResult> = map(&request).tasks.iter().map(|t| t.result).collect();
    use TaskResult::*;
    assert_eq!(
        results,
        [Failure, Timeout, Cancelled, Cancelled, Failure, Success, Success]
    );
}

#[test]
fn other_spans_are_ignored_and_bad_task_spans_rejected_with_the_field() {
    let mut plain = span(1, 5, vec![]);
    plain.attributes = vec![s("gen_ai.operation.name", "chat")];
    let mut backwards = span(2, 5, vec![]);
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
    let request = export(
        vec![],
        vec![
            plain,
            span(3, 5, vec![]), // no agent anywhere
            {
                let mut b = backwards;
                b.attributes.push(s("gen_ai.agent.name", "a"));
                b
            },
            span(
                4,
                5,
                vec![
                    s("gen_ai.agent.name", "a"),
                    i("gen_ai.usage.input_tokens", -1),
                ],
            ),
            span(5, 5, vec![s("gen_ai.agent.name", "a")]),
        ],
    );
    let mapped = map(&request);
    assert_eq!(mapped.ignored, 1);
    assert_eq!(mapped.tasks.len(), 1);
    let reasons: Vec<String> = mapped.rejected.iter().map(|r| r.to_string()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("no agent"), "{}", reasons[0]);
    assert!(reasons[0].contains("a00102030405060708090a0b0c0d0e03:b000000000000003"));
    assert!(
        reasons[1].contains("before start_time_unix_nano"),
        "{}",
        reasons[1]
    );
    assert!(
        reasons[2].contains("gen_ai.usage.input_tokens is negative"),
        "{}",
        reasons[2]
    );
}

#[test]
fn protobuf_and_json_decode_to_the_same_tasks() {
    let request = export(
        vec![s("service.name", "svc")],
        vec![
            span(1, 7, vec![i("gen_ai.usage.input_tokens", 9)]),
            errored(span(2, 8, vec![]), Some("timeout")),
        ],
    );
    let from_protobuf = otlp::decode_protobuf(&request.encode_to_vec()).unwrap();
    assert_eq!(from_protobuf, request);
    let json = serde_json::to_string(&request).unwrap();
    // The OTLP JSON encoding: hex ids, camelCase, 64-bit integers as strings.
    assert!(json.contains("\"traceId\":\"a00102"), "{json}");
    assert!(json.contains("\"startTimeUnixNano\":\""), "{json}");
    let from_json = otlp::decode_json(json.as_bytes()).unwrap();
    assert_eq!(map(&from_json), map(&request));
}

#[test]
fn a_malformed_export_names_where_it_fails() {
    let bad = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#;
    let e = otlp::decode_json(bad).unwrap_err().to_string();
    assert!(
        e.contains("resourceSpans[0].scopeSpans[0].spans[0].traceId"),
        "{e}"
    );
    let e = otlp::decode_protobuf(b"\xff\xff\xff")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an OTLP protobuf"), "{e}");
}

#[test]
fn the_same_span_twice_is_stored_once() {
    let store = MetricsStorage::temporary().unwrap();
    let request = export(vec![s("service.name", "svc")], vec![span(1, 5, vec![])]);
    for _ in 0..2 {
        store.store_task_metrics(&map(&request).tasks).unwrap();
    }
    assert_eq!(
        store
            .get_task_metrics(&Filter::default(), 10)
            .unwrap()
            .len(),
        1
    );
}

/// `import --format otlp` reads the Collector file exporter's JSON Lines
/// (one export per line) with the same mapping: all or nothing by
/// default, the good spans with `--on-error skip`.
#[cfg(feature = "cli")]
#[test]
fn import_reads_the_collector_file_exporters_lines() {
    let dir = tempfile::tempdir().unwrap();
    let good = export(
        vec![s("service.name", "svc")],
        vec![span(1, 5, vec![]), span(2, 6, vec![])],
    );
    let mut plain = span(3, 5, vec![]);
    plain.attributes.clear();
    let mixed = export(
        vec![],
        vec![
            plain,
            span(4, 5, vec![s("gen_ai.agent.name", "a")]),
            span(5, 5, vec![]),
        ],
    );
    let file = dir.path().join("traces.jsonl");
    let text = format!(
        "{}\n{}\n",
        serde_json::to_string(&good).unwrap(),
        serde_json::to_string(&mixed).unwrap()
    );
    std::fs::write(&file, text).unwrap();
    let import = |db: &str, skip: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_swarm-metrics"));
        command
            .arg("--db")
            .arg(dir.path().join(db))
            .args(["--json", "import", "--format", "otlp"])
            .arg(&file);
        if skip {
            command.args(["--on-error", "skip"]);
        }
        let out = command.output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            out.status.code(),
            report,
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    // Line 2's last span has no agent: the whole file is refused.
    let (code, report, stderr) = import("abort.db", false);
    assert_eq!(code, Some(2));
    assert_eq!(report["imported"], 0);
    assert!(stderr.contains("line 2: span"), "{stderr}");
    assert!(stderr.contains("no agent"), "{stderr}");
    let (code, report, _) = import("skip.db", true);
    assert_eq!(code, Some(0));
    assert_eq!(report["tasks"]["stored"], 3);
    assert_eq!(report["rejected"], 1);
    assert_eq!(report["ignored_spans"], 1);
    let store = MetricsStorage::open(dir.path().join("skip.db")).unwrap();
    let mut agents: Vec<String> = store
        .get_task_metrics(&Filter::default(), 10)
        .unwrap()
        .into_iter()
        .map(|t| t.agent_id)
        .collect();
    agents.sort();
    assert_eq!(agents, ["a", "svc", "svc"]);
}

#[test]
fn spans_with_usage_attributes_are_priced_as_they_are_stored() {
    let store = MetricsStorage::temporary().unwrap();
    let from = chrono::DateTime::from_timestamp(0, 0).unwrap();
    let price = swarm_metrics::Price {
        input: 3.0,
        output: 15.0,
        cache_read: 0.3,
        cache_write: 3.75,
    };
    store.set_price("claude-sonnet-4", from, price).unwrap();
    let usage = |model: &str| {
        vec![
            s("gen_ai.agent.name", "coder"),
            i("gen_ai.usage.input_tokens", 10_000),
            i("gen_ai.usage.output_tokens", 1_000),
            i("gen_ai.usage.cache_read.input_tokens", 6_000),
            i("gen_ai.usage.cache_creation.input_tokens", 1_000),
            s("gen_ai.request.model", model),
            s("gen_ai.provider.name", "anthropic"),
        ]
    };
    let mut billed = usage("claude-sonnet-4");
    billed.push(attr("swarm.cost_usd", Value::DoubleValue(0.5)));
    let mut response_model = usage("ignored");
    response_model.retain(|kv| kv.key != "gen_ai.request.model");
    response_model.push(s("gen_ai.response.model", "claude-sonnet-4"));
    let request = export(
        vec![s("service.name", "svc")],
        vec![
            span(1, 10, usage("claude-sonnet-4")),
            span(2, 10, billed),
            span(3, 10, usage("unknown-model")),
            span(4, 10, response_model),
            // Cached tokens beyond the input contradict the token rule.
            span(
                5,
                10,
                vec![
                    i("gen_ai.usage.input_tokens", 10),
                    i("gen_ai.usage.cache_read.input_tokens", 11),
                ],
            ),
        ],
    );
    let mapped = map(&request);
    assert_eq!(mapped.rejected.len(), 1, "{:?}", mapped.rejected);
    assert!(
        mapped.rejected[0].reason.contains("cache"),
        "{:?}",
        mapped.rejected
    );
    store.store_task_metrics(&mapped.tasks).unwrap();
    let mut rows = store.get_task_metrics(&Filter::new(), 10).unwrap();
    rows.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    let costs: Vec<Option<f64>> = rows.iter().map(|t| t.usage.cost_usd).collect();
    // 3,000 uncached × 3 + 1,000 × 15 + 6,000 × 0.3 + 1,000 × 3.75 µ$.
    let priced = (9_000 + 15_000 + 1_800 + 3_750) as f64 / 1e6;
    assert_eq!(costs, vec![Some(priced), Some(0.5), None, Some(priced)]);
    assert_eq!(rows[0].tokens_used, 11_000);
    assert_eq!(rows[0].usage.provider.as_deref(), Some("anthropic"));
    assert_eq!(rows[0].usage.cache_write_tokens, Some(1_000));
}

/// A task named by `swarm.task.id` keeps the trace and span ids of its
/// span all the same, on every engine this build has, through JSON and
/// back; ids of the wrong length reject the span, naming them.
#[test]
fn trace_and_span_ids_stay_with_the_task() {
    let named = |n: u8| {
        span(
            n,
            5,
            vec![
                s("gen_ai.agent.name", "a"),
                s("swarm.task.id", &format!("task-{n}")),
            ],
        )
    };
    let mut short = named(3);
    short.span_id.pop();
    let mut without = named(4);
    without.trace_id.clear();
    without.span_id.clear();
    let request = export(
        vec![],
        vec![
            named(1),
            {
                let mut billed = named(2);
                billed.attributes.push(i("gen_ai.usage.input_tokens", 10));
                billed.attributes.push(s("gen_ai.request.model", "m"));
                billed
                    .attributes
                    .push(attr("swarm.cost_usd", Value::DoubleValue(0.25)));
                billed
            },
            short,
            without,
        ],
    );
    let mapped = map(&request);
    assert_eq!(mapped.rejected.len(), 1, "{:?}", mapped.rejected);
    assert!(
        mapped.rejected[0]
            .reason
            .contains("trace_id and span_id must be 16 and 8 bytes"),
        "{}",
        mapped.rejected[0]
    );
    let ids = |n: u8| {
        TraceIds::from_hex(
            &format!("a00102030405060708090a0b0c0d0e{n:02x}"),
            &format!("b0000000000000{n:02x}"),
        )
        .unwrap()
    };
    let traces: Vec<Option<TraceIds>> = mapped.tasks.iter().map(|t| t.trace).collect();
    assert_eq!(traces, [Some(ids(1)), Some(ids(2)), None]);
    for store in stores() {
        store.store.store_task_metrics(&mapped.tasks).unwrap();
        let mut rows = store.store.get_task_metrics(&Filter::new(), 10).unwrap();
        rows.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        let kept: Vec<(&str, Option<TraceIds>)> =
            rows.iter().map(|t| (t.task_id.as_str(), t.trace)).collect();
        assert_eq!(
            kept,
            [
                ("task-1", Some(ids(1))),
                ("task-2", Some(ids(2))),
                ("task-4", None)
            ],
            "{}",
            store.backend
        );
        assert_eq!(rows[1].usage.cost_usd, Some(0.25), "{}", store.backend);
        let json = serde_json::to_value(&rows[1]).unwrap();
        assert_eq!(json["trace_id"], "a00102030405060708090a0b0c0d0e02");
        assert_eq!(json["span_id"], "b000000000000002");
        let back: TaskMetric = serde_json::from_value(json).unwrap();
        assert_eq!(back, rows[1]);
        assert!(serde_json::to_value(&rows[2])
            .unwrap()
            .get("trace_id")
            .is_none());
    }
    // JSON with half of the pair, or a bad id, is refused naming the field.
    let line = |extra: &str| {
        format!(r#"{{"task_id":"t","agent_id":"a","duration_ms":1,"result":"success"{extra}}}"#)
    };
    for (extra, field) in [
        (
            r#","trace_id":"a00102030405060708090a0b0c0d0e02""#,
            "span_id",
        ),
        (r#","span_id":"b000000000000002""#, "trace_id"),
        (
            r#","trace_id":"a00102030405060708090a0b0c0d0e0","span_id":"b000000000000002""#,
            "trace_id",
        ),
        (
            r#","trace_id":"a00102030405060708090a0b0c0d0e02","span_id":"0000000000000000""#,
            "span_id",
        ),
    ] {
        let e = serde_json::from_str::<TaskMetric>(&line(extra)).unwrap_err();
        assert!(e.to_string().contains(field), "{extra}: {e}");
    }
}
