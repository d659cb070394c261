//! Stores from other processes while the command line runs maintenance on
//! the same file. A file of its own, so that no other test competes for
//! the processor while it measures waits against a busy timeout.

use chrono::Duration;
use swarm_metrics::{Filter, MetricsStorage, TaskMetric, TaskResult};

/// The environment variable that makes `stores_in_other_processes_never_fail_during_cli_maintenance`
/// a storing child: the database path, the child's number and how many
/// seconds to store, one per line.
const STORING_CHILD: &str = "SWARM_METRICS_STORING_CHILD";

/// Three processes store single task metrics for 8 seconds, each with
/// a busy timeout of 1 s, while the command line runs cleanup, tiered
/// retention and vacuum on the same file in a loop: no store fails, and
/// every one is there afterwards.
#[test]
fn stores_in_other_processes_never_fail_during_cli_maintenance() {
    if let Some(args) = std::env::var_os(STORING_CHILD) {
        let args = args.to_string_lossy().into_owned();
        let mut lines = args.lines();
        let (db, child, seconds) = (
            lines.next().unwrap(),
            lines.next().unwrap(),
            lines.next().unwrap().parse::<u64>().unwrap(),
        );
        // A short busy timeout: a store that had to wait for a whole
        // maintenance run, rather than one chunk of it, fails.
        let store = MetricsStorage::builder(db)
            .busy_timeout(std::time::Duration::from_secs(1))
            .open()
            .unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        let mut stored = 0;
        while std::time::Instant::now() < until {
            let task = TaskMetric::new(
                format!("c{child}-{stored}"),
                format!("child-{child}"),
                1,
                TaskResult::Success,
            );
            if let Err(e) = store.store_task_metric(&task) {
                println!("error after {stored} stores: {e}");
                std::process::exit(3);
            }
            stored += 1;
        }
        store.close().unwrap();
        println!("\nstored {stored}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    {
        let store = MetricsStorage::open(&db).unwrap();
        // Rows for cleanup (40 days old) and for tiered retention (10 days).
        for (days, n) in [(40, 100_000), (10, 60_000)] {
            let at = swarm_metrics::now() - Duration::days(days);
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    TaskMetric::new(
                        format!("old-{days}-{i}"),
                        format!("old-{}", i % 50),
                        5,
                        TaskResult::Failure,
                    )
                    .at(at + Duration::milliseconds(i))
                })
                .collect();
            store.store_task_metrics(&tasks).unwrap();
        }
        store.close().unwrap();
    }
    let children: Vec<_> = (0..3)
        .map(|c| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "stores_in_other_processes_never_fail_during_cli_maintenance",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(STORING_CHILD, format!("{}\n{c}\n8", db.display()))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let cli = assert_cmd::cargo::cargo_bin("swarm-metrics");
    let maintenance: [&[&str]; 4] = [
        &["cleanup", "--retention-days", "30"],
        &["cleanup", "--policy", "7d,90d,2y"],
        &["vacuum"],
        &["cleanup", "--retention-days", "30", "--vacuum"],
    ];
    // Every command at least once, and for 6 s, while the children store
    // for 8 s.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(6);
    let mut runs = 0;
    while std::time::Instant::now() < until || runs < maintenance.len() {
        let args = maintenance[runs % maintenance.len()];
        let out = std::process::Command::new(&cli)
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        runs += 1;
    }
    let mut stored = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "a storing process failed: {text}");
        // The harness may print the test's name on the same line.
        let line = text
            .split("stored ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("the child reports its stores: {text}"));
        stored += line.trim().parse::<u64>().unwrap();
    }
    let store = MetricsStorage::open(&db).unwrap();
    let new = store
        .success_rate(&Filter::new().result(TaskResult::Success))
        .unwrap();
    assert_eq!(new.total, stored);
    assert!(store.integrity_check().unwrap().is_empty());
}
