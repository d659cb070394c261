//! Reliability under load and abuse: several processes on one file, a full
//! database, and hostile input. Figures from these tests are listed in
//! RELIABILITY.md; many writers with a reader and a cleaner are in
//! `concurrency.rs`. The tests of hostile input run on every backend the
//! build has.

mod common;

use std::process::{Command, Stdio};

use chrono::{Duration, TimeZone, Utc};
use common::server::stores;
use proptest::prelude::*;
use serde_json::{json, Value};
use swarm_metrics::{
    parse_filter, parse_metric, AgentMetric, Error, Filter, MetricKind, MetricType, MetricsStorage,
    Parsed, SwarmMetric, TaskMetric, TaskResult, RECORD_FIELDS,
};

#[test]
fn three_processes_importing_into_one_file_all_succeed_with_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let lines_per_process = 20_000;
    let children: Vec<_> = (0..3)
        .map(|p| {
            let input: String = (0..lines_per_process)
                .map(|i| {
                    format!(
                        "{{\"kind\":\"task\",\"task_id\":\"p{p}-{i}\",\"agent_id\":\"agent-{p}\",\"duration_ms\":{i},\"result\":\"success\"}}\n"
                    )
                })
                .collect();
            let path = dir.path().join(format!("in-{p}.jsonl"));
            std::fs::write(&path, input).unwrap();
            Command::new(env!("CARGO_BIN_EXE_swarm-metrics"))
                .arg("--db")
                .arg(&db)
                .arg("import")
                .arg(&path)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let store = MetricsStorage::open(&db).unwrap();
    for p in 0..3 {
        let rate = store
            .success_rate(&Filter::new().agent(format!("agent-{p}")))
            .unwrap();
        assert_eq!(rate.total, lines_per_process);
    }
    assert!(store.integrity_check().unwrap().is_empty());
}

/// Two stores on one file, each with its own writer, take turns storing
/// single tasks: each writer keeps what it interned across the other's
/// commits but reads again what the other can change (the index
/// watermark, the newest task, the prices). Every answer stays exact, the
/// batched index catches up, and a price one of them sets prices the
/// other's next task.
#[test]
fn two_writers_on_one_file_see_each_others_changes() {
    use swarm_metrics::{Price, Usage};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let open = || {
        MetricsStorage::builder(&db)
            .index_batch_rows(16)
            .open()
            .unwrap()
    };
    let (a, b) = (open(), open());
    let now = swarm_metrics::now();
    let task = |i: usize, agent: &str| {
        TaskMetric::new(format!("t{i}"), agent, i as u64, TaskResult::Success)
            .swarm(format!("swarm-{}", i % 3))
            // Each store later than the one before, as live agents store.
            .at(now - Duration::seconds(600) + Duration::milliseconds(i as i64))
    };
    let mut expected: std::collections::BTreeMap<String, u64> = Default::default();
    for i in 0..200 {
        // Both writers store for both agents, turn by turn, with runs of
        // a few stores on one side.
        let (store, agent) = match (i / 3) % 2 {
            0 => (&a, ["x", "y"][i % 2]),
            _ => (&b, ["y", "z"][i % 2]),
        };
        assert!(store.store_task_metric(&task(i, agent)).unwrap());
        *expected.entry(agent.to_owned()).or_default() += 1;
        if i % 25 == 0 {
            for s in [&a, &b] {
                for (agent, n) in &expected {
                    let filter = Filter::new().agent(agent);
                    assert_eq!(s.success_rate(&filter).unwrap().total, *n, "{agent} at {i}");
                    let rows = s.get_task_metrics(&filter, 1000).unwrap();
                    assert_eq!(rows.len() as u64, *n, "{agent} at {i}");
                }
                let last = Filter::new().task(format!("t{i}"));
                assert_eq!(s.get_task_metrics(&last, 10).unwrap().len(), 1);
            }
        }
    }
    // A batch through one writer joins the index at once and moves the
    // watermark past every row; a late task through the other writer,
    // before that watermark but after every row that writer saw, must
    // then join the index too.
    let batch: Vec<TaskMetric> = (300..320).map(|i| task(i, "y")).collect();
    b.store_task_metrics(&batch).unwrap();
    let late = TaskMetric::new("late", "w", 5, TaskResult::Failure)
        .at(task(305, "w").timestamp + Duration::microseconds(500));
    assert!(a.store_task_metric(&late).unwrap());
    for s in [&a, &b] {
        let rows = s.get_task_metrics(&Filter::new().agent("w"), 10).unwrap();
        assert_eq!(rows.len(), 1, "the late task by its agent");
    }
    // Tasks of one microsecond, later than all before, stored in turn by
    // both writers: each finds the other's rows there and takes the next
    // place; the same task again, through either writer, is a retry.
    let shared = now - Duration::seconds(60);
    for i in 0..6 {
        let store = [&a, &b][i % 2];
        let t = TaskMetric::new(format!("same-{i}"), "x", 1, TaskResult::Success).at(shared);
        assert!(store.store_task_metric(&t).unwrap(), "same-{i}");
        assert!(
            ![&b, &a][i % 2].store_task_metric(&t).unwrap(),
            "same-{i} again"
        );
    }
    let at_shared = Filter::new().range(swarm_metrics::TimeRange::new(shared, shared).unwrap());
    assert_eq!(a.success_rate(&at_shared).unwrap().total, 6);
    // The batched index caught up: less than a batch per writer waits
    // (a waiting row keeps its file count complemented, below zero).
    let waiting: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM task_metrics WHERE files_changed < 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(waiting < 2 * 16, "{waiting} rows wait for the index");
    // A price set through one writer prices the other's next task.
    let priced = |i: usize| task(i, "x").usage(Usage::new().model("m").input(1_000_000).output(0));
    assert!(a.store_task_metric(&priced(1000)).unwrap());
    let price = Price {
        input: 2.0,
        output: 0.0,
        cache_read: 0.0,
        cache_write: 0.0,
    };
    b.set_price("m", now - Duration::days(1), price).unwrap();
    assert!(a.store_task_metric(&priced(1001)).unwrap());
    let cost = |id: &str| {
        a.get_task_metrics(&Filter::new().task(id), 1).unwrap()[0]
            .usage
            .cost_usd
    };
    assert_eq!(cost("t1000"), None);
    assert_eq!(cost("t1001"), Some(2.0));
    for s in [a, b] {
        assert!(s.integrity_check().unwrap().is_empty());
        s.close().unwrap();
    }
}

#[test]
fn a_full_database_refuses_the_batch_whole_and_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.db");
    let store = MetricsStorage::builder(&path)
        .max_size_bytes(256 * 1024)
        .open()
        .unwrap();
    let batch = |b: usize| -> Vec<TaskMetric> {
        (0..200)
            .map(|i| {
                TaskMetric::new(
                    format!("batch-{b}-task-{i:04}"),
                    format!("agent-{}", i % 9),
                    5,
                    TaskResult::Success,
                )
            })
            .collect()
    };
    let mut stored_batches = 0;
    let err = loop {
        match store.store_task_metrics(&batch(stored_batches)) {
            Ok(n) => {
                assert_eq!(n, 200);
                stored_batches += 1;
                assert!(stored_batches < 1000, "the cap never bit");
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::DatabaseFull { .. }), "{err:?}");
    assert!(err.to_string().contains("size cap"), "{err}");
    assert!(
        err.to_string().contains(store.path().to_str().unwrap()),
        "{err}"
    );
    // The failed batch left nothing behind; everything before it is whole.
    let rows = store.get_task_metrics(&Filter::new(), 1_000_000).unwrap();
    assert_eq!(rows.len(), stored_batches * 200);
    let failed_prefix = format!("batch-{stored_batches}-");
    assert!(rows.iter().all(|t| !t.task_id.starts_with(&failed_prefix)));
    assert!(store.integrity_check().unwrap().is_empty());
    // The store still answers, and a further store either fits or fails
    // the same clean way.
    match store.store_swarm_metric(&SwarmMetric::new("s", MetricType::SwarmHealth, 1.0)) {
        Ok(_) | Err(Error::DatabaseFull { .. }) => {}
        Err(other) => panic!("{other:?}"),
    }
    assert_eq!(
        store.success_rate(&Filter::new()).unwrap().total as usize,
        stored_batches * 200
    );
    store.close().unwrap();
    let reopened = MetricsStorage::open(&path).unwrap();
    assert_eq!(
        reopened
            .get_task_metrics(&Filter::new(), 1_000_000)
            .unwrap()
            .len(),
        stored_batches * 200
    );
}

#[test]
fn hostile_ids_and_values_are_stored_exactly_or_refused_clearly() {
    for backend in stores() {
        hostile_ids_and_values_are_stored_exactly_or_refused_clearly_in(&backend.store);
    }
}

fn hostile_ids_and_values_are_stored_exactly_or_refused_clearly_in(store: &MetricsStorage) {
    let t0 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let ids = [
        "quote ' and \" double",
        "'; DROP TABLE task_metrics; --",
        "unicode ✓ 日本語 🚀 e\u{301}",
        "back\\slash",
        "line\nbreak\ttab",
        "%_ wildcards",
    ];
    for (i, id) in ids.iter().enumerate() {
        let task = TaskMetric::new(*id, *id, i64::MAX as u64, TaskResult::Success)
            .swarm(*id)
            .tokens(i64::MAX as u64)
            .at(t0 + Duration::seconds(i as i64));
        assert!(store.store_task_metric(&task).unwrap());
        let back = store
            .get_task_metrics(&Filter::new().task(*id), 10)
            .unwrap();
        assert_eq!(back, vec![task.clone()]);
        assert_eq!(
            store
                .get_task_metrics(&Filter::new().agent(*id).swarm(*id), 10)
                .unwrap(),
            vec![task]
        );
    }
    // NUL and empty ids are refused before anything is written.
    for bad in ["a\0b", "", " "] {
        let err = store
            .store_task_metric(&TaskMetric::new(bad, "a", 1, TaskResult::Success))
            .unwrap_err();
        assert!(err.is_invalid_input());
    }
    // A 1 MB metadata document round-trips.
    let big = json!({"blob": "x".repeat(1 << 20), "nested": {"list": [1, 2.5, null, true]}});
    let id = store
        .store_agent_metric(
            &AgentMetric::new("a", MetricType::AgentThroughput, f64::MAX).metadata(big.clone()),
        )
        .unwrap();
    let back = store.get_agent_metrics(&Filter::new(), 1).unwrap();
    assert_eq!(back[0].metric_id, id);
    assert_eq!(back[0].metric.metadata.as_ref(), Some(&big));
    assert_eq!(back[0].metric.value, f64::MAX);
    for bad in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -f64::MIN_POSITIVE,
    ] {
        assert!(store
            .store_agent_metric(&AgentMetric::new("a", MetricType::AgentThroughput, bad))
            .is_err());
    }
    assert_eq!(
        store.get_agent_metrics(&Filter::new(), 10).unwrap().len(),
        1
    );
}

