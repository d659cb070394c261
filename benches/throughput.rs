//! Throughput, latency and size of swarm-metrics against a hand-written
//! rusqlite baseline on the reference's task_metrics shape (integer
//! timestamps, its primary key and three indexes), measured in one run.
//!
//! ```text
//! cargo bench --bench throughput                         # 1,000,000 task metrics
//! SWARM_BENCH_ROWS=100000 cargo bench --bench throughput # quicker
//! SWARM_BENCH_ROWS=10000000 SWARM_BENCH_DAYS=300 cargo bench --bench throughput
//! ```
//!
//! The last keeps 1M's tasks per hour over ten times the history: how the
//! answers grow with history (`SWARM_BENCH_DAYS`, 30 by default).
//!
//! Prints one row per workload: the library's figure, the baseline's, and
//! their ratio (library / baseline; the last column says which way is
//! better). The baseline of `alerts_eval_100_rules` (100 alert rules
//! grouped by agent, evaluated and recorded) is the 100 `success_rate_by`
//! calls those rules read, in the same run. `store_single_4t` is four
//! threads storing one task each for `SWARM_BENCH_SOAK_SECONDS` (30), and
//! the `*_under_reads` rows the same beside two readers and retention
//! (`throughput/under_reads.rs`), against the four alone.
//!
//! With the `postgres` feature and `SWARM_METRICS_PG_URL` naming a server,
//! the same workloads run on a throwaway database there too, printed in a
//! column of their own:
//!
//! ```text
//! SWARM_METRICS_PG_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo bench --features postgres --bench throughput
//! ```
//!
//! `SWARM_BENCH_POSTGRES_ONLY=1` measures the server alone, without the
//! file's rows and their baselines (for comparing changes to the server
//! engine quickly); `SWARM_BENCH_SOAK_ONLY=1` runs only the writers beside
//! readers, alone and busy.

#[path = "throughput/under_reads.rs"]
mod under_reads;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection};
use swarm_metrics::{
    AggregationType, Filter, GroupBy, MetricKind, MetricsStorage, Price, RetentionPolicy, Rules,
    TaskMetric, TaskResult, TimeRange, Usage,
};

const AGENTS: u64 = 100;
const SWARMS: u64 = 10;
/// The days the tasks span (`SWARM_BENCH_DAYS`, 30 by default): at 10M
/// tasks, 300 days keep the density of 1M over 30, so that a run measures
/// how answers grow with history rather than with tasks per hour.
fn days() -> i64 {
    static DAYS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *DAYS.get_or_init(|| {
        std::env::var("SWARM_BENCH_DAYS")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&d: &i64| d >= 4)
            .unwrap_or(30)
    })
}
const BATCH: usize = 1_000;
const QUERY_SAMPLES: usize = 200;
/// Runs of each single-store workload; the median is reported.
const SINGLE_ROUNDS: usize = 5;
/// Evaluations of the 100 alert rules; the median is reported.
const ALERT_ROUNDS: usize = 7;

/// A small deterministic generator: every run stores the same metrics.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// The i-th of `rows` task metrics spread evenly over the 30 days before
/// `end`, time-ordered.
fn task(i: u64, rows: u64, end: DateTime<Utc>, rng: &mut Lcg) -> TaskMetric {
    let span_us = i128::from(days()) * 86_400_000_000;
    // In 128 bits: i × 30 days of microseconds passes i64 from 3.6M rows.
    let offset = span_us - i128::from(i) * span_us / i128::from(rows);
    let at = end - chrono::Duration::microseconds(offset as i64);
    let agent = rng.next() % AGENTS;
    let result = match rng.next() % 100 {
        0..=84 => TaskResult::Success,
        85..=94 => TaskResult::Failure,
        95..=97 => TaskResult::Timeout,
        _ => TaskResult::Cancelled,
    };
    let task = TaskMetric::new(
        format!("task-{i:08}"),
        format!("agent-{agent:03}"),
        100 + rng.next() % 60_000,
        result,
    )
    .swarm(format!("swarm-{:02}", agent % SWARMS))
    .files(rng.next() % 20)
    .at(at);
    // tokens_used is the total either way, as the baseline stores it.
    let task = task.tokens(rng.next() % 8_000);
    if without_usage() {
        return task;
    }
    let usage = usage(agent, task.tokens_used);
    task.usage(usage)
}

/// Whether tasks carry no usage (`SWARM_BENCH_NO_USAGE=1`): the bench as
/// it was before tasks had costs, to measure what pricing costs.
fn without_usage() -> bool {
    static WITHOUT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WITHOUT.get_or_init(|| std::env::var_os("SWARM_BENCH_NO_USAGE").is_some())
}

/// The models the bench's agents run, each priced (USD per million
/// input and output tokens) by [`set_prices`].
const MODELS: [(&str, f64, f64); 4] = [
    ("gpt-4o", 2.5, 10.0),
    ("gpt-4o-mini", 0.15, 0.6),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-haiku-4", 0.8, 4.0),
];

