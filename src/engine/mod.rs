//! The engines under [`MetricsStorage`](crate::MetricsStorage): one SQLite
//! file ([`sqlite`]) or a PostgreSQL server ([`postgres`], feature
//! `postgres`).
//!
//! [`Backend`] is the contract both keep, with identical signatures: what
//! only an engine can do (store, read rows in an order, compute a figure
//! over a selection, fold and delete, check and measure itself). The
//! façade validates every argument before it calls an engine, so that an
//! engine only fetches and writes; adding a call to the trait makes the
//! compiler ask what each engine does for it. [`Engine`] holds the one
//! the store was opened on, and this file is the only place that names
//! the `postgres` feature to choose between them.

pub(crate) mod pinning;
pub(crate) mod sqlite;

#[cfg(feature = "postgres")]
pub(crate) mod postgres;

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;

use sketches_ddsketch::DDSketch;

use crate::alerts::evaluate::{Evaluation, Outcome, StoredAlert, Transition};
use crate::engine::sqlite::open::Options;
use crate::error::{Error, Result};
use crate::model::analytics::{BucketValue, Grouped, Measure, SeriesRead, Summary};
use crate::model::answer::{Aggregate, GroupValues, Percentile, SuccessRate};
use crate::model::batch::Parsed;
use crate::model::batch::{BatchReport, MetricBatch, StreamReport};
use crate::model::filter::{Filter, GroupBy};
use crate::model::pricing::Rates;
use crate::model::record::{
    AgentMetric, AggregationType, MetricKind, Stored, SwarmMetric, TaskMetric,
};
use crate::model::reports::TableStats;
use crate::model::reports::{CleanupReport, VacuumReport};
use crate::model::shapes::GroupRead;
use crate::model::shapes::QueryShape;
use crate::model::shapes::RowOrder;
use crate::model::tally::TaskTally;
use crate::model::usage::RecomputeReport;
use crate::rollup::rolled::AgentTotals;
use crate::rollup::row::RollupRecord;
use crate::rollup::tiers::{Backlog, Step};

/// The engine a store was opened on.
pub(crate) enum Engine {
    /// One SQLite file (boxed, as the server's handle is: a store is
    /// moved whole, and a call pays one indirection either way).
    File(Box<sqlite::FileStore>),
    /// A PostgreSQL server (boxed: its handle is several times the
    /// file's).
    #[cfg(feature = "postgres")]
    Server(Box<postgres::PgStore>),
}

/// Calls the [`Backend`] method `$method` of the store's engine,
/// whichever it is: `on_engine!(store.engine(), success_rate(filter))`.
/// The call names the trait, so that an engine's own function of the same
/// name is never taken for it.
macro_rules! on_engine {
    ($engine:expr, $method:ident($($arg:expr),* $(,)?)) => {
        match $engine {
            $crate::engine::Engine::File(engine) => {
                $crate::engine::Backend::$method(&**engine, $($arg),*)
            }
            #[cfg(feature = "postgres")]
            $crate::engine::Engine::Server(engine) => {
                $crate::engine::Backend::$method(&**engine, $($arg),*)
            }
        }
    };
}
pub(crate) use on_engine;

