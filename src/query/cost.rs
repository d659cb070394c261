//! Costs as a measure: the engines sum and rank micro-dollars, which are
//! exact; answers give USD, and say how many of the selected tasks had no
//! cost (never silently zero). Each answer and the task counts it is
//! compared with are read in one snapshot.

use std::collections::BTreeMap;

use crate::engine::on_engine;
use crate::error::{Error, Result};
use crate::model::analytics::{BucketValue, Grouped, Measure, SeriesRead};
use crate::model::answer::{Aggregate, Percentile};
use crate::model::filter::{Filter, GroupBy, TaskColumn};
use crate::model::record::{AggregationType, MetricKind};
use crate::model::shapes::GroupRead;
use crate::model::usage::{CostPerSuccess, TokensByType};
use crate::storage::MetricsStorage;

/// Micro-dollars in a dollar, as the divisor of answers.
pub(crate) const MICROS_PER_USD: f64 = 1_000_000.0;

/// Whether a selection of `kind` measures costs.
pub(crate) fn measures_cost(kind: MetricKind, filter: &Filter) -> bool {
    kind == MetricKind::Task && filter.column == Some(TaskColumn::Cost)
}

/// The same selection, counting tasks: every task has a duration.
fn counting_tasks(filter: &Filter) -> Filter {
    filter.clone().column(TaskColumn::Duration)
}

impl Aggregate {
    /// A cost aggregate in micro-dollars as USD, with the unpriced among
    /// `tasks` selected.
    fn in_usd(mut self, tasks: u64) -> Self {
        if self.aggregation != AggregationType::Count {
            self.value = self.value.map(|v| v / MICROS_PER_USD);
        }
        self.unpriced = Some(tasks.saturating_sub(self.count));
        self
    }
}

impl Percentile {
    /// As [`Aggregate::in_usd`].
    fn in_usd(mut self, tasks: u64) -> Self {
        self.value = self.value.map(|v| v / MICROS_PER_USD);
        self.unpriced = Some(tasks.saturating_sub(self.count));
        self
    }
}

impl BucketValue {
    fn in_usd(self, tasks: u64) -> Self {
        match self {
            BucketValue::Aggregate(a) => BucketValue::Aggregate(a.in_usd(tasks)),
            BucketValue::Percentile(p) => BucketValue::Percentile(p.in_usd(tasks)),
            other => other,
        }
    }
}

/// How many tasks each key holds, from a count of durations per key.
fn tasks_by_key(counts: Vec<Grouped<Aggregate>>) -> BTreeMap<Option<String>, u64> {
    counts.into_iter().map(|g| (g.key, g.value.count)).collect()
}

impl MetricsStorage {
    /// `read`, and how many tasks `filter` selects, from one snapshot.
    fn with_tasks<T>(&self, filter: &Filter, read: impl FnOnce() -> Result<T>) -> Result<(T, u64)> {
        let tasks = counting_tasks(filter);
        on_engine!(
            self.engine(),
            consistent(|| {
                let out = read()?;
                let count = on_engine!(
                    self.engine(),
                    aggregate(MetricKind::Task, AggregationType::Count, &tasks)
                )?;
                Ok((out, count.count))
            })
        )
    }

    /// The cost aggregate of a validated task selection.
    pub(crate) fn cost_aggregate(
        &self,
        aggregation: AggregationType,
        filter: &Filter,
    ) -> Result<Aggregate> {
        let (micros, tasks) = self.with_tasks(filter, || {
            on_engine!(
                self.engine(),
                aggregate(MetricKind::Task, aggregation, filter)
            )
        })?;
        Ok(micros.in_usd(tasks))
    }

    /// The cost quantiles of a validated task selection.
    pub(crate) fn cost_percentiles(&self, qs: &[f64], filter: &Filter) -> Result<Vec<Percentile>> {
        let (micros, tasks) = self.with_tasks(filter, || {
            on_engine!(self.engine(), percentiles(MetricKind::Task, qs, filter))
        })?;
        Ok(micros.into_iter().map(|p| p.in_usd(tasks)).collect())
    }

    /// A cost aggregate per group of a validated task selection.
    pub(crate) fn cost_aggregate_by(
        &self,
        read: &GroupRead<'_>,
        aggregation: AggregationType,
    ) -> Result<Vec<Grouped<Aggregate>>> {
        self.per_group_in_usd(read, Aggregate::in_usd, || {
            on_engine!(self.engine(), aggregate_by(read, aggregation))
        })
    }

    /// A cost quantile per group of a validated task selection.
    pub(crate) fn cost_percentile_by(
        &self,
        read: &GroupRead<'_>,
        q: f64,
    ) -> Result<Vec<Grouped<Percentile>>> {
        self.per_group_in_usd(read, Percentile::in_usd, || {
            on_engine!(self.engine(), percentile_by(read, q))
        })
    }

    /// The groups `fetch` reads (in micro-dollars), in USD with their
    /// unpriced tasks: the tasks of each group counted in the same
    /// snapshot.
    fn per_group_in_usd<T>(
        &self,
        read: &GroupRead<'_>,
        in_usd: fn(T, u64) -> T,
        fetch: impl FnOnce() -> Result<Vec<Grouped<T>>>,
    ) -> Result<Vec<Grouped<T>>> {
        let tasks = counting_tasks(read.filter);
        let counting = GroupRead {
            filter: &tasks,
            ..*read
        };
        let (groups, counts) = on_engine!(
            self.engine(),
            consistent(|| Ok((
                fetch()?,
                on_engine!(
                    self.engine(),
                    aggregate_by(&counting, AggregationType::Count)
                )?,
            )))
        )?;
        let counts = tasks_by_key(counts);
        Ok(groups
            .into_iter()
            .map(|g| {
                let tasks = counts.get(&g.key).copied().unwrap_or(0);
                Grouped {
                    value: in_usd(g.value, tasks),
                    key: g.key,
                }
            })
            .collect())
    }

