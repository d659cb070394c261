//! The command line's arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use swarm_metrics::DEFAULT_PATH;

use crate::select::{FilterArgs, Kind, RangeArgs, SelectArgs};

mod choices;

pub use choices::{By, Format, IntervalArg, OnError, Rank};

/// Query, import, export and maintain a swarm-metrics database.
#[derive(Debug, Parser)]
#[command(name = "swarm-metrics", version, about)]
pub struct Cli {
    /// The database file.
    #[arg(long, global = true, default_value = DEFAULT_PATH)]
    pub db: PathBuf,
    /// Print one JSON document on stdout instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait, in seconds, for another process that holds the
    /// database's write lock (an import holds it until it is stored whole).
    #[arg(long, global = true, default_value_t = 30)]
    pub busy_timeout: u64,
    #[command(subcommand)]
    pub command: Command,
}

/// What the command line does: keep and move the store, or answer a
/// [`Question`] about it.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Delete metrics older than the retention period, or with --policy
    /// fold them into hourly and daily rollups first.
    Cleanup(CleanupArgs),
    /// Give freed space back to the file system, in place and in steps
    /// (stores from other processes go on meanwhile).
    Vacuum(VacuumArgs),
    /// Check the file's integrity and schema version (exit 1 if damaged).
    Check,
    /// Rows per table, time spans, file size and schema version.
    Stats,
    /// Store metrics from a JSON Lines file (or - for stdin).
    Import(ImportArgs),
    /// Write metrics to stdout as JSON Lines, CSV or Prometheus text.
    Export(ExportArgs),
    /// Copy every metric of one store into another: a file into a
    /// PostgreSQL server (postgres://…) as a fleet outgrows one machine,
    /// or back. Safe to run again: what the target holds is skipped, so an
    /// interrupted copy goes on where it stopped. (--db is not used.)
    Copy(CopyArgs),
    /// A one-file HTML report of a swarm's health: success rate and
    /// durations over time, an agent leaderboard, regressions, outliers
    /// and the store itself. Self-contained: it reads offline.
    Report(ReportArgs),
    /// Is the store healthy: it opens and passes a quick check, its WAL
    /// and the free disk are within limits, every swarm had a task
    /// lately, retention keeps up. Exit 0 healthy, 1 not.
    Health(HealthArgs),
    /// Alert rules from a TOML file: evaluate them (exit 3 when an alert
    /// fires), list the alerts' states, or show their transitions.
    Alerts(AlertsArgs),
    /// Serve the store over HTTP: OpenTelemetry spans and JSON Lines in;
    /// Prometheus /metrics, the questions as JSON, a live report, Server-
    /// Sent Events and /health out. Stops cleanly on SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Model prices in USD per million tokens, with the date each starts:
    /// tasks are priced at their timestamp's price as they are stored.
    Prices(PricesArgs),
    #[command(flatten)]
    Question(Question),
}

/// The arguments of `prices`.
#[derive(Debug, Args)]
pub struct PricesArgs {
    #[command(subcommand)]
    pub command: PricesCommand,
}

/// What `prices` does.
#[derive(Debug, Subcommand)]
pub enum PricesCommand {
    /// Set a model's price from a date on (replacing one from the same
    /// instant).
    Set(PriceSetArgs),
    /// Every price, by model and date.
    List,
    /// Set every price of a TOML file of [[price]] tables (model, from,
    /// input, output, cache_read, cache_write); all are checked first.
    Import {
        /// The TOML file.
        file: PathBuf,
    },
    /// Price again the tasks stored since a span ago (after a price was
    /// set or corrected): each by the price in force at its timestamp,
    /// bills kept. Says how many tasks and rollups of the range were
    /// already folded and keep the cost they had.
    Recompute {
        /// How far back, e.g. 30d.
        #[arg(long)]
        since: String,
    },
}

