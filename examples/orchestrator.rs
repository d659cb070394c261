//! The main job: a simulated swarm stores a day of its metrics from many
//! threads into `.swarm/metrics.db`, then prints what a swarm controller
//! would look at — success rates and duration statistics per agent and per
//! swarm —, writes the day's HTML report beside the store
//! (`.swarm/report.html`) and runs retention cleanup.
//!
//! ```text
//! cargo run --release --example orchestrator
//! ```
//!
//! Environment: `SWARM_DB` (default `.swarm/metrics.db`), `SWARM_TASKS`
//! (tasks in all, default 200000), `SWARM_THREADS` (default 8),
//! `SWARM_REPORT` (default `report.html` beside the store).

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use swarm_metrics::{
    AgentMetric, AggregationType, Filter, MetricKind, MetricType, MetricsStorage, ReportOptions,
    SwarmMetric, TaskColumn, TaskMetric, TaskResult, TimeRange, DEFAULT_PATH,
    DEFAULT_RETENTION_DAYS,
};

const AGENTS_PER_SWARM: usize = 4;
const SWARMS: usize = 3;
/// Tasks each worker reports in one batch (its "tick").
const BATCH: usize = 50;
/// The simulated day: tasks are spread over the 24 hours before the run.
const DAY_HOURS: i64 = 24;
/// The agent that goes wrong in the last quarter of the day, for the
/// report's regressions to find.
const FAILING_AGENT: &str = "swarm-2/agent-3";

fn env_number(name: &str, default: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => text
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name} must be a positive whole number, not {text:?}")),
    }
}

/// A small deterministic generator, so every run simulates the same swarm.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One agent's tasks over the simulated day: durations and outcomes depend
/// on the agent, so the report has something to tell apart.
fn simulate_agent(
    store: &MetricsStorage,
    (swarm, agent): (usize, usize),
    tasks: usize,
    run: &str,
    day_start: DateTime<Utc>,
) -> swarm_metrics::Result<()> {
    let agent_id = format!("swarm-{swarm}/agent-{agent}");
    let swarm_id = format!("swarm-{swarm}");
    let mut rng = Lcg((swarm * 100 + agent) as u64 + 1);
    let usual_failure_percent = 2 + (agent as u64 * 5) % 17;
    let base_ms = 300 + 250 * agent as u64;
    let day_micros = DAY_HOURS * 3_600_000_000;
    let mut done = 0;
    let mut batch = Vec::with_capacity(BATCH);
    while done < tasks {
        batch.clear();
        for _ in 0..BATCH.min(tasks - done) {
            let offset = i128::from(day_micros) * done as i128 / tasks as i128;
            let at = day_start + Duration::microseconds(offset as i64);
            let late = done * 4 >= tasks * 3;
            let (failure_percent, slower) = if agent_id == FAILING_AGENT && late {
                (usual_failure_percent + 30, 3)
            } else {
                (usual_failure_percent, 1)
            };
            let roll = rng.below(100);
            let result = match roll {
                r if r < failure_percent => TaskResult::Failure,
                r if r < failure_percent + 2 => TaskResult::Timeout,
                r if r < failure_percent + 3 => TaskResult::Cancelled,
                _ => TaskResult::Success,
            };
            batch.push(
                TaskMetric::new(
                    format!("{run}-{agent_id}-{done:08}"),
                    &agent_id,
                    slower * (base_ms + rng.below(base_ms)),
                    result,
                )
                .at(at)
                .swarm(&swarm_id)
                .tokens(200 + rng.below(4_000))
                .files(rng.below(8)),
            );
            done += 1;
        }
        store.store_task_metrics(&batch)?;
        // Every tick, a single hot-path store as well.
        store.store_agent_metric(&AgentMetric::new(
            &agent_id,
            MetricType::AgentThroughput,
            batch.len() as f64,
        ))?;
    }
    Ok(())
}

