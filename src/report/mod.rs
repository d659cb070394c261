//! A one-file HTML report of a swarm's health: [`MetricsStorage::report`]
//! gathers the numbers in one snapshot, [`Report::to_html`] draws them.
//!
//! The page is self-contained: inline SVG charts and CSS, a few lines of
//! inline script to sort the leaderboard, no external resource and no
//! network request, so that it reads offline and can be attached to a
//! ticket.

mod alerts_html;
mod assets;
mod charts;
mod gather;
mod html;
mod text;

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::alerts::{AlertInstance, Transition};
use crate::error::{Error, Result};
use crate::model::filter::{Filter, TimeRange};
use crate::model::record::MetricKind;
use crate::ops::inspect::StoreStats;
use crate::query::aggregate::{Aggregate, Percentile, SuccessRate};
use crate::query::analytics::{Bucket, Outlier, Summary};
use crate::query::compare::Regression;
use crate::storage::MetricsStorage;

/// What a [report](MetricsStorage::report) covers and how much it shows.
///
/// ```
/// use swarm_metrics::{chrono::Duration, Filter, ReportOptions, TimeRange};
///
/// let options = ReportOptions::new()
///     .filter(Filter::new().swarm("swarm-a").range(TimeRange::last(Duration::days(7))?))
///     .top_agents(10);
/// # Ok::<(), swarm_metrics::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    filter: Filter,
    width: Option<Duration>,
    current: Duration,
    baseline: Duration,
    alpha: f64,
    top_agents: usize,
    charted_swarms: usize,
    outliers: usize,
    title: Option<String>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            filter: Filter::new(),
            width: None,
            current: Duration::hours(24),
            baseline: Duration::days(7),
            alpha: 0.05,
            top_agents: 25,
            charted_swarms: 6,
            outliers: 20,
            title: None,
        }
    }
}

impl ReportOptions {
    /// The defaults: every task, buckets chosen from the time span, the
    /// last 24 hours against the 7 days before for regressions (at a false
    /// discovery rate of 5%), the 25 busiest agents, the 6 busiest swarms
    /// charted, the 20 most extreme outliers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Which tasks: an agent, a swarm, a result and a time range. Without
    /// a range, the report spans all the data kept.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// The width of the charts' buckets (by default about 100 buckets over
    /// the span, in whole minutes, hours or days).
    pub fn width(mut self, width: Duration) -> Self {
        self.width = Some(width);
        self
    }

    /// The regression windows: the `current` span up to the end of the
    /// range (or now), against the `baseline` span just before it.
    pub fn windows(mut self, current: Duration, baseline: Duration) -> Self {
        self.current = current;
        self.baseline = baseline;
        self
    }

    /// The false discovery rate regressions are reported at.
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// How many agents the leaderboard lists by name (the busiest); the
    /// rest are summed up in one line.
    pub fn top_agents(mut self, n: usize) -> Self {
        self.top_agents = n;
        self
    }

    /// How many swarms get a line of their own in the success-rate chart
    /// (the busiest); all tasks always have one.
    pub fn charted_swarms(mut self, n: usize) -> Self {
        self.charted_swarms = n;
        self
    }

    /// How many duration outliers are listed (the furthest out first).
    pub fn outliers(mut self, n: usize) -> Self {
        self.outliers = n;
        self
    }

    /// The page's title (by default one made from the filter).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Refuses what the report cannot be made of.
    fn validate(&self) -> Result<()> {
        self.filter.validate(MetricKind::Task, false)?;
        if self.filter.task_id.is_some() {
            return Err(Error::invalid(
                "task_id",
                "a report covers many tasks; filter by agent, swarm, result or time instead",
            ));
        }
        for (field, n) in [
            ("top_agents", self.top_agents),
            ("charted_swarms", self.charted_swarms),
            ("outliers", self.outliers),
        ] {
            if n == 0 {
                return Err(Error::invalid(field, "must be at least 1"));
            }
        }
        for (field, span) in [("current", self.current), ("baseline", self.baseline)] {
            if span <= Duration::zero() {
                return Err(Error::invalid(
                    field,
                    format!("a window must be longer than zero, got {span}"),
                ));
            }
        }
        if let Some(width) = self.width {
            if width < Duration::seconds(1) {
                return Err(Error::invalid(
                    "width",
                    format!("a chart's buckets must be at least a second wide, got {width}"),
                ));
            }
        }
        Error::check_open_unit("alpha", self.alpha)
    }
}

/// One line of the success-rate chart: all tasks, or one swarm's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RateLine {
    /// The swarm; `None` for all the report's tasks.
    pub swarm: Option<String>,
    /// The rate over the whole span.
    pub overall: SuccessRate,
    /// The rate per bucket, every bucket of the span (empty ones with no
    /// rate).
    pub buckets: Vec<Bucket>,
}

/// The duration percentiles of one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DurationPoint {
    /// The bucket's first instant.
    pub start: DateTime<Utc>,
    /// The median duration (ms).
    pub p50: Percentile,
    /// The 95th percentile (ms).
    pub p95: Percentile,
}

/// One bucket of the cost chart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CostPoint {
    /// The bucket's first instant.
    pub start: DateTime<Utc>,
    /// What its tasks cost (USD), with the count of those without a cost.
    pub cost: Aggregate,
}