/// The arguments of `prices set`.
#[derive(Debug, Args)]
pub struct PriceSetArgs {
    /// The model, as tasks name it.
    pub model: String,
    /// From when (a date, midnight UTC, or an RFC 3339 time).
    #[arg(long)]
    pub from: String,
    /// USD per million input tokens (not read from or written to a cache).
    #[arg(long)]
    pub input: f64,
    /// USD per million output tokens.
    #[arg(long)]
    pub output: f64,
    /// USD per million input tokens read from the cache.
    #[arg(long, default_value_t = 0.0)]
    pub cache_read: f64,
    /// USD per million input tokens written to the cache.
    #[arg(long, default_value_t = 0.0)]
    pub cache_write: f64,
}

/// The arguments of `cost-per-success`.
#[derive(Debug, Args)]
pub struct CostPerSuccessArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// One line per agent, swarm or model (per model within the raw
    /// horizon: rollups do not keep the model).
    #[arg(long, value_enum)]
    pub by: Option<By>,
}

/// The arguments of `tokens`.
#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// The arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on. Any address but loopback needs
    /// --token-file. Port 0 picks a free port; the address is printed on
    /// stdout once it listens.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: String,
    /// A file holding the token every request but /health must carry as
    /// `Authorization: Bearer TOKEN`.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Alert rules (TOML, as for `alerts eval`) to evaluate every
    /// --eval-every, sending each transition as an `alert` event.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// How often the --rules are evaluated.
    #[arg(long, default_value = "1m")]
    pub eval_every: String,
    /// Request bodies over this size (in bytes, or with a KiB, MiB or
    /// GiB suffix; after gzip is undone) are refused with 413.
    #[arg(long, default_value = "32MiB")]
    pub max_body: String,
    /// A client that takes longer than this to send its request's
    /// headers, or its body, is cut off.
    #[arg(long, default_value = "30s")]
    pub read_timeout: String,
}

/// The arguments of `health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// A swarm without a task for this long is stale.
    #[arg(long, default_value = "15m")]
    pub stale_after: String,
    /// The tiered retention policy the store is kept to (RAW,HOURLY,DAILY
    /// as for cleanup): raw rows more than a day past RAW are a lag.
    #[arg(long)]
    pub policy: Option<String>,
}

/// The arguments of `alerts`.
#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    pub command: AlertsCommand,
}

/// What `alerts` does.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Evaluate every rule now (or --at an instant), record the alerts'
    /// states and transitions in the store, and print the alerts that are
    /// not inactive (and those this evaluation resolved). Exit 0 when
    /// none fires, 3 when one does.
    Eval(EvalArgs),
    /// The alerts' transitions, oldest first.
    History(HistoryArgs),
    /// Every alert's state, as the last evaluation left it.
    List,
}

/// The arguments of `alerts eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The TOML file of `[[rule]]` tables.
    #[arg(long)]
    pub rules: PathBuf,
    /// Evaluate as of this instant (RFC 3339) instead of now: to replay
    /// history or backfill. Evaluate instants in order.
    #[arg(long)]
    pub at: Option<String>,
    /// Post the firing and resolved alerts to this Alertmanager's
    /// /api/v2/alerts (http://host:9093). The states are saved first: an
    /// unreachable receiver is an error, but loses nothing.
    #[arg(long)]
    pub alertmanager: Option<String>,
    /// Post the JSON that --json prints to this URL.
    #[arg(long)]
    pub webhook: Option<String>,
}

/// The arguments of `alerts history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The transitions of the last span up to now, e.g. 24h, 7d.
    #[arg(long, default_value = "7d")]
    pub since: String,
    /// Only this rule's.
    #[arg(long)]
    pub rule: Option<String>,
}