fn main() {
    if let Err(message) = run() {
        eprintln!("orchestrator: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let total_tasks = env_number("SWARM_TASKS", 200_000)?;
    let threads = env_number("SWARM_THREADS", 8)?;
    let (store, path) = match std::env::var("SWARM_DB") {
        Ok(path) => (MetricsStorage::open(&path), path),
        Err(_) => (MetricsStorage::open_default(), DEFAULT_PATH.to_owned()),
    };
    let store = store.map_err(|e| e.to_string())?;
    let started = swarm_metrics::now();
    let run_id = started.format("%Y%m%dT%H%M%S%.6f").to_string();

    // Some week-old history, so that retention has something to do.
    let old = started - Duration::days(i64::from(DEFAULT_RETENTION_DAYS) + 7);
    let history: Vec<_> = (0..1_000)
        .map(|i| {
            TaskMetric::new(
                format!("{run_id}-old-{i}"),
                "swarm-0/agent-0",
                100,
                TaskResult::Success,
            )
            .swarm("swarm-0")
            .at(old + Duration::seconds(i))
        })
        .collect();
    store
        .store_task_metrics(&history)
        .map_err(|e| e.to_string())?;

    let agents: Vec<(usize, usize)> = (0..SWARMS)
        .flat_map(|s| (0..AGENTS_PER_SWARM).map(move |a| (s, a)))
        .collect();
    let per_agent = total_tasks.div_ceil(agents.len());
    println!(
        "Simulating {} agents in {SWARMS} swarms, {} tasks, {threads} threads, into {path}",
        agents.len(),
        per_agent * agents.len()
    );
    let day_start = started - Duration::hours(DAY_HOURS);
    let clock = Instant::now();
    std::thread::scope(|scope| -> Result<(), String> {
        let workers: Vec<_> = (0..threads)
            .map(|w| {
                let store = &store;
                let mine: Vec<(usize, usize)> =
                    agents.iter().copied().skip(w).step_by(threads).collect();
                let run_id = &run_id;
                scope.spawn(move || {
                    mine.iter().try_for_each(|&agent| {
                        simulate_agent(store, agent, per_agent, run_id, day_start)
                    })
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| "a worker thread panicked".to_owned())?
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })?;
    let elapsed = clock.elapsed();
    println!(
        "Stored {} task metrics in {:.2} s ({:.0} per second)\n",
        per_agent * agents.len(),
        elapsed.as_secs_f64(),
        (per_agent * agents.len()) as f64 / elapsed.as_secs_f64()
    );

    let this_run = TimeRange::new(day_start, swarm_metrics::now()).map_err(|e| e.to_string())?;
    report(&store, this_run).map_err(|e| e.to_string())?;

    // The day's health report: the last 6 hours against the 18 before.
    let report_path = match std::env::var("SWARM_REPORT") {
        Ok(path) => PathBuf::from(path),
        Err(_) => Path::new(&path).with_file_name("report.html"),
    };
    let options = ReportOptions::new()
        .filter(Filter::new().range(this_run))
        .windows(Duration::hours(6), Duration::hours(18))
        .title("Swarm health: the simulated day");
    store
        .report(&options)
        .and_then(|report| report.write_html(&report_path))
        .map_err(|e| e.to_string())?;
    println!("\nWrote the report to {}", report_path.display());

    let deleted = store
        .cleanup_old_metrics(DEFAULT_RETENTION_DAYS)
        .map_err(|e| e.to_string())?;
    println!(
        "\nRetention ({DEFAULT_RETENTION_DAYS} days): deleted {} task, {} agent, {} swarm metrics",
        deleted.task_metrics, deleted.agent_metrics, deleted.swarm_metrics
    );
    store.close().map_err(|e| e.to_string())
}

/// What a swarm controller reads: per agent and per swarm, the success
/// rate and duration statistics over this run.
fn report(store: &MetricsStorage, range: TimeRange) -> swarm_metrics::Result<()> {
    let stats = |filter: &Filter| -> swarm_metrics::Result<(f64, f64, f64, f64)> {
        let agg = |a| store.aggregate_metrics(MetricKind::Task, a, filter);
        Ok((
            agg(AggregationType::Avg)?.value.unwrap_or(f64::NAN),
            agg(AggregationType::Stddev)?.value.unwrap_or(f64::NAN),
            agg(AggregationType::Min)?.value.unwrap_or(f64::NAN),
            agg(AggregationType::Max)?.value.unwrap_or(f64::NAN),
        ))
    };
    println!(
        "{:<22} {:>7} {:>8} {:>6} {:>6} {:>6} {:>9} {:>9} {:>7} {:>7}",
        "agent", "tasks", "success", "fail", "tmout", "cancel", "avg ms", "stddev", "min", "max"
    );
    for s in 0..SWARMS {
        for a in 0..AGENTS_PER_SWARM {
            let filter = Filter::new()
                .agent(format!("swarm-{s}/agent-{a}"))
                .range(range);
            let rate = store.success_rate(&filter)?;
            let (avg, sd, min, max) = stats(&filter)?;
            println!(
                "{:<22} {:>7} {:>7.2}% {:>6} {:>6} {:>6} {:>9.1} {:>9.1} {:>7} {:>7}",
                format!("swarm-{s}/agent-{a}"),
                rate.total,
                100.0 * rate.rate.unwrap_or(0.0),
                rate.failure,
                rate.timeout,
                rate.cancelled,
                avg,
                sd,
                min,
                max
            );
        }
    }
    println!(
        "\n{:<10} {:>7} {:>8} {:>9} {:>9} {:>11}",
        "swarm", "tasks", "success", "avg ms", "stddev", "tokens"
    );
    for s in 0..SWARMS {
        let swarm_id = format!("swarm-{s}");
        let filter = Filter::new().swarm(&swarm_id).range(range);
        let rate = store.success_rate(&filter)?;
        let (avg, sd, _, _) = stats(&filter)?;
        let tokens = store.aggregate_metrics(
            MetricKind::Task,
            AggregationType::Sum,
            &filter.clone().column(TaskColumn::Tokens),
        )?;
        println!(
            "{:<10} {:>7} {:>7.2}% {:>9.1} {:>9.1} {:>11}",
            swarm_id,
            rate.total,
            100.0 * rate.rate.unwrap_or(0.0),
            avg,
            sd,
            tokens.value.unwrap_or(0.0)
        );
        // The controller records its verdict as a swarm metric.
        store.store_swarm_metric(
            &SwarmMetric::new(&swarm_id, MetricType::SwarmHealth, rate.rate.unwrap_or(0.0))
                .metadata(serde_json::json!({"tasks": rate.total, "avg_duration_ms": avg})),
        )?;
    }
    let overall = store.success_rate(&Filter::new().range(range))?;
    println!(
        "\nOverall: {} tasks, success rate {:.2}%",
        overall.total,
        100.0 * overall.rate.unwrap_or(0.0)
    );
    Ok(())
}