/// Any JSON value, nested a little.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|x| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "success",
            "timeout",
            "agent_throughput",
            "swarm_health",
            "2025-01-01T00:00:00Z",
            "task",
            "a"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(2, 16, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select([RECORD_FIELDS.as_slice(), &["other"]].concat())
                    .prop_map(str::to_owned),
                inner,
                0..10
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid record of `kind` with one field replaced by arbitrary JSON (or
/// removed), so that both stored and refused records are common.
fn mutated_record() -> impl Strategy<Value = (MetricKind, Value)> {
    let fields = RECORD_FIELDS.to_vec();
    (
        prop::sample::select(MetricKind::ALL.to_vec()),
        prop::sample::select(fields),
        prop::option::of(arbitrary_json()),
        any::<bool>(),
    )
        .prop_map(|(kind, field, replacement, mutate)| {
            let mut record = match kind {
                MetricKind::Task => {
                    json!({"kind": "task", "task_id": "t", "agent_id": "a", "swarm_id": "s",
                    "duration_ms": 5, "result": "failure", "tokens_used": 7, "files_changed": 1,
                    "timestamp": "2025-01-01T00:00:00.5Z"})
                }
                MetricKind::Agent => {
                    json!({"kind": "agent", "agent_id": "a", "metric_type": "agent_throughput",
                    "value": 2.5, "metadata": {"k": [1]}, "timestamp": "2025-01-01T00:00:00Z"})
                }
                MetricKind::Swarm => {
                    json!({"kind": "swarm", "swarm_id": "s", "metric_type": "swarm_health",
                    "value": 0.5})
                }
            };
            if mutate {
                let object = record.as_object_mut().unwrap();
                match replacement {
                    Some(value) => object.insert(field.to_owned(), value),
                    None => object.remove(field),
                };
            }
            (kind, record)
        })
}

/// The fields of `data` that are set (not null), other than `kind`, each
/// with what `parsed` holds for it in its JSON form.
fn set_fields_and_parsed(data: &Value, parsed: &Parsed) -> Vec<(String, Value, Value)> {
    let parsed = match parsed {
        Parsed::Task(t) => serde_json::to_value(t),
        Parsed::Agent(m) => serde_json::to_value(m),
        Parsed::Swarm(m) => serde_json::to_value(m),
    }
    .unwrap();
    data.as_object()
        .unwrap()
        .iter()
        .filter(|(field, value)| *field != "kind" && !value.is_null())
        .map(|(field, value)| (field.clone(), value.clone(), parsed[field].clone()))
        .collect()
}

/// Whether a field's given and parsed JSON mean the same: numbers by
/// value, timestamps by instant, anything else exactly.
fn same(field: &str, given: &Value, parsed: &Value) -> bool {
    if field == "timestamp" {
        let instant =
            |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
        return instant(given) == instant(parsed);
    }
    match (given.as_f64(), parsed.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => given == parsed,
    }
}

/// Rows of every kind in the store.
fn rows(store: &MetricsStorage) -> u64 {
    let s = store.stats().unwrap();
    s.task_metrics.rows + s.agent_metrics.rows + s.swarm_metrics.rows
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// Mostly-valid records: accepted with every set field read as given,
    /// or refused with an input error.
    #[test]
    fn mutated_records_parse_exactly_or_are_refused((kind, data) in mutated_record()) {
        match parse_metric(kind, &data) {
            Ok(parsed) => {
                for (field, given, got) in set_fields_and_parsed(&data, &parsed) {
                    prop_assert!(same(&field, &given, &got), "{}: {} read as {}", field, given, got);
                }
            }
            Err(e) => prop_assert!(e.is_invalid_input(), "{e:?}"),
        }
    }

    /// Any JSON at all: a record or filter is accepted or refused with an
    /// input error, never a panic.
    #[test]
    fn the_parsers_survive_arbitrary_json(data in arbitrary_json(), filters in arbitrary_json(), kind in prop::sample::select(MetricKind::ALL.to_vec())) {
        match parse_metric(kind, &data) {
            Ok(parsed) => {
                for (field, given, got) in set_fields_and_parsed(&data, &parsed) {
                    prop_assert!(same(&field, &given, &got), "{}: {} read as {}", field, given, got);
                }
            }
            Err(e) => prop_assert!(e.is_invalid_input(), "{e:?}"),
        }
        if let Err(e) = parse_filter(&filters) {
            prop_assert!(e.is_invalid_input(), "{e:?}");
        }
    }
}

/// The generic calls on one store agree with the parser: what it accepts
/// is stored as parsed, what it refuses is refused the same way and
/// writes nothing.
#[test]
fn generic_calls_store_what_the_parser_accepts_and_nothing_else() {
    for backend in stores() {
        generic_calls_store_what_the_parser_accepts_and_nothing_else_in(&backend.store);
    }
}

fn generic_calls_store_what_the_parser_accepts_and_nothing_else_in(store: &MetricsStorage) {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 300,
        ..ProptestConfig::default()
    });
    let cases = prop_oneof![
        mutated_record(),
        (
            prop::sample::select(MetricKind::ALL.to_vec()),
            arbitrary_json()
        ),
    ];
    runner
        .run(&cases, |(kind, data)| {
            let before = rows(store);
            // Without a timestamp, the parser and the store each stamp the
            // record with their own now.
            let stamped = !data.get("timestamp").is_none_or(Value::is_null);
            let parsed = parse_metric(kind, &data);
            let stored = store.store_metric(kind, &data);
            let after = rows(store);
            match (parsed, stored) {
                (Ok(Parsed::Task(_)), Ok(None)) if !stamped => {
                    prop_assert_eq!(after, before + 1);
                }
                (Ok(Parsed::Task(task)), Ok(None)) => {
                    // New, or a retry of a task already stored (ignored).
                    prop_assert!(after == before || after == before + 1);
                    let found = store
                        .get_task_metrics(&Filter::new().task(&task.task_id), 10_000)
                        .unwrap()
                        .into_iter()
                        .filter(|t| t.timestamp == task.timestamp)
                        .count();
                    prop_assert_eq!(found, 1);
                    if after == before + 1 {
                        let range =
                            swarm_metrics::TimeRange::new(task.timestamp, task.timestamp).unwrap();
                        let back = store
                            .get_task_metrics(&Filter::new().task(&task.task_id).range(range), 1)
                            .unwrap();
                        prop_assert_eq!(&back[0], &task);
                    }
                }
                (Ok(parsed @ (Parsed::Agent(_) | Parsed::Swarm(_))), Ok(Some(id))) => {
                    // New, or (with its timestamp given) a retry of a metric
                    // already stored, which answers with the stored id.
                    let retry = stamped && after == before;
                    prop_assert!(retry || after == before + 1);
                    let mut want = match &parsed {
                        Parsed::Agent(m) => serde_json::to_value(m),
                        Parsed::Swarm(m) => serde_json::to_value(m),
                        Parsed::Task(_) => unreachable!("matched above"),
                    }
                    .unwrap();
                    want["metric_id"] = id.into();
                    let back = store
                        .query_metrics(kind, &Value::Null, None, 100_000)
                        .unwrap()
                        .into_iter()
                        .find(|row| row["metric_id"] == id)
                        .unwrap();
                    if !stamped {
                        let instant = |v: &Value| {
                            chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap()
                        };
                        prop_assert!(instant(&back["timestamp"]) >= instant(&want["timestamp"]));
                        want["timestamp"] = back["timestamp"].clone();
                    }
                    if retry {
                        // The first store's metadata stays.
                        want["metadata"] = back["metadata"].clone();
                    }
                    prop_assert_eq!(back, want);
                }
                (
                    Err(Error::InvalidInput { field: a, .. }),
                    Err(Error::InvalidInput { field: b, .. }),
                ) => {
                    prop_assert_eq!(a, b);
                    prop_assert_eq!(after, before);
                }
                (parsed, stored) => {
                    prop_assert!(false, "parsed {:?} but stored {:?}", parsed, stored);
                }
            }
            Ok(())
        })
        .unwrap();
}
