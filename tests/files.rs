//! Opening, closing and reopening files; files that are not ours, are
//! newer, damaged or not files at all: each refused with its own error and
//! left exactly as it was.

mod common;

use std::path::Path;

use swarm_metrics::{
    Error, Filter, MetricType, MetricsStorage, SwarmMetric, TaskMetric, TaskResult, SCHEMA_VERSION,
};

fn sample_task(i: usize) -> TaskMetric {
    TaskMetric::new(format!("task-{i}"), "agent", 10, TaskResult::Success)
}

fn wal_files(path: &Path) -> Vec<std::path::PathBuf> {
    ["-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            p.into()
        })
        .filter(|p: &std::path::PathBuf| p.exists())
        .collect()
}

#[test]
fn open_creates_parent_folders_and_close_leaves_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/metrics.db");
    let store = MetricsStorage::open(&path).unwrap();
    store
        .store_task_metrics(&(0..100).map(sample_task).collect::<Vec<_>>())
        .unwrap();
    assert!(
        !wal_files(&path).is_empty(),
        "WAL mode keeps a -wal file while open"
    );
    store.close().unwrap();
    assert!(path.is_file());
    assert_eq!(wal_files(&path), Vec::<std::path::PathBuf>::new());

    let store = MetricsStorage::open(&path).unwrap();
    assert_eq!(
        store.get_task_metrics(&Filter::new(), 1000).unwrap().len(),
        100
    );
    drop(store);
    assert_eq!(
        wal_files(&path),
        Vec::<std::path::PathBuf>::new(),
        "drop closes as well"
    );
}

/// Opens `path`, expecting an error, and checks the file's bytes did not
/// change and no side files were left.
fn refused_untouched(path: &Path) -> Error {
    let before = std::fs::read(path).unwrap();
    let err = MetricsStorage::open(path).unwrap_err();
    assert_eq!(std::fs::read(path).unwrap(), before, "the file was changed");
    assert!(wal_files(path).is_empty(), "side files left behind");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    err
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    MetricsStorage::open(&path).unwrap().close().unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO metrics_schema_info (version, applied_at) VALUES (?1, 0)",
            [SCHEMA_VERSION + 1],
        )
        .unwrap();
    }
    let err = refused_untouched(&path);
    assert!(
        matches!(err, Error::SchemaTooNew { found, supported, .. } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
}

/// A file as version 1 of the schema left it, with three task metrics:
/// the first migration alone, with its version recorded as the store
/// records it.
const VERSION_1: &str = include_str!("../migrations/0001_initial.sql");
const VERSION_1_ROWS: &str = "
PRAGMA application_id = 1400327540;
INSERT INTO metrics_schema_info (version, applied_at) VALUES (1, 0);
INSERT INTO agents (id, name) VALUES (1, 'a1');
INSERT INTO swarms (id, name) VALUES (1, 's1');
INSERT INTO agent_swarms (swarm, agent) VALUES (1, 1);
INSERT INTO task_metrics VALUES
    (1750000000000000, 0, 0, 10, 5, 1, 1, 1, 't1'),
    (1750000000000000, 1, 1, 20, 6, 2, 1, NULL, 't2'),
    (1750000001000000, 0, 2, 30, 7, 3, 1, 1, 't3');
";

#[test]
fn a_version_1_file_is_migrated_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let v1 = rusqlite::Connection::open(&path).unwrap();
    v1.execute_batch(VERSION_1).unwrap();
    v1.execute_batch(VERSION_1_ROWS).unwrap();
    drop(v1);

    let store = MetricsStorage::open(&path).unwrap();
    assert_eq!(store.stats().unwrap().schema_version, SCHEMA_VERSION);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let old_index: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'idx_task_metrics_task')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!old_index);
    let view_rows: i64 = conn
        .query_row("SELECT count(*) FROM task_metrics_view", [], |r| r.get(0))
        .unwrap();
    assert_eq!(view_rows, 3);

    let rows = store.get_task_metrics(&Filter::new(), 10).unwrap();
    let got: Vec<_> = rows
        .iter()
        .map(|t| {
            (
                t.task_id.as_str(),
                t.swarm_id.as_deref(),
                t.duration_ms,
                t.result,
                t.tokens_used,
                t.files_changed,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("t3", Some("s1"), 30, TaskResult::Timeout, 7, 3),
            ("t2", None, 20, TaskResult::Failure, 6, 2),
            ("t1", Some("s1"), 10, TaskResult::Success, 5, 1),
        ]
    );
    // A retry of a migrated row is still recognised.
    let retry = TaskMetric::new("t1", "a1", 10, TaskResult::Success)
        .at(chrono::DateTime::from_timestamp(1_750_000_000, 0).unwrap());
    assert!(!store.store_task_metric(&retry).unwrap());
    assert_eq!(store.success_rate(&Filter::new()).unwrap().total, 3);
    // Migrated rows are in the agent index, and found by agent and swarm.
    assert_eq!(
        store
            .success_rate(&Filter::new().agent("a1"))
            .unwrap()
            .total,
        3
    );
    assert_eq!(
        store
            .success_rate(&Filter::new().swarm("s1"))
            .unwrap()
            .total,
        2
    );
    let unindexed: i64 = conn
        .query_row(
            "SELECT count(*) FROM task_metrics WHERE files_changed < 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unindexed, 0);
}

#[test]
fn another_applications_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'x');")
            .unwrap();
    }
    let err = refused_untouched(&path);
    assert!(matches!(err, Error::ForeignDatabase { .. }), "{err:?}");
}

