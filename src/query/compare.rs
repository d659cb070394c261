//! Comparing two selections of task metrics (two agents, two swarms, two
//! time windows): is the difference in success rate or duration more than
//! noise? And, over every agent and swarm at once, which got worse.

use std::collections::BTreeMap;

use sketches_ddsketch::DDSketch;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::answer::Aggregate;
use crate::model::filter::{Filter, GroupBy, TaskColumn, TimeRange};
use crate::model::record::{AggregationType, MetricKind};
use crate::model::shapes::GroupRead;
use crate::query::aggregate::SuccessRate;
use crate::query::cost::MICROS_PER_USD;
use crate::stats::hypothesis::{
    benjamini_hochberg, fisher_exact, mann_whitney, needs_exact_test, two_proportion_z,
};
use crate::stats::running::quantile;
use crate::storage::MetricsStorage;

/// The test behind a success-rate p-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProportionTest {
    /// The pooled two-proportion z-test, for tables with an expected count
    /// of at least 5 in every cell.
    TwoProportionZ,
    /// Fisher's exact test, for smaller tables.
    FisherExact,
}

/// Two success rates compared.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RateComparison {
    /// The rate of `a` minus the rate of `b`.
    pub difference: f64,
    /// The two-sided p-value: how often a difference at least this large
    /// would be seen if both rates were the same.
    pub p_value: f64,
    /// The test that gave it.
    pub test: ProportionTest,
}

/// Two samples of task durations compared (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DurationComparison {
    /// The median duration of `a`.
    pub median_a: f64,
    /// The median duration of `b`.
    pub median_b: f64,
    /// `median_a - median_b`.
    pub median_difference: f64,
    /// The Mann–Whitney U statistic of `a`: how many pairs of a task of
    /// `a` and one of `b` have the one of `a` slower (ties count half).
    pub u: f64,
    /// The two-sided p-value of the Mann–Whitney U test: exact when a side
    /// has at most eight tasks and no duration repeats, otherwise from the
    /// normal approximation with tie and continuity corrections.
    pub p_value: f64,
}

/// Two selections' costs compared (USD): what each spent, per success,
/// and whether a task of one costs more than a task of the other (tasks
/// with a cost only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CostComparison {
    /// What the tasks of `a` with a cost cost in all.
    pub total_a: f64,
    /// The same of `b`.
    pub total_b: f64,
    /// `total_a` over the successes of `a`; `None` without one.
    pub per_success_a: Option<f64>,
    /// The same of `b`.
    pub per_success_b: Option<f64>,
    /// The tasks of `a` without a cost, left out of the rest.
    pub unpriced_a: u64,
    /// The same of `b`.
    pub unpriced_b: u64,
    /// The median cost of a task of `a`.
    pub median_a: f64,
    /// The median cost of a task of `b`.
    pub median_b: f64,
    /// `median_a - median_b`.
    pub median_difference: f64,
    /// The Mann–Whitney U statistic of `a` (as for durations).
    pub u: f64,
    /// Its two-sided p-value.
    pub p_value: f64,
}

/// The result of [`MetricsStorage::compare`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Comparison {
    /// The success rate of `a`, with its counts and interval.
    pub a: SuccessRate,
    /// The success rate of `b`.
    pub b: SuccessRate,
    /// The difference of the rates and its significance; `None` when a
    /// side has no tasks.
    pub rate: Option<RateComparison>,
    /// The shift in durations and its significance; `None` when a side has
    /// no tasks, or when part of a side survives only in rollups that keep
    /// sketches (past 512 tasks in a bucket), which hold no sample to test.
    pub duration: Option<DurationComparison>,
    /// The costs compared; `None` (and left out of JSON) when a side has
    /// no task with a cost, or keeps part of its costs only in sketches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostComparison>,
}

