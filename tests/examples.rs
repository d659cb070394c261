//! The examples are part of the product: build them (cargo test does) and
//! run them on a small workload.

use std::path::PathBuf;
use std::process::Command;

use swarm_metrics::{Filter, MetricType, MetricsStorage};

/// `target/<profile>/examples/<name>`, next to this test's own binary in
/// `target/<profile>/deps/`.
fn example(name: &str) -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn orchestrator_fills_the_default_store_reports_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(example("orchestrator"))
        .current_dir(dir.path())
        .env_remove("SWARM_DB")
        .env("SWARM_TASKS", "1200")
        .env("SWARM_THREADS", "3")
        .output()
        .expect("the orchestrator example is built by cargo test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("swarm-2/agent-3"), "{stdout}");
    assert!(stdout.contains("Overall: 1200 tasks"), "{stdout}");
    assert!(stdout.contains("deleted 1000 task"), "{stdout}");

    // The day's report beside the store, of the day's tasks.
    let page = std::fs::read_to_string(dir.path().join(".swarm/report.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<h1>Swarm health: the simulated day</h1>"));
    assert!(page.contains("<div class=\"card\" id=\"tasks\" data-value=\"1200\">"));
    assert!(!page.contains("://"));

    // The default location, as the reference: .swarm/metrics.db, closed
    // into a single file.
    let path = dir.path().join(".swarm/metrics.db");
    assert!(path.is_file());
    assert!(!dir.path().join(".swarm/metrics.db-wal").exists());
    let store = MetricsStorage::open(&path).unwrap();
    assert_eq!(
        store.get_task_metrics(&Filter::new(), 5000).unwrap().len(),
        1200
    );
    let health = store
        .get_swarm_metrics(&Filter::new().metric_type(MetricType::SwarmHealth), 10)
        .unwrap();
    assert_eq!(health.len(), 3);
}

#[test]
fn orchestrator_rejects_bad_settings_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(example("orchestrator"))
        .current_dir(dir.path())
        .env("SWARM_TASKS", "lots")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SWARM_TASKS"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!dir.path().join(".swarm").exists());
}
