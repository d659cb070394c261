//! Crash safety: a child process stores batches and prints each batch's
//! number once the store has returned; the parent kills it with SIGKILL at
//! a random moment, reopens the file and checks that it is intact, that
//! every batch the child reported is there whole, and that no batch is
//! there in part. Twenty rounds on one file.
//!
//! This file is its own harness: run without arguments it is the parent;
//! with `child DB ROUND` it is the child.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use swarm_metrics::{Filter, MetricsStorage, TaskMetric, TaskResult};

const ROUNDS: u64 = 20;
const BATCH: usize = 50;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(Path::new(&args[2]), &args[3]);
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temporary folder");
    let db = dir.path().join("crash.db");
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut acknowledged_total = 0;
    for round in 0..ROUNDS {
        // A different moment each round, from 5 to 205 ms into the run.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_after = Duration::from_millis(5 + seed % 200);
        let acknowledged = run_round(&db, round, kill_after);
        verify(&db, round, &acknowledged);
        acknowledged_total += acknowledged.len();
    }
    println!(
        "crash safety: {ROUNDS} SIGKILL rounds, {acknowledged_total} acknowledged batches of {BATCH} \
         all present and whole, no partial batch ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}

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

/// Runs the child until `kill_after`, kills it, and returns the batches it
/// acknowledged.
fn run_round(db: &Path, round: u64, kill_after: Duration) -> Vec<u64> {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .arg("child")
        .arg(db)
        .arg(round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| line.trim().parse::<u64>().ok())
            .collect::<Vec<_>>()
    });
    std::thread::sleep(kill_after);
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
            Ok(())
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
