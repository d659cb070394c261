//! Writers beside readers, as an orchestrator's store is used: four
//! threads store one task at a time while two threads read (one a success
//! rate over the last hour, one an agent's last hour, each every 50 ms)
//! and tiered retention runs every ten seconds, against the same four
//! writers alone. The WAL file's size is sampled meanwhile.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use swarm_metrics::{Filter, MetricsStorage, RetentionPolicy, TaskMetric, TaskResult, TimeRange};

const WRITERS: u64 = 4;
const AGENTS: u64 = 100;
/// How often each reader reads.
const READ_EVERY: Duration = Duration::from_millis(50);
/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(10);
/// How often the WAL's size is sampled.
const WAL_EVERY: Duration = Duration::from_millis(10);
/// Tasks of history, one every 13 s back from the start: 30 days for
/// retention to fold.
const HISTORY: u64 = 200_000;

/// What one run measured.
pub struct Soak {
    pub stores_per_s: f64,
    pub store_p99_ms: f64,
    pub store_max_ms: f64,
    pub wal_peak_mib: f64,
    /// Reads' latencies (0 without readers).
    pub read_p99_ms: f64,
    pub read_max_ms: f64,
}

fn task(i: u64, at: DateTime<Utc>) -> TaskMetric {
    let result = if i % 10 == 0 {
        TaskResult::Failure
    } else {
        TaskResult::Success
    };
    TaskMetric::new(
        format!("soak-{i}"),
        format!("agent-{:03}", i % AGENTS),
        100 + i % 900,
        result,
    )
    .at(at)
}

/// The `q` quantile of sorted latencies, in milliseconds (0 for none).
fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

fn wal_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Runs the workload on a new store at `path` for `seconds`, with the
/// readers and retention when `readers` is set.
pub fn run(path: &Path, seconds: u64, readers: bool) -> Soak {
    let store = MetricsStorage::open(path).unwrap();
    let start = swarm_metrics::now();
    let history: Vec<TaskMetric> = (0..HISTORY)
        .map(|i| task(i, start - chrono::Duration::seconds((i * 13 + 1) as i64)))
        .collect();
    for chunk in history.chunks(10_000) {
        store.store_task_metrics(chunk).unwrap();
    }
    drop(history);
    let wal = wal_of(path);

    let stop = AtomicBool::new(false);
    let stored = AtomicU64::new(0);
    let wal_peak = AtomicU64::new(0);
    let store_latencies = Mutex::new(Vec::new());
    let read_latencies = Mutex::new(Vec::new());
    let clock = Instant::now();
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (store, stop, stored, latencies) = (&store, &stop, &stored, &store_latencies);
            s.spawn(move || {
                let mut mine = Vec::with_capacity(1 << 20);
                let mut i = HISTORY * (w + 1);
                while !stop.load(Ordering::Relaxed) {
                    let t = task(i, swarm_metrics::now());
                    let began = Instant::now();
                    store.store_task_metric(&t).unwrap();
                    mine.push(began.elapsed());
                    i += 1;
                }
                stored.fetch_add(mine.len() as u64, Ordering::Relaxed);
                latencies.lock().unwrap().extend(mine);
            });
        }
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                wal_peak.fetch_max(size, Ordering::Relaxed);
                std::thread::sleep(WAL_EVERY);
            }
        });
        if readers {
            for r in 0..2 {
                let (store, stop, latencies) = (&store, &stop, &read_latencies);
                s.spawn(move || {
                    let mut mine = Vec::new();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let hour = TimeRange::last(chrono::Duration::hours(1)).unwrap();
                        let began = Instant::now();
                        if r == 0 {
                            std::hint::black_box(
                                store.success_rate(&Filter::new().range(hour)).unwrap(),
                            );
                        } else {
                            let agent = format!("agent-{:03}", n % AGENTS);
                            let filter = Filter::new().agent(&agent).range(hour);
                            std::hint::black_box(store.get_task_metrics(&filter, 1000).unwrap());
                        }
                        mine.push(began.elapsed());
                        n += 1;
                        std::thread::sleep(READ_EVERY);
                    }
                    latencies.lock().unwrap().extend(mine);
                });
            }
            s.spawn(|| {
                let policy = RetentionPolicy::default();
                let mut next = Instant::now() + RETENTION_EVERY;
                while !stop.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        store.apply_retention(&policy).unwrap();
                        next += RETENTION_EVERY;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = clock.elapsed();
    store.close().unwrap();
    let mut stores = store_latencies.into_inner().unwrap();
    let mut reads = read_latencies.into_inner().unwrap();
    stores.sort_unstable();
    reads.sort_unstable();
    Soak {
        stores_per_s: stored.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        store_p99_ms: percentile_ms(&stores, 0.99),
        store_max_ms: percentile_ms(&stores, 1.0),
        wal_peak_mib: wal_peak.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0),
        read_p99_ms: percentile_ms(&reads, 0.99),
        read_max_ms: percentile_ms(&reads, 1.0),
    }
}
