//! An embedded, single-file metrics store for agent orchestration.
//!
//! `swarm-metrics` keeps three kinds of metrics in one SQLite file:
//! **task** metrics (one per finished task: agent, swarm, duration, result,
//! tokens, files changed), and **agent** and **swarm** metrics (a typed
//! value with JSON metadata). It answers filtered time-range queries,
//! aggregates (avg, sum, count, min, max, stddev) and success rates, and
//! cleans up old data.
//!
//! [`MetricsStorage`] is synchronous and `Send + Sync`: share it between
//! the threads of an orchestrator. Stores from many threads are committed
//! together by a single writer, and a store that returned `Ok` survives the
//! process being killed.
//!
//! ```
//! use swarm_metrics::{
//!     AggregationType, Filter, MetricKind, MetricsStorage, TaskMetric, TaskResult,
//! };
//!
//! let store = MetricsStorage::temporary()?;
//! store.store_task_metrics(&[
//!     TaskMetric::new("task-1", "agent-1", 1200, TaskResult::Success).swarm("swarm-a"),
//!     TaskMetric::new("task-2", "agent-1", 1800, TaskResult::Failure).swarm("swarm-a"),
//! ])?;
//!
//! let rate = store.success_rate(&Filter::new().swarm("swarm-a"))?;
//! assert_eq!((rate.success, rate.total, rate.rate), (1, 2, Some(0.5)));
//!
//! let avg = store.aggregate_metrics(MetricKind::Task, AggregationType::Avg, &Filter::new())?;
//! assert_eq!(avg.value, Some(1500.0));
//! # Ok::<(), swarm_metrics::Error>(())
//! ```
//!
//! Timestamps are UTC with microsecond resolution; finer parts are
//! truncated.
//!
//! **Time types.** Instants are [`chrono::DateTime<Utc>`](chrono::DateTime).
//! Spans of data time are [`chrono::Duration`]: [`TimeRange::last`], the
//! bucket width of [`MetricsStorage::series`], the horizons of
//! [`RetentionPolicy`]. Waits of the program are [`std::time::Duration`]:
//! [`StorageBuilder::busy_timeout`]. Retention in whole days is a `u32`
//! ([`MetricsStorage::cleanup_old_metrics`]). The crate re-exports
//! [`chrono`] and [`serde_json`] (metadata is a [`serde_json::Value`]), so
//! that callers use the same versions without naming them in their own
//! manifest.
//!
//! Where to look:
//!
//! - storing and reading: [`MetricsStorage`], [`StorageBuilder`],
//!   [`TaskMetric`], [`AgentMetric`], [`SwarmMetric`], [`Filter`],
//!   [`TimeRange`], and the JSON-shaped [`MetricsStorage::store_metric`] /
//!   [`MetricsStorage::query_metrics`] with the reference's field names;
//! - numbers: [`MetricsStorage::aggregate_metrics`],
//!   [`MetricsStorage::success_rate`] (with its confidence interval,
//!   [`SuccessRate::interval`]), [`MetricsStorage::percentile`], and
//!   the analytics built on them ([`MetricsStorage::aggregate_by`],
//!   [`MetricsStorage::series`], [`MetricsStorage::rank_agents`],
//!   [`MetricsStorage::summary`], [`MetricsStorage::duration_outliers`]);
//! - keeping the file in shape: [`MetricsStorage::cleanup_old_metrics`],
//!   tiered retention with rollups ([`RetentionPolicy`],
//!   [`MetricsStorage::apply_retention`]), [`MetricsStorage::vacuum`],
//!   [`MetricsStorage::integrity_check`], [`MetricsStorage::stats`];
//! - troubleshooting: [`MetricsStorage::query_plan`] shows which index a
//!   query uses.
//!
//! The `swarm-metrics` command line (default feature `cli`) offers the same
//! for scripts and cron jobs.

pub use chrono;
pub use serde_json;

mod alerts;
mod bytes;
mod engine;
mod error;
mod model;
mod ops;
#[cfg(feature = "otlp")]
pub mod otlp;
mod query;
#[cfg(feature = "report")]
mod report;
mod rollup;
mod stats;
mod storage;

pub use alerts::{
    default_burn_windows, AlertGroup, AlertInstance, AlertState, BurnWindows, Condition, Figures,
    Finding, Mode, Rule, Rules, Standing, Transition, Verdict,
};
pub use engine::sqlite::open::schema::SCHEMA_VERSION;
pub use engine::sqlite::open::settings::Durability;
#[cfg(feature = "postgres")]
pub use error::PostgresError;
pub use error::{Error, PoolError, Result, SqliteError};
pub use model::answer::{Aggregate, Percentile, SuccessRate};
pub use model::filter::{Filter, GroupBy, TaskColumn, TimeRange, DEFAULT_LIMIT};
pub use model::pricing::{Price, PriceEntry};
pub use model::record::{
    now, AgentMetric, AggregationType, MetricKind, MetricType, Stored, SwarmMetric, TaskMetric,
    TaskResult, MAX_ID_LEN,
};
pub use model::span::parse_span;
pub use model::tally::TaskTally;
pub use model::trace::TraceIds;
pub use model::usage::{
    CostPerSuccess, RecomputeReport, Split, TokensByType, Usage, MAX_COST_MICROS,
};
pub use ops::health::{Health, HealthCheck, HealthOptions};
pub use ops::inspect::{StoreStats, TableStats};
pub use ops::plan::QueryShape;
pub use ops::retention::{
    CleanupReport, InPlaceReport, RetentionPolicy, RetentionReport, TierCounts, VacuumReport,
    DEFAULT_RETENTION_DAYS,
};
pub use query::analytics::{
    Bucket, BucketValue, DurationStats, EmptyBuckets, Grouped, Measure, Order, Outlier, RankBy,
    Ranked, Summary, P50, P90, P95, P99,
};
pub use query::compare::{
    Comparison, CostComparison, DurationComparison, ProportionTest, RateComparison,
    RegressedMeasure, Regression,
};
pub use query::generic::{parse_filter, parse_metric, parse_record, Parsed, RECORD_FIELDS};
#[cfg(feature = "report")]
pub use report::{
    AgentRow, CostPoint, DurationPoint, OtherAgents, RateLine, Report, ReportOptions,
};
pub use stats::interval::{Interval, IntervalMethod, DEFAULT_CONFIDENCE};
pub use stats::running::quantile;
pub use storage::prices::parse_prices;
pub use storage::write::{BatchReport, KindCount, MetricBatch, StreamReport};
pub use storage::{MetricsStorage, StorageBuilder, DEFAULT_PATH};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