/// One agent of the leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentRow {
    /// The agent.
    pub agent_id: String,
    /// Its success rate, with counts and interval.
    pub rate: SuccessRate,
    /// Its 95th percentile duration (ms).
    pub p95_ms: Option<f64>,
    /// Tokens used in all.
    pub tokens: u64,
    /// What its tasks cost (USD; `None` when none has a cost).
    #[serde(default)]
    pub cost_usd: Option<f64>,
}

/// The agents past the leaderboard's length, summed up.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OtherAgents {
    /// How many agents.
    pub agents: u64,
    /// Their tasks' success rate together.
    pub rate: SuccessRate,
    /// Their tokens together.
    pub tokens: u64,
    /// Their cost together, in micro-dollars (summed exactly).
    #[serde(default)]
    pub cost_micros: u64,
}

/// Everything a report shows, read from one snapshot of the store: the
/// numbers behind the page, for callers who want them rather than HTML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Report {
    /// The page's title.
    pub title: String,
    /// When the numbers were read.
    pub generated_at: DateTime<Utc>,
    /// The tasks covered.
    pub filter: Filter,
    /// The span the charts cover; `None` when there are no tasks and no
    /// range was asked for.
    pub span: Option<TimeRange>,
    /// The charts' bucket width in seconds.
    pub width_seconds: i64,
    /// Tasks, success rate, durations and tokens of the whole selection.
    pub summary: Summary,
    /// The success rate over time: all tasks first, then the busiest
    /// swarms.
    pub rates: Vec<RateLine>,
    /// Swarms with tasks in the selection that have no line of their own.
    pub swarms_not_charted: u64,
    /// Duration p50 and p95 over time, every bucket of the span.
    pub durations: Vec<DurationPoint>,
    /// Cost over time, every bucket of the span.
    #[serde(default)]
    pub costs: Vec<CostPoint>,
    /// The busiest agents, best first by the lower bound of their success
    /// rate's interval.
    pub agents: Vec<AgentRow>,
    /// The other agents, summed up (`None` when all are listed).
    pub other_agents: Option<OtherAgents>,
    /// The current regression window.
    pub current: TimeRange,
    /// The baseline window.
    pub baseline: TimeRange,
    /// The false discovery rate of the regressions.
    pub alpha: f64,
    /// Agents and swarms that got significantly worse from the baseline
    /// to the current window.
    pub regressions: Vec<Regression>,
    /// The tasks furthest outside their agent's duration fences, furthest
    /// first (raw rows only: rolled-up tasks are no longer single tasks).
    pub outliers: Vec<Outlier>,
    /// All outliers found, listed or not.
    pub outliers_total: u64,
    /// The store itself: file and WAL size, rows per tier, oldest data.
    pub store: StoreStats,
    /// The alerts pending, firing or recovering, as the last evaluation
    /// left them.
    #[serde(default)]
    pub alerts: Vec<AlertInstance>,
    /// The last transitions of the alert history, newest first.
    #[serde(default)]
    pub alert_transitions: Vec<Transition>,
}

impl Report {
    /// The report as one self-contained HTML page.
    pub fn to_html(&self) -> String {
        html::page(self)
    }

    /// Writes [`to_html`](Self::to_html) to `path`, replacing the file if
    /// there is one; written to a temporary file beside it first, so that
    /// `path` never holds half a page.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn write_html(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let io = |operation| {
            move |source| Error::Io {
                operation,
                path: path.to_owned(),
                source,
            }
        };
        let folder = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let mut file = tempfile::NamedTempFile::new_in(folder).map_err(io("create report"))?;
        std::io::Write::write_all(&mut file, self.to_html().as_bytes())
            .map_err(io("write report"))?;
        file.persist(path)
            .map_err(|e| io("write report")(e.error))?;
        Ok(())
    }
}

impl MetricsStorage {
    /// The numbers of a health report of the tasks `options` selects, read
    /// in one snapshot (see [`consistent`](Self::consistent)): every part
    /// of the page counts the same tasks, whatever is stored or folded
    /// meanwhile. Call [`Report::to_html`] or [`Report::write_html`] on it
    /// for the page.
    ///
    /// ```
    /// use swarm_metrics::{MetricsStorage, ReportOptions, TaskMetric, TaskResult};
    ///
    /// let store = MetricsStorage::temporary()?;
    /// store.store_task_metric(&TaskMetric::new("t-1", "a-1", 900, TaskResult::Success))?;
    /// let report = store.report(&ReportOptions::new())?;
    /// assert_eq!(report.summary.tasks, 1);
    /// let page = report.to_html();
    /// assert!(page.starts_with("<!DOCTYPE html>") && !page.contains("http://"));
    /// # Ok::<(), swarm_metrics::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a filter naming a task or a field that
    /// does not apply to tasks, a count of 0, an empty window, a width
    /// under a second, an `alpha` outside (0, 1), or a span that would
    /// take more than a million buckets; otherwise as the calls it makes
    /// ([`summary`](Self::summary), [`series`](Self::series),
    /// [`regressions_in`](Self::regressions_in), [`stats`](Self::stats)).
    pub fn report(&self, options: &ReportOptions) -> Result<Report> {
        options.validate()?;
        self.consistent(|store| gather::gather(store, options))
    }
}