impl MetricsStorage {
    /// Compares the tasks matching `a` with those matching `b`: their
    /// success rates (difference and p-value, by the two-proportion z-test,
    /// or Fisher's exact test when the counts are small), their
    /// durations (difference of medians, and the Mann–Whitney U test), and
    /// where both sides have tasks with a cost, their costs
    /// ([`Comparison::cost`]).
    ///
    /// ```
    /// use swarm_metrics::{Filter, MetricsStorage, TaskMetric, TaskResult};
    ///
    /// let store = MetricsStorage::temporary()?;
    /// let mut tasks = Vec::new();
    /// for i in 0..40 {
    ///     let a = if i < 38 { TaskResult::Success } else { TaskResult::Failure };
    ///     let b = if i < 26 { TaskResult::Success } else { TaskResult::Failure };
    ///     tasks.push(TaskMetric::new(format!("a{i}"), "agent-a", 1000, a));
    ///     tasks.push(TaskMetric::new(format!("b{i}"), "agent-b", 1500, b));
    /// }
    /// store.store_task_metrics(&tasks)?;
    /// let c = store.compare(&Filter::new().agent("agent-a"), &Filter::new().agent("agent-b"))?;
    /// let rate = c.rate.unwrap();
    /// assert!(rate.difference > 0.29 && rate.p_value < 0.01);
    /// assert_eq!(c.duration.unwrap().median_difference, -500.0);
    /// # Ok::<(), swarm_metrics::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a filter
    /// that does not apply to task metrics; otherwise as
    /// [`success_rate`](Self::success_rate).
    pub fn compare(&self, a: &Filter, b: &Filter) -> Result<Comparison> {
        // Both sides and every measure from one snapshot: the durations
        // and costs compared are those of the tasks whose rate is compared.
        self.consistent(|store| {
            let side = |filter: &Filter| -> Result<Side> {
                let durations = filter.clone().column(TaskColumn::Duration);
                let (values, sketch) = store.selected_values(MetricKind::Task, &durations)?;
                let costs = filter.clone().column(TaskColumn::Cost);
                let (cost_values, cost_sketch) = store.selected_values(MetricKind::Task, &costs)?;
                let spent = store.cost_aggregate(AggregationType::Sum, &costs)?;
                Ok(Side {
                    rate: store.success_rate(filter)?,
                    values,
                    sketch,
                    cost: CostSide::of(cost_values, cost_sketch.is_some(), &spent),
                })
            };
            Ok(comparison_of(side(a)?, side(b)?))
        })
    }
}

/// One side of a comparison: its success rate, its durations (with the
/// sketch of what survives only as one) and its costs.
struct Side {
    rate: SuccessRate,
    values: Vec<f64>,
    sketch: Option<DDSketch>,
    cost: CostSide,
}

/// The costs of one side: the cost of each task with one (USD), whether
/// part of them survives only in sketches, their total and the tasks
/// without a cost.
#[derive(Default)]
struct CostSide {
    values: Vec<f64>,
    sketched: bool,
    total: f64,
    unpriced: u64,
}

impl CostSide {
    /// From the engines' values (micro-dollars) and the side's cost sum
    /// (USD, with its unpriced count).
    fn of(micros: Vec<f64>, sketched: bool, spent: &Aggregate) -> Self {
        CostSide {
            values: micros.into_iter().map(|m| m / MICROS_PER_USD).collect(),
            sketched,
            total: spent.value.unwrap_or(0.0),
            unpriced: spent.unpriced.unwrap_or(0),
        }
    }
}

fn comparison_of(mut a: Side, mut b: Side) -> Comparison {
    let duration = if a.sketch.is_some() || b.sketch.is_some() {
        None
    } else {
        compare_durations(&mut a.values, &mut b.values)
    };
    let cost = compare_costs(&mut a, &mut b);
    Comparison {
        rate: compare_rates(&a.rate, &b.rate),
        a: a.rate,
        b: b.rate,
        duration,
        cost,
    }
}

/// The costs of `a` and `b` compared: `None` when a side has no task with
/// a cost or keeps part of its costs only in sketches.
fn compare_costs(a: &mut Side, b: &mut Side) -> Option<CostComparison> {
    if a.cost.sketched || b.cost.sketched {
        return None;
    }
    let shift = compare_durations(&mut a.cost.values, &mut b.cost.values)?;
    let per_success =
        |total: f64, rate: &SuccessRate| (rate.success > 0).then(|| total / rate.success as f64);
    Some(CostComparison {
        total_a: a.cost.total,
        total_b: b.cost.total,
        per_success_a: per_success(a.cost.total, &a.rate),
        per_success_b: per_success(b.cost.total, &b.rate),
        unpriced_a: a.cost.unpriced,
        unpriced_b: b.cost.unpriced,
        median_a: shift.median_a,
        median_b: shift.median_b,
        median_difference: shift.median_difference,
        u: shift.u,
        p_value: shift.p_value,
    })
}

