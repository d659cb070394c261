//! Reliability under load and abuse: many writers with a reader and a
//! cleaner, several processes on one file, a full database, and hostile
//! input. Figures from these tests are listed in RELIABILITY.md.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};
use swarm_metrics::{
    AgentMetric, Error, Filter, MetricKind, MetricType, MetricsStorage, SwarmMetric, TaskMetric,
    TaskResult,
};

const WRITERS: usize = 8;
const STORES_PER_WRITER: usize = 20_000;

#[test]
fn eight_writers_a_reader_and_a_cleaner_see_no_busy_error_and_lose_nothing() {
    let store = MetricsStorage::temporary().unwrap();
    let old = swarm_metrics::now() - Duration::days(90);
    let stale: Vec<_> = (0..30_000)
        .map(|i| TaskMetric::new(format!("old-{i}"), "old-agent", 1, TaskResult::Success).at(old))
        .collect();
    store.store_task_metrics(&stale).unwrap();

    let done = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let cleaned = std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = &store;
                s.spawn(move || {
                    for i in 0..STORES_PER_WRITER {
                        let result = TaskResult::ALL[i % 4];
                        let task = TaskMetric::new(
                            format!("w{w}-{i}"),
                            format!("agent-{w}"),
                            i as u64,
                            result,
                        )
                        .swarm(format!("swarm-{}", w % 3));
                        // Any error, busy or locked included, fails the test.
                        assert!(store.store_task_metric(&task).unwrap());
                    }
                })
            })
            .collect();
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                store.success_rate(&Filter::new().swarm("swarm-1")).unwrap();
                store
                    .get_task_metrics(&Filter::new().agent("agent-2"), 50)
                    .unwrap();
                reads.fetch_add(1, Ordering::Relaxed);
            }
        });
        let cleaner = s.spawn(|| {
            let mut deleted = 0;
            while !done.load(Ordering::Relaxed) {
                deleted += store.cleanup_old_metrics(30).unwrap().task_metrics;
            }
            deleted
        });
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        cleaner.join().unwrap()
    });
    assert_eq!(cleaned, 30_000);
    assert!(reads.load(Ordering::Relaxed) > 0);
    let total = store.success_rate(&Filter::new()).unwrap();
    assert_eq!(total.total as usize, WRITERS * STORES_PER_WRITER);
    assert_eq!(total.cancelled as usize, WRITERS * STORES_PER_WRITER / 4);
    for w in 0..WRITERS {
        let agent = store
            .success_rate(&Filter::new().agent(format!("agent-{w}")))
            .unwrap();
        assert_eq!(agent.total as usize, STORES_PER_WRITER);
    }
    assert!(store.integrity_check().unwrap().is_empty());
}

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
    assert!(
        err.to_string().contains("nothing of this write was stored"),
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
    let store = MetricsStorage::temporary().unwrap();
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
    assert_eq!(back[0].metadata.as_ref(), Some(&big));
    assert_eq!(back[0].value, f64::MAX);
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

/// Every field of a generic record.
const RECORD_FIELDS: [&str; 12] = [
    "kind",
    "task_id",
    "agent_id",
    "swarm_id",
    "duration_ms",
    "result",
    "tokens_used",
    "files_changed",
    "metric_type",
    "value",
    "metadata",
    "timestamp",
];

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

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Mostly-valid records: stored exactly when accepted, nothing written
    /// when refused.
    #[test]
    fn generic_store_of_mutated_records_is_exact_or_refused((kind, data) in mutated_record()) {
        let store = MetricsStorage::temporary().unwrap();
        let result = store.store_metric(kind, &data);
        let rows = store.query_metrics(kind, &Value::Null, None, 10).unwrap();
        match result {
            Ok(_) => {
                prop_assert_eq!(rows.len(), 1);
                for (field, value) in data.as_object().unwrap() {
                    if field == "kind" || value.is_null() {
                        continue;
                    }
                    let stored = &rows[0][field];
                    if field == "timestamp" {
                        let a = chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap()).unwrap();
                        let b = chrono::DateTime::parse_from_rfc3339(stored.as_str().unwrap()).unwrap();
                        prop_assert_eq!(a, b);
                    } else {
                        match (value.as_f64(), stored.as_f64()) {
                            (Some(a), Some(b)) => prop_assert_eq!(a, b, "{}", field),
                            _ => prop_assert_eq!(value, stored, "{}", field),
                        }
                    }
                }
            }
            Err(e) => {
                prop_assert!(e.is_invalid_input(), "{e:?}");
                prop_assert!(rows.is_empty());
            }
        }
    }

    /// The generic calls take any JSON: either the metric is stored and
    /// reads back as given, or the call fails with an input error and
    /// nothing is written. Never a panic.
    #[test]
    fn generic_calls_survive_arbitrary_json(data in arbitrary_json(), filters in arbitrary_json(), kind in prop::sample::select(MetricKind::ALL.to_vec())) {
        let store = MetricsStorage::temporary().unwrap();
        match store.store_metric(kind, &data) {
            Ok(_) => {
                let rows = store.query_metrics(kind, &Value::Null, None, 10).unwrap();
                prop_assert_eq!(rows.len(), 1);
                for (field, value) in data.as_object().unwrap() {
                    if field == "kind" || field == "timestamp" || value.is_null() {
                        continue;
                    }
                    let stored = &rows[0][field];
                    match (value.as_f64(), stored.as_f64()) {
                        (Some(a), Some(b)) => prop_assert_eq!(a, b, "{}", field),
                        _ => prop_assert_eq!(value, stored, "{}", field),
                    }
                }
            }
            Err(e) => {
                prop_assert!(e.is_invalid_input(), "{e:?}");
                prop_assert_eq!(store.stats().unwrap().task_metrics.rows + store.stats().unwrap().agent_metrics.rows + store.stats().unwrap().swarm_metrics.rows, 0);
            }
        }
        if let Err(e) = store.query_metrics(kind, &filters, None, 5) {
            prop_assert!(e.is_invalid_input(), "{e:?}");
        }
    }
}
