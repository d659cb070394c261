//! The values a flag chooses among, and what each means to the library.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnError {
    Abort,
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
    Prometheus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    Agent,
    Swarm,
    Result,
    MetricType,
    /// The task's model (within the raw horizon: rollups do not keep it).
    Model,
}

impl From<By> for swarm_metrics::GroupBy {
    fn from(by: By) -> Self {
        match by {
            By::Agent => swarm_metrics::GroupBy::Agent,
            By::Swarm => swarm_metrics::GroupBy::Swarm,
            By::Result => swarm_metrics::GroupBy::Result,
            By::Model => swarm_metrics::GroupBy::Model,
            By::MetricType => swarm_metrics::GroupBy::MetricType,
        }
    }
}

/// How a success rate's confidence interval is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IntervalArg {
    /// The Wilson score interval.
    Wilson,
    /// The Clopper-Pearson ("exact") interval.
    ClopperPearson,
}

impl From<IntervalArg> for swarm_metrics::IntervalMethod {
    fn from(method: IntervalArg) -> Self {
        match method {
            IntervalArg::Wilson => swarm_metrics::IntervalMethod::Wilson,
            IntervalArg::ClopperPearson => swarm_metrics::IntervalMethod::ClopperPearson,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rank {
    /// Success rate, by the bound of its 95% interval (few tasks rank low).
    SuccessRate,
    /// Success rate as observed, however few the tasks.
    RawSuccessRate,
    Throughput,
    AvgDuration,
    AvgTokens,
    /// USD per successful task (agents whose tasks have no cost left out).
    CostPerSuccess,
}

impl From<Rank> for swarm_metrics::RankBy {
    fn from(rank: Rank) -> Self {
        match rank {
            Rank::SuccessRate => swarm_metrics::RankBy::SuccessRate,
            Rank::RawSuccessRate => swarm_metrics::RankBy::RawSuccessRate,
            Rank::Throughput => swarm_metrics::RankBy::Throughput,
            Rank::AvgDuration => swarm_metrics::RankBy::AvgDuration,
            Rank::AvgTokens => swarm_metrics::RankBy::AvgTokens,
            Rank::CostPerSuccess => swarm_metrics::RankBy::CostPerSuccess,
        }
    }
}
