//! The migrations, schema.sql and opening files of every version.

use super::*;
use crate::engine::sqlite::open::settings::Durability;
use std::time::Duration;

/// `schema.sql` shows the schema that the migrations make, for people
/// reading it; this test keeps it true. After a new migration, write it
/// anew with `SWARM_METRICS_WRITE_SCHEMA=1 cargo test --lib schema_sql`.
#[test]
fn schema_sql_is_what_the_migrations_make() {
    let conn = Connection::open_in_memory().unwrap();
    create_for_test(&conn);
    let mut dump = String::from("-- The swarm-metrics schema, version ");
    dump.push_str(&SCHEMA_VERSION.to_string());
    dump.push_str(
        ", as the migrations in migrations/ make it.\n\
         -- Written by a test from those files (which say why each part is as it is);\n\
         -- do not edit by hand. The rows the migrations insert are not shown.\n",
    );
    let mut stmt = conn
        .prepare(
            "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' \
             ORDER BY rowid",
        )
        .unwrap();
    let statements = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    for sql in statements {
        dump.push('\n');
        dump.push_str(&sql.unwrap());
        dump.push_str(";\n");
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.sql");
    if std::env::var_os("SWARM_METRICS_WRITE_SCHEMA").is_some() {
        std::fs::write(path, &dump).unwrap();
    }
    let file = std::fs::read_to_string(path).unwrap();
    assert!(
        file == dump,
        "schema.sql is not what the migrations make; write it anew with \
         SWARM_METRICS_WRITE_SCHEMA=1 cargo test --lib schema_sql"
    );
}

/// A file of schema `version` holding what `sql` inserts, in a folder
/// kept until the first value is dropped.
fn file_at_version(version: i64, sql: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .unwrap();
    apply_for_test(&conn, version);
    conn.execute_batch(sql).unwrap();
    (dir, path)
}

/// A task metric of the given fields, stamped `us` µs after the epoch.
fn task(
    id: &str,
    agent: &str,
    ms: u64,
    result: crate::TaskResult,
    tokens: u64,
    files: u64,
    us: i64,
) -> crate::TaskMetric {
    crate::TaskMetric::new(id, agent, ms, result)
        .tokens(tokens)
        .files(files)
        .at(chrono::DateTime::from_timestamp_micros(us).unwrap())
}

/// Migration 5 keeps a metric stored twice by an older version once,
/// the first stored, and keeps two readings of the same microsecond
/// that differ; a retry after it is ignored.
#[test]
fn version_4_duplicates_are_kept_once() {
    use crate::{AgentMetric, Filter, MetricKind, MetricType, MetricsStorage, SwarmMetric};
    let (_dir, path) = file_at_version(
        4,
        "INSERT INTO agents (id, name) VALUES (1, 'a1');
         INSERT INTO swarms (id, name) VALUES (1, 's1');
         INSERT INTO agent_metrics (agent, metric_type, value, metadata, timestamp) VALUES
             (1, 6, 0.5, '{\"first\":true}', 1000000),
             (1, 6, 0.5, '{\"first\":false}', 1000000),
             (1, 6, 0.5, NULL, 1000000),
             (1, 6, 0.7, NULL, 1000000),
             (1, 7, 0.5, NULL, 1000000);
         INSERT INTO swarm_metrics (swarm, metric_type, value, metadata, timestamp) VALUES
             (1, 9, 1.0, NULL, 2000000),
             (1, 9, 1.0, NULL, 2000000);",
    );

    let store = MetricsStorage::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let agents = store.get_agent_metrics(&Filter::new(), 100).unwrap();
    let mut kept: Vec<(f64, Option<String>)> = agents
        .iter()
        .map(|m| {
            let metadata = m.metric.metadata.as_ref().map(|v| v.to_string());
            (m.metric.value, metadata)
        })
        .collect();
    kept.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(
        kept,
        [
            (0.5, None),
            (0.5, Some("{\"first\":true}".to_owned())),
            (0.7, None)
        ]
    );
    let count = |kind| {
        store
            .aggregate_metrics(kind, crate::AggregationType::Count, &Filter::new())
            .unwrap()
            .count
    };
    assert_eq!(count(MetricKind::Swarm), 1);

    // Stored again, the first one is a retry: same id, nothing added.
    let at = chrono::DateTime::from_timestamp(1, 0).unwrap();
    let first = agents
        .iter()
        .find(|m| m.metric.metadata.is_some())
        .map(|m| m.metric_id)
        .unwrap();
    let retry = AgentMetric::new("a1", MetricType::AgentSuccessRate, 0.5).at(at);
    assert_eq!(store.store_agent_metric(&retry).unwrap(), first);
    assert_eq!(count(MetricKind::Agent), 3);
    let swarm = SwarmMetric::new("s1", MetricType::SwarmHealth, 1.0)
        .at(chrono::DateTime::from_timestamp(2, 0).unwrap());
    store.store_swarm_metric(&swarm).unwrap();
    assert_eq!(count(MetricKind::Swarm), 1);
}

/// Migration 7 keeps every task metric, indexed or not, with its
/// fields; rows of one microsecond read back in task-id order, and
/// retries of migrated rows are ignored.
#[test]
fn version_6_tasks_keep_their_answers_after_migration() {
    use crate::{Filter, MetricsStorage, TaskResult};
    // Three tasks in one microsecond, stored out of task-id order; the
    // last two rows not yet indexed.
    let (_dir, path) = file_at_version(
        6,
        "INSERT INTO agents (id, name) VALUES (1, 'a1'), (2, 'a2');
         INSERT INTO swarms (id, name) VALUES (1, 's1');
         INSERT INTO agent_swarms (swarm, agent) VALUES (1, 2);
         INSERT INTO task_metrics (timestamp, task_id, result, duration_ms, tokens_used,
                                   files_changed, agent, swarm, indexed) VALUES
             (5000000, 'c', 0, 30, 3, 1, 1, NULL, 1),
             (5000000, 'a', 1, 10, 1, 0, 2, 1, 1),
             (5000000, 'b', 2, 20, 2, 0, 1, NULL, 1),
             (9000000, 'd', 3, 40, 4, 2, 2, 1, 0),
             (9000001, 'e', 0, 50, 5, 0, 1, NULL, 0);
         UPDATE task_index_state SET watermark = 5000000;",
    );

    let store = MetricsStorage::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let at = |us| chrono::DateTime::from_timestamp_micros(us).unwrap();
    let expected = [
        task("e", "a1", 50, TaskResult::Success, 5, 0, 9_000_001),
        task("d", "a2", 40, TaskResult::Cancelled, 4, 2, 9_000_000).swarm("s1"),
        task("c", "a1", 30, TaskResult::Success, 3, 1, 5_000_000),
        task("b", "a1", 20, TaskResult::Timeout, 2, 0, 5_000_000),
        task("a", "a2", 10, TaskResult::Failure, 1, 0, 5_000_000).swarm("s1"),
    ];
    assert_eq!(
        store.get_task_metrics(&Filter::new(), 10).unwrap(),
        expected
    );
    let by_agent = store.get_task_metrics(&Filter::new().agent("a2"), 10);
    assert_eq!(
        by_agent.unwrap(),
        [expected[1].clone(), expected[4].clone()]
    );
    let by_task = store.get_task_metrics(&Filter::new().task("b"), 10);
    assert_eq!(by_task.unwrap(), [expected[3].clone()]);
    assert_eq!(store.store_task_metrics(&expected).unwrap(), 0);
    let later = task("a", "a1", 1, TaskResult::Success, 0, 0, 5_000_000);
    assert_eq!(
        store
            .store_task_metrics(std::slice::from_ref(&later))
            .unwrap(),
        0
    );
    let elsewhen = later.at(at(5_000_001));
    assert_eq!(store.store_task_metrics(&[elsewhen]).unwrap(), 1);
}

/// Migration 10 moves each row's index state into the sign of its
/// files_changed: rows keep their fields, usage and order, waiting rows
/// join the indexes later as before, and retries of migrated rows are
/// still found.
#[test]
fn version_9_tasks_keep_their_answers_after_migration() {
    use crate::{Filter, MetricsStorage, TaskResult, Usage};
    // Two microseconds of two rows each; the later two not yet
    // indexed. c was billed 1,500 µ$ by model m of provider p.
    let (_dir, path) = file_at_version(
        9,
        "INSERT INTO agents (id, name) VALUES (1, 'a1'), (2, 'a2');
         INSERT INTO models (id, model, provider) VALUES (1, 'm', 'p');
         INSERT INTO task_metrics (timestamp, seq, task_id, result, duration_ms, tokens_used,
                                   files_changed, agent, swarm, indexed, usage) VALUES
             (5000000, 0, 'c', 0, 30, 3, 1, 1, NULL, 1, x'1cdc0b'),
             (5000000, 1, 'a', 1, 10, 1, 0, 2, NULL, 1, NULL),
             (9000000, 0, 'd', 3, 40, 4, 2, 2, NULL, 0, NULL),
             (9000000, 1, 'b', 2, 20, 2, 0, 1, NULL, 0, NULL);
         UPDATE task_index_state SET watermark = 5000000;",
    );

    let store = MetricsStorage::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let billed = Usage::new().model("m").provider("p").cost(0.0015);
    // Newest first; rows of one microsecond by task id, last first.
    let expected = [
        task("d", "a2", 40, TaskResult::Cancelled, 4, 2, 9_000_000),
        task("b", "a1", 20, TaskResult::Timeout, 2, 0, 9_000_000),
        task("c", "a1", 30, TaskResult::Success, 3, 1, 5_000_000).usage(billed),
        task("a", "a2", 10, TaskResult::Failure, 1, 0, 5_000_000),
    ];
    assert_eq!(
        store.get_task_metrics(&Filter::new(), 10).unwrap(),
        expected
    );
    let by_agent = store.get_task_metrics(&Filter::new().agent("a2"), 10);
    assert_eq!(
        by_agent.unwrap(),
        [expected[0].clone(), expected[3].clone()]
    );
    for t in &expected {
        let by_task = store.get_task_metrics(&Filter::new().task(&t.task_id), 10);
        assert_eq!(by_task.unwrap(), std::slice::from_ref(t));
    }
    assert_eq!(store.store_task_metrics(&expected).unwrap(), 0);
    // A new row of a microsecond that has two takes the third place.
    let e = task("e", "a1", 50, TaskResult::Success, 5, 0, 9_000_000);
    assert_eq!(store.store_task_metrics(&[e]).unwrap(), 1);
    let files = |path: &Path| -> Vec<(String, i64)> {
        Connection::open(path)
            .unwrap()
            .prepare("SELECT task_id, files_changed FROM task_metrics")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    let row = |id: &str, files| (id.to_owned(), files);
    // Complemented while waiting for the indexes ...
    assert_eq!(
        files(&path),
        [
            row("c", 1),
            row("a", 0),
            row("d", -3),
            row("b", -1),
            row("e", -1)
        ]
    );
    // ... and the count itself once in them.
    store.close().unwrap();
    assert_eq!(
        files(&path),
        [
            row("c", 1),
            row("a", 0),
            row("d", 2),
            row("b", 0),
            row("e", 0)
        ]
    );
    assert_eq!(
        MetricsStorage::open(&path)
            .unwrap()
            .get_task_metrics(&Filter::new().agent("a2"), 10)
            .unwrap(),
        [expected[0].clone(), expected[3].clone()]
    );
}

#[test]
fn the_last_migration_reaches_the_schema_version() {
    let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.to).collect();
    let expected: Vec<i64> = (1..=SCHEMA_VERSION).collect();
    assert_eq!(versions, expected);
}

fn settings() -> ConnectionSettings {
    ConnectionSettings {
        busy_timeout: Duration::from_secs(1),
        durability: Durability::Normal,
        read_only: false,
        mmap_size: 0,
    }
}

#[test]
fn a_new_file_gets_the_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let conn = open_database(&path, &settings()).unwrap();
    let version: i64 = conn
        .query_row("SELECT max(version) FROM metrics_schema_info", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(conn);
    // Opening again finds it and changes nothing.
    open_database(&path, &settings()).unwrap();
}

#[test]
fn migrations_run_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let conn = open_database(&path, &settings()).unwrap();
    let steps = [
        Migration {
            to: SCHEMA_VERSION + 1,
            sql: "CREATE TABLE step_two (x INTEGER);",
            then: None,
        },
        Migration {
            to: SCHEMA_VERSION + 2,
            sql: "CREATE TABLE step_three (x INTEGER); SELECT no_such_function();",
            then: None,
        },
    ];
    // The second step fails: the first must not stay applied.
    assert!(migrate(&conn, &path, &steps, SCHEMA_VERSION + 2).is_err());
    let exists: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'step_two')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!exists);
    // Without the broken step, both the table and the version land.
    migrate(&conn, &path, &steps[..1], SCHEMA_VERSION + 1).unwrap();
    let version: i64 = conn
        .query_row("SELECT max(version) FROM metrics_schema_info", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION + 1);
    // A migration list that cannot reach the target is refused.
    let err = migrate(&conn, &path, &[], SCHEMA_VERSION + 5).unwrap_err();
    assert!(matches!(err, Error::SchemaTooOld { .. }));
}
