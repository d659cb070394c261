//! Soak: the normal deployment, all at once, for a while. Four threads
//! store task metrics one at a time, two threads read success rates and
//! agent histories without a pause, and tiered retention runs every ten
//! seconds; meanwhile the WAL file's size is sampled every 20 ms. Prints
//! the largest WAL seen, the stores per second, and the reads.
//!
//! ```sh
//! cargo run --release --example soak            # 180 s
//! SOAK_SECONDS=30 cargo run --release --example soak
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use swarm_metrics::{Filter, MetricsStorage, RetentionPolicy, TaskMetric, TaskResult, TimeRange};

const WRITERS: u64 = 4;
const READERS: u64 = 2;
const AGENTS: u64 = 100;

fn main() -> Result<(), swarm_metrics::Error> {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let store = MetricsStorage::temporary()?;
    let wal = {
        let mut name = store.path().as_os_str().to_owned();
        name.push("-wal");
        std::path::PathBuf::from(name)
    };

    // 30 days of history for retention to fold: 200,000 tasks.
    let now = swarm_metrics::now();
    let history: Vec<TaskMetric> = (0..200_000u64)
        .map(|i| task(i, now - chrono::Duration::seconds((i * 13) as i64)))
        .collect();
    for chunk in history.chunks(10_000) {
        store.store_task_metrics(chunk)?;
    }

    let stop = AtomicBool::new(false);
    let stores = AtomicU64::new(0);
    let reads = AtomicU64::new(0);
    let max_wal = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (store, stop, stores) = (&store, &stop, &stores);
            s.spawn(move || {
                let mut i = 1_000_000 * (w + 1);
                while !stop.load(Ordering::Relaxed) {
                    store
                        .store_task_metric(&task(i, swarm_metrics::now()))
                        .expect("store");
                    stores.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            });
        }
        for r in 0..READERS {
            let (store, stop, reads) = (&store, &stop, &reads);
            s.spawn(move || {
                let mut n = r;
                while !stop.load(Ordering::Relaxed) {
                    let day = TimeRange::last(chrono::Duration::hours(24)).expect("range");
                    store
                        .success_rate(&Filter::new().range(day))
                        .expect("success rate");
                    store
                        .get_task_metrics(
                            &Filter::new().agent(format!("agent-{}", n % AGENTS)),
                            100,
                        )
                        .expect("agent history");
                    reads.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            });
        }
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
                max_wal.fetch_max(size, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let policy = RetentionPolicy::default();
        let mut retention_runs = 0;
        while started.elapsed() < Duration::from_secs(seconds) {
            store.apply_retention(&policy).expect("retention");
            retention_runs += 1;
            let next = Duration::from_secs(10 * retention_runs);
            while started.elapsed() < next.min(Duration::from_secs(seconds)) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        stop.store(true, Ordering::Relaxed);
        println!("retention runs       {retention_runs}");
    });
    let elapsed = started.elapsed().as_secs_f64();
    let file = std::fs::metadata(store.path()).map_or(0, |m| m.len());
    println!("seconds              {elapsed:.0}");
    println!(
        "stores               {} ({:.0}/s from {WRITERS} threads)",
        stores.load(Ordering::Relaxed),
        stores.load(Ordering::Relaxed) as f64 / elapsed
    );
    println!(
        "reads                {} ({READERS} threads)",
        reads.load(Ordering::Relaxed)
    );
    println!(
        "max WAL              {:.1} MiB",
        max_wal.load(Ordering::Relaxed) as f64 / 1048576.0
    );
    println!("database file        {:.1} MiB", file as f64 / 1048576.0);
    store.close()
}

/// Task `i` of agent `i % AGENTS`, at `at`.
fn task(i: u64, at: chrono::DateTime<chrono::Utc>) -> TaskMetric {
    TaskMetric::new(
        format!("task-{i:08}"),
        format!("agent-{}", i % AGENTS),
        100 + i % 5_000,
        if i % 10 == 0 {
            TaskResult::Failure
        } else {
            TaskResult::Success
        },
    )
    .swarm(format!("swarm-{}", i % 10))
    .tokens(i % 4_000)
    .at(at)
}