impl Engine {
    /// Opens the store on the PostgreSQL server `url` names, refusing the
    /// options that concern a file: `file_only` names those set.
    #[cfg(feature = "postgres")]
    pub fn open_server(url: &str, options: &Options, file_only: &[&'static str]) -> Result<Engine> {
        if let Some(option) = file_only.first() {
            return Err(Error::invalid(
                option,
                "applies to a file only, not to a store on a PostgreSQL server",
            ));
        }
        if options.read_only {
            return Err(Error::Unsupported {
                operation: "opening read-only",
                backend: "PostgreSQL",
            });
        }
        let server = postgres::PgStore::open(url, options.pool_size, options.busy_timeout)?;
        Ok(Engine::Server(Box::new(server)))
    }

    /// A PostgreSQL URL without the `postgres` feature: refused, rather
    /// than taken for a file name.
    #[cfg(not(feature = "postgres"))]
    pub fn open_server(
        _url: &str,
        _options: &Options,
        _file_only: &[&'static str],
    ) -> Result<Engine> {
        Err(Error::invalid(
            "path",
            "a PostgreSQL URL needs swarm-metrics built with the `postgres` feature",
        ))
    }

    /// Closes the engine: on a file, indexes the waiting rows, checkpoints
    /// and closes every connection (every step runs, the first failure is
    /// reported); on a server, nothing beyond dropping the pool.
    pub fn close(&mut self) -> Result<()> {
        match self {
            Engine::File(file) => file.shut_down(),
            #[cfg(feature = "postgres")]
            Engine::Server(_) => Ok(()),
        }
    }

    /// The file, when the store is on one.
    pub fn file(&self) -> Option<&sqlite::FileStore> {
        match self {
            Engine::File(file) => Some(file),
            #[cfg(feature = "postgres")]
            Engine::Server(_) => None,
        }
    }
}

/// The `ORDER BY` list of task rows read in `order`, over the table
/// aliased `m`: the same on both engines, so that ties fall alike.
pub(crate) fn task_order_sql(order: RowOrder) -> &'static str {
    match order {
        RowOrder::NewestFirst => "m.timestamp DESC, m.task_id DESC",
        RowOrder::SlowestFirst => "m.duration_ms DESC, m.timestamp DESC, m.task_id DESC",
    }
}

/// The condition selecting what a retention step has left to do, with
/// its cutoff written as the parameter `param` (`?1` or `$1`, as the
/// engine numbers them): the same on both engines.
pub(crate) fn backlog_condition(backlog: &Backlog, param: &str) -> String {
    let before = format!("{} < {param}", backlog.column);
    match backlog.level {
        Some(level) => format!("level = {level} AND {before}"),
        None => before,
    }
}

/// Every agent's totals over a selection, and the span of time they
/// cover (µs; `(i64::MAX, i64::MIN)` for none).
pub(crate) type AgentTotalsSpan = (BTreeMap<String, AgentTotals>, (i64, i64));

/// Declares [`Backend`] from one list of signatures, and implements it
/// for each engine by calling the engine's own function of the same name:
/// a signature is written once, and an engine that lacks a function of
/// the contract does not compile (the call would be the trait's own
/// method, which `unconditional_recursion` refuses).
macro_rules! backend_contract {
    ($(
        $(#[$meta:meta])*
        fn $name:ident $(<$($generic:ident),+>)? (&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;
    )*) => {
        /// What each engine does; see the module's documentation.
        /// Arguments are valid when these are called: filters apply to
        /// their kind, limits are positive, quantiles lie in `[0, 1]`,
        /// records passed their checks.
        pub(crate) trait Backend {
            $(
                $(#[$meta])*
                fn $name $(<$($generic),+>)? (&self $(, $arg: $ty)*) -> $ret;
            )*
        }

        #[deny(unconditional_recursion)]
        impl Backend for sqlite::FileStore {
            $(
                fn $name $(<$($generic),+>)? (&self $(, $arg: $ty)*) -> $ret {
                    sqlite::FileStore::$name(self $(, $arg)*)
                }
            )*
        }

        #[cfg(feature = "postgres")]
        #[deny(unconditional_recursion)]
        impl Backend for postgres::PgStore {
            $(
                fn $name $(<$($generic),+>)? (&self $(, $arg: $ty)*) -> $ret {
                    postgres::PgStore::$name(self $(, $arg)*)
                }
            )*
        }
    };
}

backend_contract! {
    /// Where the store is, for messages and [`MetricsStorage::path`]:
    /// the file, or the server as `postgres://user@host:port/db`.
    ///
    /// [`MetricsStorage::path`]: crate::MetricsStorage::path
    fn location(&self) -> &Path;

    /// Whether stores are refused.
    fn is_read_only(&self) -> bool;

    /// Runs `read` with every read of this store on this thread inside it
    /// seeing one snapshot.
    fn consistent<T>(&self, read: impl FnOnce() -> Result<T>) -> Result<T>;

    /// Stores task metrics in one transaction; returns how many were new.
    fn store_tasks(&self, tasks: &[TaskMetric]) -> Result<usize>;

    /// Sets `model`'s price from `from` (µs), replacing one that started
    /// at the same instant.
    fn set_price(&self, model: &str, from: i64, rates: Rates) -> Result<()>;

    /// Every price, by model and start (µs).
    fn prices(&self) -> Result<Vec<(String, i64, Rates)>>;

    /// Prices the raw tasks from `since` (µs) on again, bills kept, and
    /// counts what of the range is folded.
    fn reprice_since(&self, since: i64) -> Result<RecomputeReport>;

    /// Stores agent metrics in one transaction; returns their ids.
    fn store_agents(&self, metrics: &[AgentMetric]) -> Result<Vec<i64>>;

    /// Stores swarm metrics in one transaction; returns their ids.
    fn store_swarms(&self, metrics: &[SwarmMetric]) -> Result<Vec<i64>>;

    /// Stores a batch of all three kinds in one transaction.
    fn store_batch(&self, batch: &MetricBatch) -> Result<BatchReport>;

    /// Stores every metric of a stream in one transaction.
    fn store_stream(
        &self,
        metrics: impl IntoIterator<Item = Result<Parsed>>,
    ) -> Result<StreamReport>;

    /// Task metrics matching `filter` in `order`, at most `limit`.
    fn task_rows(&self, filter: &Filter, limit: i64, order: RowOrder) -> Result<Vec<TaskMetric>>;

    /// Agent metrics matching `filter`, newest first, at most `limit`.
    fn agent_rows(&self, filter: &Filter, limit: i64) -> Result<Vec<Stored<AgentMetric>>>;

    /// Swarm metrics matching `filter`, newest first, at most `limit`.
    fn swarm_rows(&self, filter: &Filter, limit: i64) -> Result<Vec<Stored<SwarmMetric>>>;

    /// Hands every task metric matching `filter` to `visit`, oldest
    /// first, until it breaks.
    fn each_task<B>(
        &self,
        filter: &Filter,
        visit: impl FnMut(TaskMetric) -> ControlFlow<B>,
    ) -> Result<Option<B>>;

    /// As [`each_task`](Self::each_task), for agent metrics.
    fn each_agent<B>(
        &self,
        filter: &Filter,
        visit: impl FnMut(Stored<AgentMetric>) -> ControlFlow<B>,
    ) -> Result<Option<B>>;

    /// As [`each_task`](Self::each_task), for swarm metrics.
    fn each_swarm<B>(
        &self,
        filter: &Filter,
        visit: impl FnMut(Stored<SwarmMetric>) -> ControlFlow<B>,
    ) -> Result<Option<B>>;

    /// An aggregate over the selection, raw rows and rollups.
    fn aggregate(
        &self,
        kind: MetricKind,
        aggregation: AggregationType,
        filter: &Filter,
    ) -> Result<Aggregate>;

    /// Quantiles of the selection, raw rows and rollups.
    fn percentiles(&self, kind: MetricKind, qs: &[f64], filter: &Filter)
        -> Result<Vec<Percentile>>;

    /// The values of the selection, and the sketch of the part only
    /// rollups with sketches keep.
    fn values(&self, kind: MetricKind, filter: &Filter) -> Result<(Vec<f64>, Option<DDSketch>)>;

    /// The success rate of the selected tasks.
    fn success_rate(&self, filter: &Filter) -> Result<SuccessRate>;

    /// An aggregate per group, in key order.
    fn aggregate_by(&self, read: &GroupRead<'_>, aggregation: AggregationType) -> Result<Vec<Grouped<Aggregate>>>;

    /// A quantile per group, in key order.
    fn percentile_by(&self, read: &GroupRead<'_>, q: f64) -> Result<Vec<Grouped<Percentile>>>;

    /// The values of each group, with the sketch of its rolled-up part.
    fn values_by_group(&self, read: &GroupRead<'_>) -> Result<GroupValues>;

    /// A success rate per group, in key order.
    fn success_rate_by(
        &self,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<Grouped<SuccessRate>>>;

    /// The buckets of a series that hold metrics, by start (µs).
    fn series(
        &self,
        series: &SeriesRead<'_>,
        measure: Measure,
    ) -> Result<BTreeMap<i64, BucketValue>>;

    /// Every agent's totals over the selected tasks.
    fn agent_totals(&self, filter: &Filter) -> Result<AgentTotalsSpan>;

    /// The first and last task timestamps (µs) of the selection, raw or
    /// rolled up.
    fn task_span(&self, filter: &Filter) -> Result<Option<(i64, i64)>>;

    /// The summary of the selected tasks read in one pass over raw rows,
    /// where the engine can and the selection lies in raw rows alone;
    /// `None` to compose it from the other answers.
    fn summary_of_rows(&self, filter: &Filter) -> Result<Option<Summary>>;

    /// Runs one step of tiered retention; returns the rows it handled and
    /// whether the step has more to do.
    fn retention_step(&self, step: &Step) -> Result<(usize, bool)>;

    /// Whether `step` would find anything to do now.
    fn has_retention_work(&self, step: &Step) -> Result<bool>;

    /// Deletes every metric before `cutoff` (µs), and the rollups whose
    /// bucket ends by then.
    fn delete_before(&self, cutoff: i64) -> Result<CleanupReport>;

    /// What [`delete_before`](Self::delete_before) would delete now.
    fn count_before(&self, cutoff: i64) -> Result<CleanupReport>;

    /// Visits every rollup row, oldest bucket first, until `visit` breaks.
    fn each_rollup(&self, visit: impl FnMut(RollupRecord) -> ControlFlow<()>) -> Result<()>;

    /// Writes rollup rows in one transaction, keeping those already
    /// there; returns how many were new.
    fn insert_rollups(&self, records: Vec<RollupRecord>) -> Result<u64>;

    /// Rows, time span and rollups of one kind's table.
    fn table_stats(&self, kind: MetricKind) -> Result<TableStats>;

    /// The size of the store and of its write-ahead log, in bytes.
    fn sizes(&self) -> Result<(u64, u64)>;

    /// The schema version recorded in the store.
    fn schema_version(&self) -> Result<i64>;

    /// The problems a check of the store finds; none when it is sound.
    fn integrity_check(&self) -> Result<Vec<String>>;

    /// Rebuilds the store to give free space back.
    fn vacuum(&self) -> Result<VacuumReport>;

    /// Gives up to `max_pages` free pages back in bounded steps.
    fn incremental_vacuum(&self, max_pages: Option<u32>) -> Result<VacuumReport>;

    /// How the engine runs the query of `shape`.
    fn query_plan(
        &self,
        kind: MetricKind,
        shape: QueryShape,
        filter: &Filter,
    ) -> Result<Vec<String>>;

    /// Copies pending work to disk (the file's write-ahead log into the
    /// file); nothing on a server.
    fn checkpoint(&self) -> Result<()>;

    /// Moves the evaluation's alert instances on: in one write
    /// transaction, reads their states, applies the evaluation and writes
    /// the new states and the transitions (a transition already recorded
    /// is not recorded twice).
    fn record_alerts(&self, evaluation: Evaluation) -> Result<Outcome>;

    /// Every stored alert state, by rule and group.
    fn alert_states(&self) -> Result<Vec<StoredAlert>>;

    /// The transitions in the filter's time range, oldest first.
    fn alert_history(&self, filter: &Filter) -> Result<Vec<Transition>>;

    /// Deletes the transitions before `cutoff` (µs); returns how many.
    fn delete_alert_history_before(&self, cutoff: i64) -> Result<u64>;

    /// How many transitions lie before `cutoff` (µs).
    fn count_alert_history_before(&self, cutoff: i64) -> Result<u64>;

    /// A check quick enough for a health probe: the problems found.
    fn quick_check(&self) -> Result<Vec<String>>;

    /// The newest task's instant (µs) of each swarm with tasks (`None`:
    /// tasks without a swarm), raw rows only.
    fn last_task_by_swarm(&self) -> Result<Vec<(Option<String>, i64)>>;

    /// The raw tasks matching `filter`, counted per agent, swarm, model
    /// and result, in one snapshot, in no order; a key may come in
    /// several tallies.
    fn task_tallies(&self, filter: &Filter) -> Result<Vec<TaskTally>>;
}