/// The commands that read a store and print an answer.
#[derive(Debug, Subcommand)]
pub enum Question {
    /// Metrics matching the filters, newest first.
    Query(QueryArgs),
    /// avg, sum, count, min, max, stddev or a percentile (p50, p95, p99.9)
    /// of durations (or --metric-type task_tokens / task_files / task_cost
    /// in USD / task_input_tokens …) or values.
    Aggregate(AggregateArgs),
    /// The share of successful tasks, with the counts behind it.
    SuccessRate(SuccessRateArgs),
    /// An aggregation, percentile or success rate per time bucket.
    Series(SeriesArgs),
    /// Tasks, success rate, durations, tokens and files in one overview.
    Summary(SummaryArgs),
    /// Compare two selections of tasks: success rates (difference and
    /// p-value) and durations (difference of medians, Mann-Whitney p-value).
    /// The first is chosen by the usual filters; the second by the --with-*
    /// options, each defaulting to the first's value: two agents, two
    /// swarms, or two time windows.
    Compare(CompareArgs),
    /// The agents and swarms whose success rate fell or whose durations
    /// rose significantly from the baseline window to the current one
    /// (Benjamini-Hochberg corrected over everything tested).
    Regressions(RegressionsArgs),
    /// The best (or, with --bottom, worst) agents by a measure.
    Top(TopArgs),
    /// The slowest tasks.
    Slowest(SlowestArgs),
    /// Tasks outside their agent's Tukey fences (1.5 x IQR) of duration.
    Outliers(OutliersArgs),
    /// What a success costs: the cost of all selected tasks (in USD)
    /// divided by the successes, whole or per agent or swarm, with the
    /// tasks that have no cost counted as unpriced.
    CostPerSuccess(CostPerSuccessArgs),
    /// Tokens by type: input (cached included), output, cache reads and
    /// writes, and those of tasks without a breakdown.
    Tokens(TokensArgs),
}

/// The arguments of `cleanup`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("how").required(true).args(["retention_days", "policy"])))]
pub struct CleanupArgs {
    /// Keep this many days of raw metrics, deleting older ones.
    #[arg(long)]
    pub retention_days: Option<u32>,
    /// Tiered retention: RAW,HOURLY,DAILY horizons (e.g. 7d,90d,2y;
    /// each may be "forever"). Raw rows past RAW fold into hourly
    /// rollups, hourly past HOURLY into daily, daily past DAILY go.
    #[arg(long, conflicts_with = "dry_run")]
    pub policy: Option<String>,
    /// Give the freed space back to the file system afterwards.
    #[arg(long)]
    pub vacuum: bool,
    /// Only count what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// For a full disk, when ordinary cleanup fails: delete and vacuum
    /// in place, without the write-ahead log, so that no new space is
    /// needed. Other processes must have closed the store, and it must
    /// not be killed while it runs (that can damage the file).
    #[arg(long, conflicts_with_all = ["policy", "dry_run"])]
    pub in_place: bool,
}

/// The arguments of `vacuum`.
#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// Free at most this many pages (default: all free pages).
    #[arg(long, conflicts_with = "full")]
    pub incremental: Option<u32>,
    /// Rebuild the whole file instead, which also defragments it. It
    /// holds the write lock for its whole run, so stores from other
    /// processes wait (and fail after their busy timeout), and it may
    /// need as much free disk as the file's size.
    #[arg(long)]
    pub full: bool,
}

/// The arguments of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file, or - for standard input.
    pub file: PathBuf,
    /// What to do with a bad line: store nothing at all (abort), or
    /// store the rest and report the bad lines (skip).
    #[arg(long, value_enum, default_value_t = OnError::Abort)]
    pub on_error: OnError,
    /// What the lines are: the store's own records (jsonl), or trace
    /// exports as the OpenTelemetry Collector's file exporter writes
    /// them (otlp), each task span stored as `serve` would.
    #[arg(long, value_enum, default_value_t = ImportFormat::Jsonl)]
    pub format: ImportFormat,
}

/// What `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// One metric per line, naming its `kind`.
    Jsonl,
    /// One OTLP JSON trace export per line.
    Otlp,
}

/// The arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// Only this kind of metric (all kinds by default).
    #[arg(long)]
    pub kind: Option<Kind>,
    /// The output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
}

/// The arguments of `copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The store to copy from: a file or a postgres:// URL.
    #[arg(long)]
    pub from: PathBuf,
    /// The store to copy into (created if it is a missing file).
    #[arg(long)]
    pub to: PathBuf,
}