/// A task's usage: its agent's model and provider, and its tokens split
/// into input (three quarters) and output; priced as it is stored.
fn usage(agent: u64, tokens: u64) -> Usage {
    let (model, _, _) = MODELS[(agent % MODELS.len() as u64) as usize];
    let provider = if model.starts_with("gpt") {
        "openai"
    } else {
        "anthropic"
    };
    Usage::new()
        .model(model)
        .provider(provider)
        .input(tokens * 3 / 4)
        .output(tokens - tokens * 3 / 4)
}

/// Sets the prices of [`MODELS`] in `store`, from before the bench's
/// first task.
fn set_prices(store: &MetricsStorage) {
    let from = chrono::Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
    for (model, input, output) in MODELS {
        let price = Price {
            input,
            output,
            ..Price::default()
        };
        store.set_price(model, from, price).unwrap();
    }
}

fn tasks(range: std::ops::Range<u64>, rows: u64, end: DateTime<Utc>) -> Vec<TaskMetric> {
    let mut rng = Lcg(range.start + 7);
    range.map(|i| task(i, rows, end, &mut rng)).collect()
}

// ---------------------------------------------------------------- baseline

const REFERENCE_SCHEMA: &str = "
CREATE TABLE task_metrics (
    task_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    duration_ms INTEGER,
    result TEXT NOT NULL,
    tokens_used INTEGER DEFAULT 0,
    files_changed INTEGER DEFAULT 0,
    timestamp INTEGER NOT NULL,
    PRIMARY KEY (task_id, timestamp)
);
CREATE INDEX idx_task_metrics_agent ON task_metrics(agent_id, timestamp);
CREATE INDEX idx_task_metrics_time ON task_metrics(timestamp);
CREATE INDEX idx_task_metrics_result ON task_metrics(result, timestamp);";

const RAW_INSERT: &str = "INSERT INTO task_metrics \
    (task_id, agent_id, duration_ms, result, tokens_used, files_changed, timestamp) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

fn raw_open(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn
}

fn raw_create(path: &Path) -> Connection {
    let conn = raw_open(path);
    conn.execute_batch(REFERENCE_SCHEMA).unwrap();
    conn
}

fn raw_insert(conn: &Connection, t: &TaskMetric) {
    conn.prepare_cached(RAW_INSERT)
        .unwrap()
        .execute(params![
            t.task_id,
            t.agent_id,
            t.duration_ms as i64,
            t.result.as_str(),
            t.tokens_used as i64,
            t.files_changed as i64,
            t.timestamp.timestamp_micros()
        ])
        .unwrap();
}

/// The baseline's rows of task metrics `WHERE` `condition` (which may end
/// in an order and a limit), read whole, as the library reads them.
type RawRow = (String, String, i64, String, i64, i64, i64);

fn raw_rows(raw: &Connection, condition: &str, params: impl rusqlite::Params) -> Vec<RawRow> {
    let mut stmt = raw
        .prepare_cached(&format!(
            "SELECT task_id, agent_id, duration_ms, result, tokens_used, files_changed, timestamp \
             FROM task_metrics WHERE {condition}"
        ))
        .unwrap();
    stmt.query_map(params, |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

// ------------------------------------------------------------- measurement

struct Row {
    name: &'static str,
    unit: &'static str,
    ours: f64,
    baseline: Option<f64>,
    /// The same workload on a PostgreSQL store, when measured.
    postgres: Option<f64>,
    higher_is_better: bool,
}

impl Row {
    /// A workload where more is better (rows per second).
    fn higher(name: &'static str, unit: &'static str, ours: f64, baseline: Option<f64>) -> Row {
        Row {
            name,
            unit,
            ours,
            baseline,
            postgres: None,
            higher_is_better: true,
        }
    }

    /// A workload where less is better (time, bytes, memory).
    fn lower(name: &'static str, unit: &'static str, ours: f64, baseline: Option<f64>) -> Row {
        Row {
            name,
            unit,
            ours,
            baseline,
            postgres: None,
            higher_is_better: false,
        }
    }
}

fn rate(rows: usize, elapsed: Duration) -> f64 {
    rows as f64 / elapsed.as_secs_f64()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

/// Median latencies of `ours` and `base` over `QUERY_SAMPLES` calls each,
/// each on the i-th sample's arguments. The two take turns call by call
/// (and which goes first alternates), so that whatever else the machine
/// does meanwhile weighs on both alike.
fn paired_medians(mut ours: impl FnMut(usize), mut base: impl FnMut(usize)) -> (f64, f64) {
    // Warm the caches and the statement caches.
    ours(0);
    base(0);
    let time = |f: &mut dyn FnMut(usize), i| {
        let start = Instant::now();
        f(i);
        start.elapsed()
    };
    let (mut ours_samples, mut base_samples) = (Vec::new(), Vec::new());
    for i in 0..QUERY_SAMPLES {
        if i % 2 == 0 {
            ours_samples.push(time(&mut ours, i));
            base_samples.push(time(&mut base, i));
        } else {
            base_samples.push(time(&mut base, i));
            ours_samples.push(time(&mut ours, i));
        }
    }
    (median_ms(ours_samples), median_ms(base_samples))
}

/// Runs `cleanup` while another thread stores live metrics one at a time
/// with the store function `writer` makes (on that thread); returns how
/// long the cleanup took and the longest single store meanwhile.
fn cleanup_while_storing<W: FnMut(&TaskMetric)>(
    writer: impl FnOnce() -> W + Send,
    cleanup: impl FnOnce(),
) -> (Duration, Duration) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let storing = scope.spawn(|| {
            let mut store_one = writer();
            let mut worst = Duration::ZERO;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = TaskMetric::new(format!("live-{i}"), "agent-live", 10, TaskResult::Success);
                let clock = Instant::now();
                store_one(&t);
                worst = worst.max(clock.elapsed());
                i += 1;
            }
            worst
        });
        std::thread::sleep(Duration::from_millis(50));
        let clock = Instant::now();
        cleanup();
        let elapsed = clock.elapsed();
        stop.store(true, Ordering::Relaxed);
        (elapsed, storing.join().unwrap())
    })
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or("?".to_owned(), |kb| {
            format!("{:.0} GiB", kb / 1024.0 / 1024.0)
        });
    format!(
        "{cpu}, {cores} cores, {memory}, {} {}, SQLite {}",
        std::env::consts::OS,
        std::env::consts::ARCH,
        rusqlite::version()
    )
}