/// An SQLite file with no tables but a `user_version` of its own is another
/// application's, not an empty store to write a schema into.
#[test]
fn an_empty_database_of_another_application_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 42)
        .unwrap();
    let err = refused_untouched(&path);
    assert!(matches!(err, Error::ForeignDatabase { .. }), "{err:?}");
}

/// Another application's file left with a hot journal (its process died
/// mid-transaction): the journal is not rolled back, the bytes of both
/// files stay as they were.
#[test]
fn another_applications_hot_journal_is_not_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.db");
    let conn = rusqlite::Connection::open(&live).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = DELETE; PRAGMA cache_size = 1;
         CREATE TABLE t (x BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
         INSERT INTO t SELECT randomblob(1000) FROM n;
         BEGIN; UPDATE t SET x = randomblob(1000);",
    )
    .unwrap();
    // Copied mid-transaction: a database with changed pages and the
    // journal that would undo them.
    let path = dir.path().join("app.db");
    let journal = dir.path().join("app.db-journal");
    std::fs::copy(&live, &path).unwrap();
    std::fs::copy(dir.path().join("live.db-journal"), &journal).unwrap();
    drop(conn);
    let journal_before = std::fs::read(&journal).unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = MetricsStorage::open(&path).unwrap_err();
    assert!(matches!(err, Error::ForeignDatabase { .. }), "{err:?}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the database changed"
    );
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        journal_before,
        "the journal changed"
    );
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(
        &path,
        "these are not the pages you are looking for\n".repeat(200),
    )
    .unwrap();
    let err = refused_untouched(&path);
    assert!(matches!(err, Error::NotADatabase { .. }), "{err:?}");
}

#[test]
fn a_truncated_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let store = MetricsStorage::open(&path).unwrap();
    store
        .store_task_metrics(&(0..5000).map(sample_task).collect::<Vec<_>>())
        .unwrap();
    store.close().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    // Depending on which pages survive, opening or the first read fails;
    // either way with an error, never a panic or wrong rows.
    match MetricsStorage::open(&path) {
        Err(err) => assert!(matches!(err, Error::NotADatabase { .. }), "{err:?}"),
        Ok(store) => {
            let read = store.get_task_metrics(&Filter::new(), 10_000);
            assert!(
                read.is_err(),
                "a truncated file read back {:?} rows",
                read.map(|r| r.len())
            );
        }
    }
}

#[test]
fn a_folder_is_not_a_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = MetricsStorage::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::CannotOpen { .. }), "{err:?}");
    assert!(err.to_string().contains("folder"), "{err}");
}