    /// The buckets of a cost series of a validated task selection.
    pub(crate) fn cost_series(
        &self,
        series: &SeriesRead<'_>,
        measure: Measure,
    ) -> Result<BTreeMap<i64, BucketValue>> {
        let tasks = counting_tasks(series.filter);
        let counting = SeriesRead {
            filter: &tasks,
            ..*series
        };
        let count = Measure::Aggregate(AggregationType::Count);
        let (buckets, counts) = on_engine!(
            self.engine(),
            consistent(|| Ok((
                on_engine!(self.engine(), series(series, measure))?,
                on_engine!(self.engine(), series(&counting, count))?,
            )))
        )?;
        Ok(buckets
            .into_iter()
            .map(|(start, value)| {
                let tasks = match counts.get(&start) {
                    Some(BucketValue::Aggregate(a)) => a.count,
                    _ => 0,
                };
                (start, value.in_usd(tasks))
            })
            .collect())
    }
}

impl MetricsStorage {
    /// The tokens of the selected tasks by type: input (cached ones
    /// included), output, cache reads and writes, and the tokens of tasks
    /// without a breakdown; raw rows and rollups read in one snapshot.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a filter
    /// field that does not apply to task metrics; [`Error::Sqlite`](crate::Error::Sqlite)
    /// or a server error when the read fails.
    pub fn tokens_by_type(&self, filter: &Filter) -> Result<TokensByType> {
        filter.validate(MetricKind::Task, false)?;
        let sum = |column: TaskColumn| -> Result<(u64, u64)> {
            let a = on_engine!(
                self.engine(),
                aggregate(
                    MetricKind::Task,
                    AggregationType::Sum,
                    &filter.clone().column(column)
                )
            )?;
            Ok((a.count, a.value.unwrap_or(0.0) as u64))
        };
        let [total, input, output, cache_read, cache_write] = on_engine!(
            self.engine(),
            consistent(|| Ok([
                sum(TaskColumn::Tokens)?,
                sum(TaskColumn::InputTokens)?,
                sum(TaskColumn::OutputTokens)?,
                sum(TaskColumn::CacheReadTokens)?,
                sum(TaskColumn::CacheWriteTokens)?,
            ]))
        )?;
        Ok(TokensByType {
            tasks: total.0,
            with_breakdown: input.0,
            total: total.1,
            input: input.1,
            output: output.1,
            cache_read: cache_read.1,
            cache_write: cache_write.1,
            unsplit: total.1.saturating_sub(input.1 + output.1),
        })
    }

    /// What the selected tasks cost per success: the cost of all of them
    /// (failures cost too) divided by the successes, for the whole
    /// selection (`group_by` `None`) or per agent, swarm or model (see
    /// [`GroupBy::Model`] for what a model's line holds), sorted by key;
    /// raw rows and rollups read in one snapshot. The cheapest way to a
    /// success is the lowest `cost_per_success_usd`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a grouping
    /// other than agent, swarm or model, or a filter field that does not apply to
    /// task metrics; [`Error::Sqlite`](crate::Error::Sqlite) or a server
    /// error when the read fails.
    pub fn cost_per_success(
        &self,
        group_by: Option<GroupBy>,
        filter: &Filter,
    ) -> Result<Vec<CostPerSuccess>> {
        filter.validate(MetricKind::Task, false)?;
        let costs = filter.clone().column(TaskColumn::Cost);
        let Some(group_by) = group_by else {
            let (cost, rate) = on_engine!(
                self.engine(),
                consistent(|| Ok((
                    self.cost_aggregate(AggregationType::Sum, &costs)?,
                    on_engine!(self.engine(), success_rate(filter))?,
                )))
            )?;
            return Ok(vec![per_success(None, cost, rate.success)]);
        };
        if !matches!(group_by, GroupBy::Agent | GroupBy::Swarm | GroupBy::Model) {
            return Err(Error::invalid(
                "group_by",
                format!("cost per success is by agent, swarm or model, not {group_by:?}"),
            ));
        }
        let read = GroupRead {
            kind: MetricKind::Task,
            group_by,
            filter: &costs,
        };
        let (costs, rates) = on_engine!(
            self.engine(),
            consistent(|| Ok((
                self.cost_aggregate_by(&read, AggregationType::Sum)?,
                on_engine!(self.engine(), success_rate_by(group_by, filter))?,
            )))
        )?;
        let successes: BTreeMap<Option<String>, u64> = rates
            .into_iter()
            .map(|g| (g.key, g.value.success))
            .collect();
        Ok(costs
            .into_iter()
            .map(|g| {
                let successes = successes.get(&g.key).copied().unwrap_or(0);
                per_success(g.key, g.value, successes)
            })
            .collect())
    }
}

/// One line of [`MetricsStorage::cost_per_success`].
fn per_success(id: Option<String>, cost: Aggregate, successes: u64) -> CostPerSuccess {
    let cost_usd = cost.value.unwrap_or(0.0);
    CostPerSuccess {
        id,
        cost_usd,
        successes,
        cost_per_success_usd: (successes > 0).then(|| cost_usd / successes as f64),
        unpriced: cost.unpriced.unwrap_or(0),
    }
}
