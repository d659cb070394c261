//! Comparing two selections of task metrics (two agents, two swarms, two
//! time windows): is the difference in success rate or duration more than
//! noise?

use serde::{Deserialize, Serialize};

use crate::aggregate::SuccessRate;
use crate::error::Result;
use crate::hypothesis::{fisher_exact, mann_whitney, needs_exact_test, two_proportion_z};
use crate::query::Filter;
use crate::record::{MetricKind, MetricType};
use crate::stat::quantile;
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
    /// The two-sided p-value of the Mann–Whitney U test (normal
    /// approximation with tie and continuity corrections).
    pub p_value: f64,
}

/// The result of [`MetricsStorage::compare`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

impl MetricsStorage {
    /// Compares the tasks matching `a` with those matching `b`: their
    /// success rates (difference and p-value, by the two-proportion z-test,
    /// or Fisher's exact test when the counts are small) and their
    /// durations (difference of medians, and the Mann–Whitney U test).
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
        let rate_a = self.success_rate(a)?;
        let rate_b = self.success_rate(b)?;
        let rate = compare_rates(&rate_a, &rate_b);
        let durations = |filter: &Filter| {
            let filter = Filter {
                metric_type: Some(MetricType::TaskDuration),
                ..filter.clone()
            };
            self.selected_values(MetricKind::Task, &filter)
        };
        let (mut values_a, sketch_a) = durations(a)?;
        let (mut values_b, sketch_b) = durations(b)?;
        let duration = if sketch_a.is_some() || sketch_b.is_some() {
            None
        } else {
            compare_durations(&mut values_a, &mut values_b)
        };
        Ok(Comparison {
            a: rate_a,
            b: rate_b,
            rate,
            duration,
        })
    }
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