/// Processes and threads of the multi-process single-store workload.
const PROCESSES: usize = 3;
const THREADS_PER_PROCESS: usize = 4;

/// As a child of [`stores_from_processes`]: stores its share of single
/// metrics from [`THREADS_PER_PROCESS`] threads, then exits.
fn child_stores(job: &str) {
    let parts: Vec<&str> = job.split(';').collect();
    let [location, first, count, rows, end_us] = parts[..] else {
        panic!("bad child job {job:?}");
    };
    let (first, count): (u64, u64) = (first.parse().unwrap(), count.parse().unwrap());
    let rows: u64 = rows.parse().unwrap();
    let end = DateTime::from_timestamp_micros(end_us.parse().unwrap()).unwrap();
    let store = MetricsStorage::open(location).unwrap();
    let singles = tasks(first..first + count, rows, end);
    std::thread::scope(|scope| {
        for t in 0..THREADS_PER_PROCESS {
            let (store, singles) = (&store, &singles);
            scope.spawn(move || {
                for task in singles.iter().skip(t).step_by(THREADS_PER_PROCESS) {
                    assert!(store.store_task_metric(task).unwrap());
                }
            });
        }
    });
    store.close().unwrap();
}

/// Single stores from [`PROCESSES`] processes of [`THREADS_PER_PROCESS`]
/// threads each into the store at `location`, `count` metrics in all, ids
/// from `first` on: rows per second, process start-up included.
fn stores_from_processes(
    location: &str,
    first: u64,
    count: u64,
    rows: u64,
    end: DateTime<Utc>,
) -> f64 {
    let per_process = count / PROCESSES as u64;
    let clock = Instant::now();
    let children: Vec<_> = (0..PROCESSES as u64)
        .map(|p| {
            let job = format!(
                "{location};{};{per_process};{rows};{}",
                first + p * per_process,
                end.timestamp_micros()
            );
            std::process::Command::new(std::env::current_exe().unwrap())
                .env("SWARM_BENCH_CHILD", job)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a storing process failed");
    }
    rate((per_process * PROCESSES as u64) as usize, clock.elapsed())
}

/// What the queries ask, the same in every run: (agent, hours back) of
/// each window, and the task ids looked up.
fn query_samples(rows: u64) -> (Vec<(String, i64)>, Vec<String>) {
    let mut rng = Lcg(99);
    let windows = (0..=QUERY_SAMPLES)
        .map(|_| {
            let agent = format!("agent-{:03}", rng.next() % AGENTS);
            let hours_back = 24 + (rng.next() % (days() as u64 * 24 - 48)) as i64;
            (agent, hours_back)
        })
        .collect();
    let task_ids = (0..=QUERY_SAMPLES)
        .map(|_| format!("task-{:08}", rng.next() % rows))
        .collect();
    (windows, task_ids)
}

/// How long each soak runs (`SWARM_BENCH_SOAK_SECONDS`, 30 by default).
fn soak_seconds() -> u64 {
    std::env::var("SWARM_BENCH_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(30)
}

/// The writers beside readers alone (`SWARM_BENCH_SOAK_ONLY=1`).
fn soak_only() {
    let dir = tempfile::tempdir().unwrap();
    let seconds = soak_seconds();
    let alone = under_reads::run(&dir.path().join("soak-alone.db"), seconds, false);
    let busy = under_reads::run(&dir.path().join("soak-busy.db"), seconds, true);
    for (name, soak) in [("alone", alone), ("busy", busy)] {
        println!(
            "{name}: {:.0} stores/s, p99 {:.3} ms, max {:.1} ms, WAL peak {:.1} MiB, \
             reads p99 {:.1} ms, max {:.1} ms",
            soak.stores_per_s,
            soak.store_p99_ms,
            soak.store_max_ms,
            soak.wal_peak_mib,
            soak.read_p99_ms,
            soak.read_max_ms
        );
    }
}

fn main() {
    if let Ok(job) = std::env::var("SWARM_BENCH_CHILD") {
        return child_stores(&job);
    }
    let rows: u64 = std::env::var("SWARM_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n >= 10_000)
        .unwrap_or(1_000_000);
    if std::env::var_os("SWARM_BENCH_SOAK_ONLY").is_some() {
        return soak_only();
    }
    if std::env::var_os("SWARM_BENCH_POSTGRES_ONLY").is_some() {
        let (windows, task_ids) = query_samples(rows);
        for (name, figure) in postgres_figures(rows, swarm_metrics::now(), &windows, &task_ids) {
            println!("| {name:<27} | {figure:>14.3} |");
        }
        return;
    }
    let single_rows = (rows / 50).clamp(2_000, 20_000) as usize;
    let dir = tempfile::tempdir().unwrap();
    let end = swarm_metrics::now();
    let mut table = Vec::new();
    println!(
        "swarm-metrics throughput: {rows} task metrics, {AGENTS} agents, {SWARMS} swarms, {} days",
        days()
    );
    println!("machine: {}\n", machine());

    // store_batch: time-ordered batches of 1,000, the library and the
    // baseline taking turns batch by batch, so that both meet the same
    // moments of a machine whose speed drifts.
    let ours_path = dir.path().join("ours.db");
    let store = MetricsStorage::open(&ours_path).unwrap();
    set_prices(&store);
    let raw_path = dir.path().join("raw.db");
    let raw = raw_create(&raw_path);
    let (mut stored, mut raw_stored) = (Duration::ZERO, Duration::ZERO);
    for start in (0..rows).step_by(BATCH) {
        let batch = tasks(start..(start + BATCH as u64).min(rows), rows, end);
        let clock = Instant::now();
        store.store_task_metrics(&batch).unwrap();
        stored += clock.elapsed();
        let clock = Instant::now();
        let tx = raw.unchecked_transaction().unwrap();
        for t in &batch {
            raw_insert(&tx, t);
        }
        tx.commit().unwrap();
        raw_stored += clock.elapsed();
    }
    let peak_rss = peak_rss_mb();
    table.push(Row::higher(
        "store_batch",
        "rows/s",
        rate(rows as usize, stored),
        Some(rate(rows as usize, raw_stored)),
    ));
    eprintln!("stored {rows} rows in both stores");

    // store_single: one durable store per call. Single stores take well
    // under a second each, so one run is at the mercy of whatever else the
    // machine does; each figure is the median of SINGLE_ROUNDS runs, with
    // the baseline and the library taking turns, each on a fresh file.
    // Each run ends by closing its store, inside the timing: the library
    // then indexes the rows still waiting for the agent index, so none of
    // its work is left outside the measurement.
    let singles = tasks(0..single_rows as u64, single_rows as u64, end);
    let (mut raw_runs, mut one_thread_runs, mut eight_thread_runs) =
        (Vec::new(), Vec::new(), Vec::new());
    for round in 0..SINGLE_ROUNDS {
        let file = |name: &str| dir.path().join(format!("{name}-{round}.db"));
        raw_runs.push({
            let conn = raw_create(&file("raw-single"));
            let clock = Instant::now();
            for t in &singles {
                raw_insert(&conn, t);
            }
            conn.close().unwrap();
            rate(single_rows, clock.elapsed())
        });
        one_thread_runs.push({
            let s = MetricsStorage::open(file("single-1t")).unwrap();
            set_prices(&s);
            let clock = Instant::now();
            for t in &singles {
                s.store_task_metric(t).unwrap();
            }
            s.close().unwrap();
            rate(single_rows, clock.elapsed())
        });
        eight_thread_runs.push({
            let s = MetricsStorage::open(file("single-8t")).unwrap();
            set_prices(&s);
            let clock = Instant::now();
            // Thread i stores every 8th metric from the i-th on, so that
            // together they store in time order, as concurrent agents
            // reporting now do.
            std::thread::scope(|scope| {
                for first in 0..8 {
                    let (s, singles) = (&s, &singles);
                    scope.spawn(move || {
                        for t in singles.iter().skip(first).step_by(8) {
                            s.store_task_metric(t).unwrap();
                        }
                    });
                }
            });
            s.close().unwrap();
            rate(single_rows, clock.elapsed())
        });
    }
    let raw_single = median(raw_runs);
    table.push(Row::higher(
        "store_single_1t",
        "rows/s",
        median(one_thread_runs),
        Some(raw_single),
    ));
    table.push(Row::higher(
        "store_single_8t",
        "rows/s",
        median(eight_thread_runs),
        Some(raw_single),
    ));
    let processes_path = dir.path().join("processes.db");
    let processes = MetricsStorage::open(&processes_path).unwrap();
    set_prices(&processes);
    processes.close().unwrap();
    table.push(Row::higher(
        "store_single_3p4t",
        "rows/s",
        stores_from_processes(
            processes_path.to_str().unwrap(),
            rows * 2,
            single_rows as u64,
            rows,
            end,
        ),
        Some(raw_single),
    ));
    eprintln!("measured single stores");

    // Writers beside readers: the four writers alone, then with the
    // readers and retention beside them, each on a file with 30 days of
    // history (see throughput/under_reads.rs).
    let soak_seconds = soak_seconds();
    let alone = under_reads::run(&dir.path().join("soak-alone.db"), soak_seconds, false);
    let busy = under_reads::run(&dir.path().join("soak-busy.db"), soak_seconds, true);
    table.push(Row::higher(
        "store_single_4t",
        "rows/s",
        alone.stores_per_s,
        Some(raw_single),
    ));
    table.push(Row::higher(
        "store_single_4t_under_reads",
        "rows/s",
        busy.stores_per_s,
        Some(alone.stores_per_s),
    ));
    table.push(Row::lower(
        "store_p99_ms_under_reads",
        "ms",
        busy.store_p99_ms,
        Some(alone.store_p99_ms),
    ));
    table.push(Row::lower(
        "store_max_ms_under_reads",
        "ms",
        busy.store_max_ms,
        Some(alone.store_max_ms),
    ));
    table.push(Row::lower(
        "wal_peak_mib_under_reads",
        "MiB",
        busy.wal_peak_mib,
        Some(alone.wal_peak_mib),
    ));
    table.push(Row::lower(
        "read_p99_ms_under_reads",
        "ms",
        busy.read_p99_ms,
        None,
    ));
    table.push(Row::lower(
        "read_max_ms_under_reads",
        "ms",
        busy.read_max_ms,
        None,
    ));
    eprintln!("measured writers beside readers");

    // Queries over the full data set.
    let (windows, task_ids) = query_samples(rows);
    let range_of = |hours_back: i64, span_hours: i64| {
        let start = end - chrono::Duration::hours(hours_back);
        TimeRange::new(start, start + chrono::Duration::hours(span_hours)).unwrap()
    };
    let micros = |r: &TimeRange| (r.start().timestamp_micros(), r.end().timestamp_micros());

    let (ours, base) = paired_medians(
        |i| {
            let (agent, back) = &windows[i];
            let filter = Filter::new().agent(agent).range(range_of(*back, 1));
            std::hint::black_box(store.get_task_metrics(&filter, 1000).unwrap());
        },
        |i| {
            let (agent, back) = &windows[i];
            let (a, b) = micros(&range_of(*back, 1));
            let rows = raw_rows(
                &raw,
                "agent_id = ?1 AND timestamp BETWEEN ?2 AND ?3 ORDER BY timestamp DESC LIMIT 1000",
                params![agent, a, b],
            );
            std::hint::black_box(rows);
        },
    );
    table.push(Row::lower("query_agent_1h", "ms", ours, Some(base)));

    // One task by id, as an orchestrator asks when it retries or reports
    // a task.
    let (ours, base) = paired_medians(
        |i| {
            let filter = Filter::new().task(&task_ids[i]);
            let found = store.get_task_metrics(&filter, 1000).unwrap();
            assert_eq!(found.len(), 1);
            std::hint::black_box(found);
        },
        |i| {
            let rows = raw_rows(
                &raw,
                "task_id = ?1 ORDER BY timestamp DESC LIMIT 1000",
                params![task_ids[i]],
            );
            assert_eq!(rows.len(), 1);
            std::hint::black_box(rows);
        },
    );
    table.push(Row::lower("query_task_id", "ms", ours, Some(base)));

    let (ours, base) = paired_medians(
        |i| {
            let filter = Filter::new().range(range_of(windows[i].1, 24));
            std::hint::black_box(
                store
                    .aggregate_metrics(MetricKind::Task, AggregationType::Avg, &filter)
                    .unwrap(),
            );
        },
        |i| {
            let (a, b) = micros(&range_of(windows[i].1, 24));
            let v: Option<f64> = raw
                .prepare_cached(
                    "SELECT avg(duration_ms) FROM task_metrics WHERE timestamp BETWEEN ?1 AND ?2",
                )
                .unwrap()
                .query_row(params![a, b], |r| r.get(0))
                .unwrap();
            std::hint::black_box(v);
        },
    );
    table.push(Row::lower("aggregate_avg_24h", "ms", ours, Some(base)));

    let (ours, base) = paired_medians(
        |i| {
            let filter = Filter::new().range(range_of(windows[i].1, 24));
            std::hint::black_box(store.success_rate(&filter).unwrap());
        },
        |i| {
            let (a, b) = micros(&range_of(windows[i].1, 24));
            let mut stmt = raw
            .prepare_cached(
                "SELECT result, count(*) FROM task_metrics WHERE timestamp BETWEEN ?1 AND ?2 GROUP BY result",
            )
            .unwrap();
            let counts: Vec<(String, i64)> = stmt
                .query_map(params![a, b], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            std::hint::black_box(counts);
        },
    );
    table.push(Row::lower("success_rate_24h", "ms", ours, Some(base)));

    let (ours, base) = paired_medians(
        |i| {
            let filter = Filter::new().range(range_of(windows[i].1, 24));
            std::hint::black_box(store.percentile(MetricKind::Task, 0.95, &filter).unwrap());
        },
        |i| {
            let (a, b) = micros(&range_of(windows[i].1, 24));
            let mut stmt = raw
            .prepare_cached(
                "SELECT duration_ms FROM task_metrics WHERE timestamp BETWEEN ?1 AND ?2 ORDER BY duration_ms",
            )
            .unwrap();
            let values: Vec<i64> = stmt
                .query_map(params![a, b], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let rank = 0.95 * (values.len() - 1) as f64;
            let (lo, hi) = (
                values[rank.floor() as usize] as f64,
                values[rank.ceil() as usize] as f64,
            );
            std::hint::black_box(lo + (hi - lo) * rank.fract());
        },
    );
    table.push(Row::lower("percentile_p95_24h", "ms", ours, Some(base)));

    let clock = Instant::now();
    for _ in 0..3 {
        std::hint::black_box(
            store
                .aggregate_metrics(MetricKind::Task, AggregationType::Avg, &Filter::new())
                .unwrap(),
        );
    }
    let ours = clock.elapsed().as_secs_f64() * 1e3 / 3.0;
    let clock = Instant::now();
    for _ in 0..3 {
        let v: Option<f64> = raw
            .query_row("SELECT avg(duration_ms) FROM task_metrics", [], |r| {
                r.get(0)
            })
            .unwrap();
        std::hint::black_box(v);
    }
    let base = clock.elapsed().as_secs_f64() * 1e3 / 3.0;
    table.push(Row::lower("aggregate_avg_all", "ms", ours, Some(base)));

    // 100 alert rules, each grouped by agent over a window of its own
    // before an instant (31 to 130 minutes, so that no two share a read),
    // against the 100 success_rate_by calls they read (this row's
    // baseline is the library's own calls, not raw rusqlite).
    let rules: String = (0..100)
        .map(|i| {
            format!(
                "[[rule]]\nname = \"rule-{i:03}\"\nkind = \"success_rate\"\n\
                 group_by = \"agent\"\nwindow = \"{}m\"\nbelow = {}\n",
                31 + i,
                0.5 + 0.004 * f64::from(i)
            )
        })
        .collect();
    let rules = Rules::from_toml_str(&rules).unwrap();
    let (mut evaluations, mut calls) = (Vec::new(), Vec::new());
    // Evaluations go forward in time, as they do live.
    let mut backs: Vec<i64> = windows.iter().take(ALERT_ROUNDS).map(|w| w.1).collect();
    backs.sort_unstable_by(|a, b| b.cmp(a));
    for (i, back) in backs.into_iter().enumerate() {
        let at = end - chrono::Duration::hours(back);
        let filters: Vec<Filter> = (0..100)
            .map(|i| {
                let start = at - chrono::Duration::minutes(31 + i);
                Filter::new().range(TimeRange::new(start, at).unwrap())
            })
            .collect();
        let mut evaluate = || {
            let clock = Instant::now();
            std::hint::black_box(store.evaluate_alerts(&rules, at).unwrap());
            evaluations.push(clock.elapsed());
        };
        let mut read = || {
            let clock = Instant::now();
            for filter in &filters {
                std::hint::black_box(store.success_rate_by(GroupBy::Agent, filter).unwrap());
            }
            calls.push(clock.elapsed());
        };
        if i % 2 == 0 {
            evaluate();
            read();
        } else {
            read();
            evaluate();
        }
    }
    table.push(Row::lower(
        "alerts_eval_100_rules",
        "ms",
        median_ms(evaluations),
        Some(median_ms(calls)),
    ));
    eprintln!("measured queries");

    // Size on disk after close, indexes included.
    drop(store);
    drop(raw);
    let ours_bytes = file_size(&ours_path) as f64 / rows as f64;
    let raw_bytes = file_size(&raw_path) as f64 / rows as f64;

    // Tiered retention with the default policy on a copy of the file,
    // then a full vacuum: how long it takes, and what share of the bytes
    // is left. The baseline deletes what is older than the raw horizon
    // (7 days) and vacuums: the least a file can keep and still answer
    // for the last week.
    let (retention_s, shrink) = {
        let copy = dir.path().join("retention.db");
        std::fs::copy(&ours_path, &copy).unwrap();
        let before = file_size(&copy) as f64;
        let store = MetricsStorage::open(&copy).unwrap();
        let clock = Instant::now();
        let report = store.apply_retention(&RetentionPolicy::default()).unwrap();
        let elapsed = clock.elapsed().as_secs_f64();
        assert!(report.finished && report.raw_folded > 0, "{report:?}");
        store.vacuum().unwrap();
        store.close().unwrap();
        let after = file_size(&copy) as f64;
        std::fs::remove_file(&copy).unwrap();
        (elapsed, after / before)
    };
    let (raw_retention_s, raw_shrink) = {
        let copy = dir.path().join("raw-retention.db");
        std::fs::copy(&raw_path, &copy).unwrap();
        let before = file_size(&copy) as f64;
        let conn = raw_open(&copy);
        let clock = Instant::now();
        let cutoff = (end - chrono::Duration::days(7)).timestamp_micros();
        conn.execute("DELETE FROM task_metrics WHERE timestamp < ?1", [cutoff])
            .unwrap();
        let elapsed = clock.elapsed().as_secs_f64();
        conn.execute_batch("VACUUM").unwrap();
        drop(conn);
        let after = file_size(&copy) as f64;
        std::fs::remove_file(&copy).unwrap();
        (elapsed, after / before)
    };
    eprintln!("measured retention");

    // cleanup_half while a writer keeps storing single metrics.
    let store = MetricsStorage::open(&ours_path).unwrap();
    let (ours_cleanup, ours_wait) = cleanup_while_storing(
        || |t: &TaskMetric| assert!(store.store_task_metric(t).unwrap()),
        || {
            let report = store.cleanup_old_metrics((days() / 2) as u32).unwrap();
            assert!(report.task_metrics >= rows / 2 - rows / 100, "{report:?}");
        },
    );
    let raw = raw_open(&raw_path);
    let (raw_cleanup, raw_wait) = cleanup_while_storing(
        || {
            let conn = raw_open(&raw_path);
            move |t: &TaskMetric| raw_insert(&conn, t)
        },
        || {
            let cutoff = (end - chrono::Duration::days(days() / 2)).timestamp_micros();
            raw.execute("DELETE FROM task_metrics WHERE timestamp < ?1", [cutoff])
                .unwrap();
        },
    );
    table.push(Row::lower(
        "cleanup_half",
        "ms",
        ours_cleanup.as_secs_f64() * 1e3,
        Some(raw_cleanup.as_secs_f64() * 1e3),
    ));
    table.push(Row::lower(
        "cleanup_max_writer_wait_ms",
        "ms",
        ours_wait.as_secs_f64() * 1e3,
        Some(raw_wait.as_secs_f64() * 1e3),
    ));
    table.push(Row::lower(
        "bytes_per_task",
        "bytes",
        ours_bytes,
        Some(raw_bytes),
    ));
    table.push(Row::lower(
        "apply_retention_s",
        "s",
        retention_s,
        Some(raw_retention_s),
    ));
    table.push(Row::lower(
        "retention_shrink",
        "share",
        shrink,
        Some(raw_shrink),
    ));
    table.push(Row::lower(
        "peak_rss_mb",
        "MiB",
        peak_rss.unwrap_or(f64::NAN),
        None,
    ));

    for (name, figure) in postgres_figures(rows, end, &windows, &task_ids) {
        if let Some(row) = table.iter_mut().find(|r| r.name == name) {
            row.postgres = Some(figure);
        }
    }

    println!(
        "| {:<27} | {:>14} | {:>14} | {:>7} | {:>14} | {:<8} | {:<6} |",
        "workload", "swarm-metrics", "raw rusqlite", "ratio", "on PostgreSQL", "better", "unit"
    );
    println!(
        "|{:-<29}|{:->16}|{:->16}|{:->9}|{:->16}|{:-<10}|{:-<8}|",
        "", "", "", "", "", "", ""
    );
    for row in &table {
        let figure = |f: Option<f64>| f.map_or("-".to_owned(), |f| format!("{f:.3}"));
        let ratio = row
            .baseline
            .map_or("-".to_owned(), |b| format!("{:.2}x", row.ours / b));
        println!(
            "| {:<27} | {:>14.3} | {:>14} | {:>7} | {:>14} | {:<8} | {:<6} |",
            row.name,
            row.ours,
            figure(row.baseline),
            ratio,
            figure(row.postgres),
            if row.higher_is_better {
                "higher"
            } else {
                "lower"
            },
            row.unit
        );
    }
}

// ------------------------------------------------------------ PostgreSQL

/// The workloads on a throwaway database on the server
/// `SWARM_METRICS_PG_URL` names: (row name, figure) for each, or nothing
/// without the feature or a server.
#[cfg(feature = "postgres")]
fn postgres_figures(
    rows: u64,
    end: DateTime<Utc>,
    windows: &[(String, i64)],
    task_ids: &[String],
) -> Vec<(&'static str, f64)> {
    let Ok(admin_url) = std::env::var("SWARM_METRICS_PG_URL") else {
        eprintln!("SWARM_METRICS_PG_URL is not set: no PostgreSQL figures");
        return Vec::new();
    };
    let name = format!("swarm_metrics_bench_{}", std::process::id());
    let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let (base, query) = admin_url.split_once('?').unwrap_or((&admin_url, ""));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    let url = if query.is_empty() {
        format!("{server}/{name}")
    } else {
        format!("{server}/{name}?{query}")
    };
    let figures = {
        let store = MetricsStorage::open(&url).unwrap();
        set_prices(&store);
        let mut figures = Vec::new();
        let clock = Instant::now();
        for start in (0..rows).step_by(BATCH) {
            store
                .store_task_metrics(&tasks(start..(start + BATCH as u64).min(rows), rows, end))
                .unwrap();
        }
        figures.push(("store_batch", rate(rows as usize, clock.elapsed())));
        eprintln!("stored {rows} rows on PostgreSQL");

        // Single stores from 8 threads, into the same database (ids past
        // the batch's, so every one is new).
        let singles: Vec<TaskMetric> = tasks(rows..rows + 8_000, rows, end);
        let clock = Instant::now();
        std::thread::scope(|scope| {
            for first in 0..8 {
                let (store, singles) = (&store, &singles);
                scope.spawn(move || {
                    for t in singles.iter().skip(first).step_by(8) {
                        store.store_task_metric(t).unwrap();
                    }
                });
            }
        });
        figures.push(("store_single_8t", rate(singles.len(), clock.elapsed())));
        figures.push((
            "store_single_3p4t",
            stores_from_processes(&url, rows + 100_000, 8_000, rows, end),
        ));

        let range_of = |hours_back: i64, span_hours: i64| {
            let start = end - chrono::Duration::hours(hours_back);
            TimeRange::new(start, start + chrono::Duration::hours(span_hours)).unwrap()
        };
        let timed = |query: &dyn Fn(usize)| {
            query(0);
            median_ms(
                (0..QUERY_SAMPLES)
                    .map(|i| {
                        let clock = Instant::now();
                        query(i);
                        clock.elapsed()
                    })
                    .collect(),
            )
        };
        figures.push((
            "query_agent_1h",
            timed(&|i| {
                let (agent, back) = &windows[i];
                let filter = Filter::new().agent(agent).range(range_of(*back, 1));
                std::hint::black_box(store.get_task_metrics(&filter, 1000).unwrap());
            }),
        ));
        figures.push((
            "query_task_id",
            timed(&|i| {
                let found = store
                    .get_task_metrics(&Filter::new().task(&task_ids[i]), 1000)
                    .unwrap();
                assert_eq!(found.len(), 1);
            }),
        ));
        figures.push((
            "aggregate_avg_24h",
            timed(&|i| {
                let filter = Filter::new().range(range_of(windows[i].1, 24));
                std::hint::black_box(
                    store
                        .aggregate_metrics(MetricKind::Task, AggregationType::Avg, &filter)
                        .unwrap(),
                );
            }),
        ));
        figures.push((
            "success_rate_24h",
            timed(&|i| {
                let filter = Filter::new().range(range_of(windows[i].1, 24));
                std::hint::black_box(store.success_rate(&filter).unwrap());
            }),
        ));
        figures.push((
            "percentile_p95_24h",
            timed(&|i| {
                let filter = Filter::new().range(range_of(windows[i].1, 24));
                std::hint::black_box(store.percentile(MetricKind::Task, 0.95, &filter).unwrap());
            }),
        ));
        let stored = store.stats().unwrap();
        figures.push((
            "bytes_per_task",
            stored.file_size as f64 / stored.task_metrics.rows as f64,
        ));
        store.close().unwrap();

        // Tiered retention with the default policy on a copy of the
        // database (made by the server from it as a template), then a
        // vacuum: how long it takes, and what share of the bytes is left.
        let copy_url = url.replacen(&name, &format!("{name}_r"), 1);
        admin
            .batch_execute(&format!("CREATE DATABASE {name}_r TEMPLATE {name}"))
            .unwrap();
        {
            let copy = MetricsStorage::open(&copy_url).unwrap();
            let before = copy.stats().unwrap().file_size as f64;
            let clock = Instant::now();
            let report = copy.apply_retention(&RetentionPolicy::default()).unwrap();
            figures.push(("apply_retention_s", clock.elapsed().as_secs_f64()));
            assert!(report.finished && report.raw_folded > 0, "{report:?}");
            copy.vacuum().unwrap();
            let after = copy.stats().unwrap().file_size as f64;
            figures.push(("retention_shrink", after / before));
            copy.close().unwrap();
        }
        admin
            .batch_execute(&format!("DROP DATABASE {name}_r WITH (FORCE)"))
            .unwrap();
        eprintln!("measured retention on PostgreSQL");

        let store = MetricsStorage::open(&url).unwrap();
        let clock = Instant::now();
        let report = store.cleanup_old_metrics((days() / 2) as u32).unwrap();
        assert!(report.task_metrics >= rows / 2 - rows / 100, "{report:?}");
        figures.push(("cleanup_half", clock.elapsed().as_secs_f64() * 1e3));
        store.close().unwrap();
        figures
    };
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .unwrap();
    eprintln!("measured PostgreSQL");
    figures
}

/// Without the `postgres` feature there is nothing to measure there.
#[cfg(not(feature = "postgres"))]
fn postgres_figures(
    _rows: u64,
    _end: DateTime<Utc>,
    _windows: &[(String, i64)],
    _task_ids: &[String],
) -> Vec<(&'static str, f64)> {
    Vec::new()
}