fn compare_rates(a: &SuccessRate, b: &SuccessRate) -> Option<RateComparison> {
    let difference = a.rate? - b.rate?;
    let (x1, n1, x2, n2) = (a.success, a.total, b.success, b.total);
    let (p_value, test) = if needs_exact_test(x1, n1, x2, n2) {
        (fisher_exact(x1, n1, x2, n2), ProportionTest::FisherExact)
    } else {
        let (_, p) = two_proportion_z(x1, n1, x2, n2)?;
        (p, ProportionTest::TwoProportionZ)
    };
    Some(RateComparison {
        difference,
        p_value,
        test,
    })
}

fn compare_durations(a: &mut [f64], b: &mut [f64]) -> Option<DurationComparison> {
    let (u, p_value) = mann_whitney(a, b)?;
    let median_a = quantile(a, 0.5)?;
    let median_b = quantile(b, 0.5)?;
    Some(DurationComparison {
        median_a,
        median_b,
        median_difference: median_a - median_b,
        u,
        p_value,
    })
}

/// What got worse in a [`Regression`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegressedMeasure {
    /// The success rate fell.
    SuccessRate,
    /// The median duration rose.
    Duration,
    /// The median cost of a task rose (tasks with a cost only).
    Cost,
}

/// An agent or swarm that got significantly worse between two windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Regression {
    /// Whether `id` is an agent or a swarm.
    pub group: GroupBy,
    /// The agent or swarm id.
    pub id: String,
    /// What got worse.
    pub measure: RegressedMeasure,
    /// The success rate, the median duration (ms) or the median cost of a
    /// task (USD) in the baseline.
    pub baseline: f64,
    /// The same in the current window.
    pub current: f64,
    /// The two-sided p-value of the difference.
    pub p_value: f64,
    /// The p-value adjusted for the number of agents and swarms tested
    /// (Benjamini–Hochberg); the regression is reported when it is at most
    /// the `alpha` asked for.
    pub q_value: f64,
    /// The comparison behind it (current as `a`, baseline as `b`).
    pub comparison: Comparison,
}

impl MetricsStorage {
    /// The agents and swarms whose success rate fell, or whose median task
    /// duration or median task cost rose, significantly from the `baseline`
    /// window to the `current` one: the question a controller asks each
    /// morning.
    ///
    /// Every agent and swarm with tasks in both windows is tested on each
    /// measure (cost where both windows have tasks with a cost, and keep
    /// their costs as values rather than only in sketches) ([`compare`](Self::compare)); the p-values are adjusted for
    /// the number of tests by the Benjamini–Hochberg procedure, which keeps
    /// the expected share of false alarms among those reported at
    /// `alpha`. Reported: the tests whose adjusted p-value is at most
    /// `alpha` and whose difference goes the bad way, most significant
    /// first.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `alpha` is not strictly between 0 and
    /// 1; otherwise as [`compare`](Self::compare).
    pub fn regressions(
        &self,
        current: TimeRange,
        baseline: TimeRange,
        alpha: f64,
    ) -> Result<Vec<Regression>> {
        self.regressions_in(&Filter::new(), current, baseline, alpha)
    }

    /// [`regressions`](Self::regressions) among the tasks `within`
    /// selects: of one swarm (that swarm and its agents, counting their
    /// tasks in it alone), of one agent, or of one result. Both windows
    /// are read in one snapshot.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `within` has a time range (the windows
    /// are the ranges) or a field that does not apply to task metrics;
    /// otherwise as [`regressions`](Self::regressions).
    pub fn regressions_in(
        &self,
        within: &Filter,
        current: TimeRange,
        baseline: TimeRange,
        alpha: f64,
    ) -> Result<Vec<Regression>> {
        Error::check_open_unit("alpha", alpha)?;
        within.validate(MetricKind::Task, false)?;
        if within.time_range.is_some() {
            return Err(Error::invalid(
                "time_range",
                "the windows are the time ranges of a regression search; leave the filter's out",
            ));
        }
        self.consistent(|store| store.regressions_read(within, [current, baseline], alpha))
    }

