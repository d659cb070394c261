//! The arguments that select metrics, shared by the commands that read
//! them: a time range, an agent, swarm and result, and the whole filter of
//! a question.

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use swarm_metrics::{Filter, MetricKind, MetricType, TaskResult, TimeRange};

use crate::parse::{parse_span, parse_time};
use crate::Failure;

/// A time range: --from/--to (RFC 3339) or --since (24h, 30m, 7d).
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// From this time (RFC 3339, e.g. 2025-06-01T00:00:00Z).
    #[arg(long, conflicts_with = "since")]
    pub from: Option<String>,
    /// Up to this time (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    /// The last span up to now, e.g. 90s, 30m, 24h, 7d, 2w.
    #[arg(long)]
    pub since: Option<String>,
}

impl RangeArgs {
    /// The range asked for, if any.
    pub fn range(&self) -> Result<Option<TimeRange>, Failure> {
        let to = self
            .to
            .as_deref()
            .map(|t| parse_time("--to", t))
            .transpose()?;
        let from = match (&self.from, &self.since) {
            (Some(from), _) => Some(parse_time("--from", from)?),
            (None, Some(since)) => {
                let span = parse_span("--since", since)?;
                let from = to
                    .unwrap_or_else(swarm_metrics::now)
                    .checked_sub_signed(span)
                    .ok_or_else(|| {
                        Failure::Usage(format!(
                            "--since {since:?} reaches before the earliest representable date"
                        ))
                    })?;
                Some(from)
            }
            (None, None) => None,
        };
        let range = match (from, to) {
            (None, None) => return Ok(None),
            (from, to) => TimeRange::new(
                from.unwrap_or(DateTime::<Utc>::MIN_UTC),
                to.unwrap_or_else(|| {
                    if self.since.is_some() {
                        swarm_metrics::now()
                    } else {
                        DateTime::<Utc>::MAX_UTC
                    }
                }),
            )?,
        };
        Ok(Some(range))
    }
}

/// The agent, swarm and result that select tasks, shared by the
/// commands that filter.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Only this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only this swarm.
    #[arg(long)]
    pub swarm: Option<String>,
    /// Only tasks with this result (success|failure|timeout|cancelled).
    #[arg(long)]
    pub result: Option<String>,
}

impl SelectArgs {
    /// `base` narrowed to this agent, swarm and result.
    pub fn apply(&self, base: Filter) -> Result<Filter, Failure> {
        Ok(Filter {
            agent_id: self.agent.clone(),
            swarm_id: self.swarm.clone(),
            result: self
                .result
                .as_deref()
                .map(str::parse::<TaskResult>)
                .transpose()?,
            ..base
        })
    }
}

/// The filters every query takes.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Which kind of metric.
    #[arg(long, value_enum, default_value_t = Kind::Task)]
    pub kind: Kind,
    /// Only this task.
    #[arg(long)]
    pub task: Option<String>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Only this metric type (for tasks: the column to aggregate).
    #[arg(long)]
    pub metric_type: Option<String>,
    #[command(flatten)]
    pub range: RangeArgs,
}

impl FilterArgs {
    pub fn kind(&self) -> MetricKind {
        self.kind.into()
    }

    pub fn filter(&self) -> Result<Filter, Failure> {
        let filter = self.select.apply(Filter {
            task_id: self.task.clone(),
            time_range: self.range.range()?,
            ..Filter::new()
        })?;
        // For task metrics, --metric-type task_tokens (or task_files,
        // task_duration) names what to measure: the column.
        Ok(match self.metric_type.as_deref() {
            Some(name) => filter.metric_type_or_column(name.parse::<MetricType>()?),
            None => filter,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Task,
    Agent,
    Swarm,
}

impl From<Kind> for MetricKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Task => MetricKind::Task,
            Kind::Agent => MetricKind::Agent,
            Kind::Swarm => MetricKind::Swarm,
        }
    }
}
