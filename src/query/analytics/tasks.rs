//! Rankings, summaries and outliers of tasks.

use std::collections::BTreeMap;

use super::{validate_n, P50, P95, P99};
use crate::engine::{on_engine, AgentTotalsSpan};
use crate::error::Result;
use crate::model::filter::{to_micros, Filter, GroupBy, TaskColumn};
use crate::model::record::{AggregationType, MetricKind, TaskMetric};
use crate::query::read::RowOrder;
use crate::stats::interval::Interval;
use crate::stats::running::quantile;
use crate::storage::MetricsStorage;

pub use crate::model::analytics::{DurationStats, Order, Outlier, RankBy, Ranked, Summary};

impl MetricsStorage {
    /// Every agent's totals and the span of time they cover.
    fn agent_totals(&self, filter: &Filter) -> Result<AgentTotalsSpan> {
        on_engine!(self.engine(), agent_totals(filter))
    }
}

impl MetricsStorage {
    /// The top ([`Order::BestFirst`]) or bottom ([`Order::WorstFirst`]) `n`
    /// agents by `by`,
    /// among agents with at least `min_tasks` tasks in the selection.
    /// "Best" is the highest success rate or throughput, and the lowest
    /// average duration or tokens. By [`RankBy::SuccessRate`], agents are
    /// ordered by their rate's 95% interval, so that a rate seen on few
    /// tasks does not outrank one seen on many; every agent carries its
    /// interval. Raw rows and the rollups the filter covers count alike,
    /// read in one snapshot.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for `n` = 0 or a filter that does not apply
    /// to task metrics; [`Error::Sqlite`](crate::Error::Sqlite) or [`Error::Pool`](crate::Error::Pool) when the read
    /// fails.
    pub fn rank_agents(
        &self,
        by: RankBy,
        order: Order,
        n: usize,
        min_tasks: u64,
        filter: &Filter,
    ) -> Result<Vec<Ranked>> {
        filter.validate(MetricKind::Task, false)?;
        validate_n(n)?;
        let best_first = order == Order::BestFirst;
        let ((agents, (oldest, newest)), costs) = self.consistent(|store| {
            let costs = match by {
                RankBy::CostPerSuccess => store
                    .cost_per_success(Some(GroupBy::Agent), filter)?
                    .into_iter()
                    .filter_map(|line| Some((line.id.clone()?, line)))
                    .collect(),
                _ => BTreeMap::new(),
            };
            Ok((store.agent_totals(filter)?, costs))
        })?;
        let span = match &filter.time_range {
            Some(range) => to_micros(range.end()) - to_micros(range.start()),
            None => newest.saturating_sub(oldest),
        };
        // Tasks all in one instant are counted as one hour's worth.
        let hours = if span > 0 { span as f64 / 3.6e9 } else { 1.0 };
        let mut ranked: Vec<Ranked> = agents
            .into_iter()
            .filter(|(_, r)| r.tasks >= min_tasks.max(1))
            .filter_map(|(agent_id, r)| {
                let tasks = r.tasks as f64;
                let mut unpriced = None;
                let score = match by {
                    RankBy::SuccessRate | RankBy::RawSuccessRate => r.success as f64 / tasks,
                    RankBy::Throughput => tasks / hours,
                    RankBy::AvgDuration => r.duration_total / tasks,
                    RankBy::AvgTokens => r.tokens_total / tasks,
                    RankBy::CostPerSuccess => {
                        let line = costs.get(&agent_id)?;
                        if line.unpriced >= r.tasks {
                            return None;
                        }
                        unpriced = Some(line.unpriced);
                        line.cost_per_success_usd.unwrap_or(f64::INFINITY)
                    }
                };
                Some(Ranked {
                    agent_id,
                    score,
                    tasks: r.tasks,
                    interval: Interval::default_for(r.success, r.tasks),
                    unpriced,
                })
            })
            .collect();
        let higher_is_better = !matches!(
            by,
            RankBy::AvgDuration | RankBy::AvgTokens | RankBy::CostPerSuccess
        );
        // What is compared: the score, or for success rates the bound of
        // the interval on the side that matters.
        let key = |r: &Ranked| match (by, r.interval) {
            (RankBy::SuccessRate, Some(ci)) if best_first => ci.low,
            (RankBy::SuccessRate, Some(ci)) => ci.high,
            _ => r.score,
        };
        ranked.sort_by(|a, b| {
            let order = if higher_is_better == best_first {
                key(b).total_cmp(&key(a)).then(b.score.total_cmp(&a.score))
            } else {
                key(a).total_cmp(&key(b)).then(a.score.total_cmp(&b.score))
            };
            order.then_with(|| a.agent_id.cmp(&b.agent_id))
        });
        ranked.truncate(n);
        Ok(ranked)
    }