    /// What [`regressions_in`](Self::regressions_in) reads and tests,
    /// inside its consistent read.
    /// `windows` are the current window and the baseline.
    fn regressions_read(
        &self,
        within: &Filter,
        windows: [TimeRange; 2],
        alpha: f64,
    ) -> Result<Vec<Regression>> {
        let [current, baseline] = windows;
        // Every test made, worse or not (all of them count for the
        // adjustment), with whether it went the bad way.
        let mut tests: Vec<(Regression, bool)> = Vec::new();
        for group in [GroupBy::Agent, GroupBy::Swarm] {
            // Each window read once for every agent (or swarm) of it.
            let window = |range: TimeRange| -> Result<BTreeMap<String, Side>> {
                let filter = within.clone().range(range);
                let mut values = self.values_by_group(
                    MetricKind::Task,
                    group,
                    &filter.clone().column(TaskColumn::Duration),
                )?;
                let costs = filter.clone().column(TaskColumn::Cost);
                let mut cost_values = self.values_by_group(MetricKind::Task, group, &costs)?;
                // A window without a cost has no totals to read (the
                // common case of a store without usage: one read, not three).
                let mut spent: BTreeMap<Option<String>, Aggregate> = if cost_values.is_empty() {
                    BTreeMap::new()
                } else {
                    let read = GroupRead {
                        kind: MetricKind::Task,
                        group_by: group,
                        filter: &costs,
                    };
                    self.cost_aggregate_by(&read, AggregationType::Sum)?
                        .into_iter()
                        .map(|g| (g.key, g.value))
                        .collect()
                };
                Ok(self
                    .success_rate_by(group, &filter)?
                    .into_iter()
                    .filter_map(|g| {
                        let (values, sketch) = values.remove(&g.key).unwrap_or_default();
                        let cost = match (cost_values.remove(&g.key), spent.remove(&g.key)) {
                            (Some((micros, sketch)), Some(spent)) => {
                                CostSide::of(micros, sketch.is_some(), &spent)
                            }
                            _ => CostSide::default(),
                        };
                        Some((
                            g.key?,
                            Side {
                                rate: g.value,
                                values,
                                sketch,
                                cost,
                            },
                        ))
                    })
                    .collect())
            };
            let mut baseline_sides = window(baseline)?;
            for (id, current_side) in window(current)? {
                let Some(baseline_side) = baseline_sides.remove(&id) else {
                    continue;
                };
                let comparison = comparison_of(current_side, baseline_side);
                let regression = |measure, baseline, current, p_value| Regression {
                    group,
                    id: id.clone(),
                    measure,
                    baseline,
                    current,
                    p_value,
                    q_value: 1.0,
                    comparison: comparison.clone(),
                };
                if let Some(rate) = comparison.rate {
                    let (then, now) = (comparison.b.rate, comparison.a.rate);
                    tests.push((
                        regression(
                            RegressedMeasure::SuccessRate,
                            then.unwrap_or(0.0),
                            now.unwrap_or(0.0),
                            rate.p_value,
                        ),
                        rate.difference < 0.0,
                    ));
                }
                if let Some(d) = comparison.duration {
                    tests.push((
                        regression(
                            RegressedMeasure::Duration,
                            d.median_b,
                            d.median_a,
                            d.p_value,
                        ),
                        d.median_difference > 0.0,
                    ));
                }
                if let Some(c) = comparison.cost {
                    tests.push((
                        regression(RegressedMeasure::Cost, c.median_b, c.median_a, c.p_value),
                        c.median_difference > 0.0,
                    ));
                }
            }
        }
        let p_values: Vec<f64> = tests.iter().map(|(t, _)| t.p_value).collect();
        let q_values = benjamini_hochberg(&p_values);
        let mut found: Vec<Regression> = tests
            .into_iter()
            .zip(q_values)
            .filter(|((_, worse), q)| *worse && *q <= alpha)
            .map(|((regression, _), q_value)| Regression {
                q_value,
                ..regression
            })
            .collect();
        found.sort_by(|a, b| {
            a.q_value
                .total_cmp(&b.q_value)
                .then(a.p_value.total_cmp(&b.p_value))
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(found)
    }
}
