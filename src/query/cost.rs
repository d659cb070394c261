//! Costs as a measure: the engines sum and rank micro-dollars, which are
//! exact; answers give USD, and say how many of the selected tasks had no
//! cost (never silently zero). Each answer and the task counts it is
//! compared with are read in one snapshot.

use std::collections::BTreeMap;

use crate::engine::on_engine;
use crate::error::Result;
use crate::model::analytics::{BucketValue, Grouped, Measure, SeriesRead};
use crate::model::answer::{Aggregate, Percentile};
use crate::model::filter::{Filter, TaskColumn};
use crate::model::record::{AggregationType, MetricKind};
use crate::model::shapes::GroupRead;
use crate::storage::MetricsStorage;

/// Micro-dollars in a dollar, as the divisor of answers.
const MICROS_PER_USD: f64 = 1_000_000.0;

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
        let tasks = counting_tasks(read.filter);
        let counting = GroupRead {
            filter: &tasks,
            ..*read
        };
        let (groups, counts) = on_engine!(
            self.engine(),
            consistent(|| Ok((
                on_engine!(self.engine(), aggregate_by(read, aggregation))?,
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
                    value: g.value.in_usd(tasks),
                    key: g.key,
                }
            })
            .collect())
    }

    /// A cost quantile per group of a validated task selection.
    pub(crate) fn cost_percentile_by(
        &self,
        read: &GroupRead<'_>,
        q: f64,
    ) -> Result<Vec<Grouped<Percentile>>> {
        let tasks = counting_tasks(read.filter);
        let counting = GroupRead {
            filter: &tasks,
            ..*read
        };
        let (groups, counts) = on_engine!(
            self.engine(),
            consistent(|| Ok((
                on_engine!(self.engine(), percentile_by(read, q))?,
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
                    value: g.value.in_usd(tasks),
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