    /// The `n` slowest tasks of the selection, slowest first (ties: newest
    /// first).
    ///
    /// # Errors
    /// As [`get_task_metrics`](Self::get_task_metrics), and for `n` = 0.
    pub fn slowest_tasks(&self, n: usize, filter: &Filter) -> Result<Vec<TaskMetric>> {
        validate_n(n)?;
        self.get_task_metrics_ordered(filter, n, RowOrder::SlowestFirst)
    }

    /// Task count, success rate, duration statistics, and token and file
    /// totals of the selection, in one call, over raw rows and the rollups
    /// the filter covers, in one snapshot.
    ///
    /// # Errors
    /// As [`success_rate`](Self::success_rate).
    pub fn summary(&self, filter: &Filter) -> Result<Summary> {
        filter.validate(MetricKind::Task, false)?;
        self.consistent(|store| {
            let mut summary = match on_engine!(store.engine(), summary_of_rows(filter))? {
                Some(summary) => summary,
                None => store.summary_from_answers(filter)?,
            };
            let costs = filter.clone().column(TaskColumn::Cost);
            let cost = store.aggregate_metrics(MetricKind::Task, AggregationType::Sum, &costs)?;
            summary.cost_usd = cost.value;
            summary.unpriced = cost.unpriced.unwrap_or(0);
            Ok(summary)
        })
    }

    /// [`summary`](Self::summary) from the calls that answer its parts
    /// (and take rollups in), inside the caller's consistent read.
    fn summary_from_answers(&self, filter: &Filter) -> Result<Summary> {
        let success_rate = self.success_rate(filter)?;
        let sum_of = |column: TaskColumn| -> Result<u64> {
            let filter = filter.clone().column(column);
            let sum = self.aggregate_metrics(MetricKind::Task, AggregationType::Sum, &filter)?;
            // Sums of counts in u64 range are exact in f64 up to 2^53.
            Ok(sum.value.map_or(0, |v| v as u64))
        };
        let tasks = success_rate.total;
        let tokens_total = sum_of(TaskColumn::Tokens)?;
        let mut summary = Summary {
            tasks,
            success_rate,
            tokens_total,
            tokens_per_task: (tasks > 0).then(|| tokens_total as f64 / tasks as f64),
            files_changed_total: sum_of(TaskColumn::Files)?,
            ..Summary::default()
        };
        if tasks > 0 {
            let aggregate = |aggregation| {
                self.aggregate_metrics(MetricKind::Task, aggregation, filter)
                    .map(|a| a.value)
            };
            let p = self.percentiles(MetricKind::Task, &[P50, P95, P99], filter)?;
            summary.duration_ms = DurationStats {
                avg: aggregate(AggregationType::Avg)?,
                p50: p[0].value,
                p95: p[1].value,
                p99: p[2].value,
                max: aggregate(AggregationType::Max)?,
                approximate: p[0].approximate,
            };
        }
        Ok(summary)
    }

    /// Tasks whose duration lies outside Tukey's fences (1.5 times the
    /// interquartile range below the first or above the third quartile)
    /// of their own agent's durations over the selection; by agent, then
    /// slowest first.
    ///
    /// # Errors
    /// As [`get_task_metrics`](Self::get_task_metrics).
    pub fn duration_outliers(&self, filter: &Filter) -> Result<Vec<Outlier>> {
        let tasks = self.get_task_metrics_ordered(filter, usize::MAX, RowOrder::NewestFirst)?;
        let mut by_agent: BTreeMap<&str, Vec<&TaskMetric>> = BTreeMap::new();
        for t in &tasks {
            by_agent.entry(&t.agent_id).or_default().push(t);
        }
        let mut out = Vec::new();
        for (_, agent_tasks) in by_agent {
            let mut durations: Vec<f64> =
                agent_tasks.iter().map(|t| t.duration_ms as f64).collect();
            let (Some(q1), Some(q3)) = (
                quantile(&mut durations, 0.25),
                quantile(&mut durations, 0.75),
            ) else {
                continue;
            };
            let iqr = q3 - q1;
            let (low_fence, high_fence) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
            let mut outliers: Vec<Outlier> = agent_tasks
                .into_iter()
                .filter(|t| {
                    (t.duration_ms as f64) < low_fence || (t.duration_ms as f64) > high_fence
                })
                .map(|t| Outlier {
                    task: t.clone(),
                    q1,
                    q3,
                    low_fence,
                    high_fence,
                })
                .collect();
            outliers.sort_by_key(|o| std::cmp::Reverse(o.task.duration_ms));
            out.extend(outliers);
        }
        Ok(out)
    }
}