/// The arguments of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Write the page to this file (needed unless --json asks for the
    /// numbers alone).
    #[arg(long)]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub range: RangeArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    /// The charts' bucket width, e.g. 15m, 1h, 1d (default: about 100
    /// buckets over the span).
    #[arg(long)]
    pub width: Option<String>,
    /// The regressions' current window, up to the end of the span.
    #[arg(long, default_value = "24h")]
    pub current: String,
    /// The regressions' baseline window, just before the current one.
    #[arg(long, default_value = "7d")]
    pub baseline: String,
    /// The regressions' false discovery rate.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Agents listed by name in the leaderboard (the busiest).
    #[arg(long, default_value_t = 25)]
    pub top: usize,
    /// The page's title.
    #[arg(long)]
    pub title: Option<String>,
}

/// The arguments of `query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// At most this many rows.
    #[arg(long, default_value_t = swarm_metrics::DEFAULT_LIMIT)]
    pub limit: usize,
}

/// The arguments of `aggregate`.
#[derive(Debug, Args)]
pub struct AggregateArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// The aggregation: avg|sum|count|min|max|stddev|pNN.
    #[arg(long)]
    pub agg: String,
    /// One result per group.
    #[arg(long, value_enum)]
    pub by: Option<By>,
}

/// The arguments of `success-rate`.
#[derive(Debug, Args)]
pub struct SuccessRateArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// One result per group, best first.
    #[arg(long, value_enum)]
    pub by: Option<By>,
    /// The confidence of the interval shown with each rate.
    #[arg(long, default_value_t = swarm_metrics::DEFAULT_CONFIDENCE)]
    pub confidence: f64,
    /// How the interval is computed.
    #[arg(long, value_enum, default_value_t = IntervalArg::Wilson)]
    pub interval: IntervalArg,
}

/// The arguments of `series`.
#[derive(Debug, Args)]
pub struct SeriesArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// avg|sum|count|min|max|stddev|pNN|success-rate.
    #[arg(long)]
    pub measure: String,
    /// The bucket width, e.g. 1m, 1h, 1d.
    #[arg(long)]
    pub width: String,
    /// List empty buckets too.
    #[arg(long)]
    pub fill: bool,
}

/// The arguments of `summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// The arguments of `compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// The second selection's agent.
    #[arg(long)]
    pub with_agent: Option<String>,
    /// The second selection's swarm.
    #[arg(long)]
    pub with_swarm: Option<String>,
    /// The second selection's time range: the last span up to now.
    #[arg(long, conflicts_with = "with_from")]
    pub with_since: Option<String>,
    /// The second selection's time range: from this time (RFC 3339).
    #[arg(long)]
    pub with_from: Option<String>,
    /// The second selection's time range: up to this time (RFC 3339).
    #[arg(long)]
    pub with_to: Option<String>,
}

/// The arguments of `regressions`.
#[derive(Debug, Args)]
pub struct RegressionsArgs {
    /// The current window: the last span up to now (e.g. 24h).
    #[arg(long, default_value = "24h")]
    pub current: String,
    /// The baseline window: the span just before the current one
    /// (e.g. 7d).
    #[arg(long, default_value = "7d")]
    pub baseline: String,
    /// The false discovery rate to keep to.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
}

/// The arguments of `top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// What to rank by.
    #[arg(long, value_enum, default_value_t = Rank::SuccessRate)]
    pub by: Rank,
    /// The worst first instead.
    #[arg(long)]
    pub bottom: bool,
    /// How many agents.
    #[arg(short, long, default_value_t = 10)]
    pub n: usize,
    /// Leave out agents with fewer tasks.
    #[arg(long, default_value_t = 1)]
    pub min_tasks: u64,
}

/// The arguments of `slowest`.
#[derive(Debug, Args)]
pub struct SlowestArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// How many tasks.
    #[arg(short, long, default_value_t = 10)]
    pub n: usize,
}

/// The arguments of `outliers`.
#[derive(Debug, Args)]
pub struct OutliersArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
}