#[test]
fn a_path_under_a_file_cannot_be_created() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.txt");
    std::fs::write(&file, "x").unwrap();
    let err = MetricsStorage::open(file.join("metrics.db")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("plain.txt"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn read_only_stores_read_but_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let missing = MetricsStorage::builder(&path)
        .read_only(true)
        .open()
        .unwrap_err();
    assert!(matches!(missing, Error::CannotOpen { .. }), "{missing:?}");
    assert!(!path.exists(), "a read-only open must not create the file");

    let store = MetricsStorage::open(&path).unwrap();
    store.store_task_metric(&sample_task(1)).unwrap();
    store.close().unwrap();

    let store = MetricsStorage::builder(&path)
        .read_only(true)
        .open()
        .unwrap();
    assert!(store.is_read_only());
    assert_eq!(store.get_task_metrics(&Filter::new(), 10).unwrap().len(), 1);
    let err = store.store_task_metric(&sample_task(2)).unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    let err = store
        .store_swarm_metric(&SwarmMetric::new("s", MetricType::SwarmHealth, 1.0))
        .unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }));
    assert!(matches!(
        store.cleanup_old_metrics(1).unwrap_err(),
        Error::ReadOnly { .. }
    ));
    assert!(matches!(
        store.vacuum().unwrap_err(),
        Error::ReadOnly { .. }
    ));
}

#[test]
fn stores_from_two_handles_on_one_file_are_both_kept() {
    // Two stores (as two processes would) share the file through SQLite's
    // locking; neither overwrites the other.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    // Small index batches, so that each handle moves the agent index's
    // watermark past rows the other stored.
    let open = || {
        MetricsStorage::builder(&path)
            .index_batch_rows(7)
            .open()
            .unwrap()
    };
    let (a, b) = (open(), open());
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..200 {
                a.store_task_metric(&sample_task(i)).unwrap();
            }
        });
        s.spawn(|| {
            for i in 200..400 {
                b.store_task_metric(&sample_task(i)).unwrap();
            }
        });
    });
    for store in [&a, &b] {
        let all = store.get_task_metrics(&Filter::new(), 1000).unwrap();
        assert_eq!(all.len(), 400);
        let mut agents: Vec<String> = all.iter().map(|t| t.agent_id.clone()).collect();
        agents.sort();
        agents.dedup();
        let by_agent: usize = agents
            .iter()
            .map(|agent| {
                store
                    .get_task_metrics(&Filter::new().agent(agent.as_str()), 1000)
                    .unwrap()
                    .len()
            })
            .sum();
        assert_eq!(by_agent, 400, "a row is missing from the agent queries");
    }
    assert_eq!(common::index_state(&path).1, 0);
}

/// A small tmpfs mounted for one test, unmounted when dropped: a disk that
/// can really fill up. (The tests run as root, as CI does.)
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a {bytes}-byte tmpfs failed: these tests need root"
        );
        SmallDisk { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Fills what is left of the disk with a file of zeros.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.path("filler")).unwrap();
        let block = vec![0u8; 4096];
        while filler.write_all(&block).is_ok() {}
        let _ = filler.sync_all();
    }

    /// Makes the disk larger, as freeing space elsewhere would.
    fn grow(&self, bytes: u64) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

