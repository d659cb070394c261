//! Crash safety: a child process stores batches and prints each batch's
//! number once the store has returned; the parent kills it with SIGKILL at
//! a random moment after its first acknowledged batch, reopens the file
//! and checks that it is intact, that every batch the child reported is
//! there whole, and that no batch is there in part. Twenty rounds on one
//! file.
//!
//! The child is this same test binary, run again with [`CHILD`] set in its
//! environment: the test then plays the child's part.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use swarm_metrics::{Filter, MetricsStorage, TaskMetric, TaskResult};

/// The environment variable that makes this test the child: the database
/// path and the round, separated by a line break.
const CHILD: &str = "SWARM_METRICS_CRASH_CHILD";
const ROUNDS: u64 = 20;
const BATCH: usize = 50;

/// Stores batches forever, printing each batch number once it is stored.
fn child(db: &Path, round: &str) {
    let store = MetricsStorage::open(db).expect("child opens the store");
    for batch in 0u64.. {
        let tasks: Vec<_> = (0..BATCH)
            .map(|i| {
                TaskMetric::new(
                    format!("r{round}-b{batch}-t{i}"),
                    format!("agent-{}", i % 5),
                    i as u64,
                    TaskResult::Success,
                )
                .swarm(format!("r{round}-b{batch}"))
            })
            .collect();
        store
            .store_task_metrics(&tasks)
            .expect("child stores a batch");
        println!("{batch}");
    }
}

/// Runs the child until `kill_after` past its first acknowledged batch,
/// kills it, and returns the batches it acknowledged.
fn run_round(db: &Path, round: u64, kill_after: Duration) -> Vec<u64> {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args([
            "every_acknowledged_batch_survives_sigkill_whole",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, format!("{}\n{round}", db.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let (first_tx, first_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut batches = Vec::new();
        // The test harness prints lines of its own; batch numbers are the
        // lines that are numbers.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(batch) = line.trim().parse::<u64>() {
                if batches.is_empty() {
                    let _ = first_tx.send(());
                }
                batches.push(batch);
            }
        }
        batches
    });
    if first_rx.recv_timeout(Duration::from_secs(60)).is_ok() {
        std::thread::sleep(kill_after);
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    reader.join().expect("reader thread")
}

fn verify(db: &Path, round: u64, acknowledged: &[u64]) {
    let store = MetricsStorage::open(db)
        .unwrap_or_else(|e| panic!("round {round}: the store does not open after SIGKILL: {e}"));
    let problems = store.integrity_check().expect("integrity check runs");
    assert!(
        problems.is_empty(),
        "round {round}: integrity check: {problems:?}"
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let prefix = format!("r{round}-b");
    store
        .for_each_task_metric(&Filter::new(), |t| {
            if let Some(swarm) = t.swarm_id.filter(|s| s.starts_with(&prefix)) {
                *counts.entry(swarm).or_default() += 1;
            }
            std::ops::ControlFlow::<()>::Continue(())
        })
        .expect("read back");
    for (batch, n) in &counts {
        assert_eq!(*n, BATCH, "round {round}: batch {batch} is partly present");
    }
    for batch in acknowledged {
        let key = format!("r{round}-b{batch}");
        assert_eq!(
            counts.get(&key),
            Some(&BATCH),
            "round {round}: acknowledged batch {key} is missing"
        );
    }
    store.close().expect("close");
}

#[test]
fn every_acknowledged_batch_survives_sigkill_whole() {
    if let Some(child_args) = std::env::var_os(CHILD) {
        let child_args = child_args.to_string_lossy().into_owned();
        let (db, round) = child_args
            .split_once('\n')
            .expect("the child's arguments: DB, a line break, ROUND");
        child(Path::new(db), round);
        return;
    }
    let dir = tempfile::tempdir().expect("temporary folder");
    let db = dir.path().join("crash.db");
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut acknowledged_total = 0;
    for round in 0..ROUNDS {
        // A different moment each round, from 5 to 205 ms after the first
        // acknowledged batch.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_after = Duration::from_millis(5 + seed % 200);
        let acknowledged = run_round(&db, round, kill_after);
        assert!(
            !acknowledged.is_empty(),
            "round {round}: the child acknowledged no batch"
        );
        verify(&db, round, &acknowledged);
        acknowledged_total += acknowledged.len();
    }
    println!(
        "crash safety: {ROUNDS} SIGKILL rounds, {acknowledged_total} acknowledged batches of \
         {BATCH} all present and whole, no partial batch"
    );
}