fn cli_on(db: &Path, args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("swarm-metrics"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn task_count(store: &MetricsStorage) -> u64 {
    store
        .aggregate_metrics(
            swarm_metrics::MetricKind::Task,
            swarm_metrics::AggregationType::Count,
            &Filter::new(),
        )
        .unwrap()
        .count
}

/// On a full disk: errors name the file and the cause, reads and `check`
/// still work (a healthy file is not called damaged), and old metrics can
/// be deleted in place, which gives the space back; the store is whole and
/// usable afterwards.
#[test]
fn on_a_full_disk_errors_name_the_file_and_space_is_freed_in_place() {
    let disk = SmallDisk::mount(4 << 20);
    let path = disk.path("m.db");
    let old = chrono::DateTime::from_timestamp(1_750_000_000, 0).unwrap();
    let store = MetricsStorage::open(&path).unwrap();
    let old_tasks: Vec<TaskMetric> = (0..20_000)
        .map(|i| sample_task(i).at(old + chrono::Duration::seconds(i as i64)))
        .collect();
    store.store_task_metrics(&old_tasks).unwrap();
    let old_agents: Vec<swarm_metrics::AgentMetric> = (0..500)
        .map(|i| {
            swarm_metrics::AgentMetric::new("agent", MetricType::AgentThroughput, i as f64).at(old)
        })
        .collect();
    store.store_agent_metrics(&old_agents).unwrap();
    let recent = swarm_metrics::now() - chrono::Duration::hours(1);
    let new_tasks: Vec<TaskMetric> = (20_000..20_300)
        .map(|i| sample_task(i).at(recent))
        .collect();
    store.store_task_metrics(&new_tasks).unwrap();
    store.close().unwrap();
    disk.fill();

    // Writing is impossible, and the error says where and why.
    let err = MetricsStorage::open(&path).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, Error::FileSystem { .. } | Error::DatabaseFull { .. }),
        "{err:?}"
    );
    assert!(message.contains(path.to_str().unwrap()), "{message}");
    assert!(
        message.contains("disk full") || message.contains("disk is full"),
        "{message}"
    );
    let (code, _, stderr) = cli_on(&path, &["cleanup", "--retention-days", "30"]);
    assert_eq!(code, 1);
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("--in-place"), "{stderr}");

    // Reading is possible, and a healthy file is healthy.
    let reader = MetricsStorage::builder(&path)
        .read_only(true)
        .open()
        .unwrap();
    assert_eq!(task_count(&reader), 20_300);
    drop(reader);
    let (code, stdout, stderr) = cli_on(&path, &["check"]);
    assert_eq!(
        (code, stdout.contains(": ok")),
        (0, true),
        "{stdout}{stderr}"
    );

    // Freeing space in place works, and gives the space back.
    let report = MetricsStorage::cleanup_in_place(&path, 30).unwrap();
    assert_eq!(
        (report.deleted.task_metrics, report.deleted.agent_metrics),
        (20_000, 500)
    );
    assert!(
        report.size.bytes_after * 2 < report.size.bytes_before,
        "{report:?}"
    );

    // The store opens as ever, with exactly the recent metrics, and stores.
    let store = MetricsStorage::open(&path).unwrap();
    assert!(store.integrity_check().unwrap().is_empty());
    assert_eq!(task_count(&store), 300);
    assert!(store
        .get_agent_metrics(&Filter::new(), 10)
        .unwrap()
        .is_empty());
    store.store_task_metric(&sample_task(99_999)).unwrap();
    assert_eq!(task_count(&store), 301);
}

/// When the store itself filled the disk, its WAL holds writes the main
/// file has no room for: nothing can be freed in place, which is said, and
/// the file is left as it was. An import that failed on the full disk
/// said exactly how many metrics it had stored, and once there is space
/// again everything is there.
#[test]
fn a_disk_filled_by_the_wal_is_refused_in_place_and_the_import_count_is_exact() {
    let disk = SmallDisk::mount(2 << 20);
    let path = disk.path("m.db");
    let elsewhere = tempfile::tempdir().unwrap();
    let input = elsewhere.path().join("in.jsonl");
    let lines: String = (0..40_000)
        .map(|i| {
            format!(
                "{{\"kind\":\"task\",\"task_id\":\"t{i}\",\"agent_id\":\"a{}\",\"duration_ms\":{i},\"result\":\"success\",\"timestamp\":\"2025-06-01T00:00:00.{i:06}Z\"}}\n",
                i % 7
            )
        })
        .collect();
    std::fs::write(&input, lines).unwrap();
    // All or nothing: the whole file does not fit, so nothing is stored.
    let (code, _, stderr) = cli_on(&path, &["import", input.to_str().unwrap()]);
    assert_eq!(code, 1, "the disk did not fill: {stderr}");
    assert!(
        stderr.contains("nothing of this import was stored"),
        "{stderr}"
    );
    let reader = MetricsStorage::builder(&path)
        .read_only(true)
        .open()
        .unwrap();
    assert_eq!(task_count(&reader), 0);
    drop(reader);

    let (code, _, stderr) = cli_on(
        &path,
        &["import", "--on-error", "skip", input.to_str().unwrap()],
    );
    assert_eq!(code, 1, "the disk did not fill: {stderr}");
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
    let stored: u64 = stderr
        .lines()
        .find_map(|line| {
            line.split(" metrics of this import were stored")
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no stored count: {stderr}"));

    let before = std::fs::read(&path).unwrap();
    let err = MetricsStorage::cleanup_in_place(&path, 30).unwrap_err();
    assert!(matches!(err, Error::NoRoomInPlace { .. }), "{err:?}");
    assert!(err.to_string().contains("free some space"), "{err}");
    assert!(std::fs::read(&path).unwrap() == before, "the file changed");

    // The way out: space on the disk, then everything is there.
    disk.grow(16 << 20);
    let store = MetricsStorage::open(&path).unwrap();
    assert_eq!(task_count(&store), stored);
    assert!(store.integrity_check().unwrap().is_empty());
}
