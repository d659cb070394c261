//! What an alert decision rests on: the figures behind a verdict, and one
//! rule's finding for one alert instance.

use serde::{Deserialize, Serialize};

use super::state::Verdict;

/// The numbers behind a verdict. Which are set depends on the rule's
/// kind; absent ones are left out of JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Figures {
    /// Tasks in the window.
    pub tasks: u64,
    /// Successful tasks in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub successes: Option<u64>,
    /// The observed success rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// The confidence interval of the rate: low, high.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<[f64; 2]>,
    /// The observed quantile of durations (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
    /// The lower confidence bound of that quantile (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower_bound: Option<f64>,
    /// Whether the quantile and its bound come in part from rollups'
    /// sketches, and are so approximate (within about 1%).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub approximate: bool,
    /// Burn rates, one per pair of windows: long, short.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub burn_rates: Vec<[f64; 2]>,
    /// Tasks in the baseline span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_tasks: Option<u64>,
    /// The adjusted p-value of a regression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q_value: Option<f64>,
    /// What the window's tasks cost, in USD (those with a cost).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The window's tasks without a cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpriced: Option<u64>,
}

impl Figures {
    /// The figures in words, for an alert's `summary` annotation:
    /// `success rate 25.0% (10/40), 95% interval 14.2%–40.4%`.
    pub fn describe(&self) -> String {
        let percent = |x: f64| format!("{:.1}%", 100.0 * x);
        let mut parts = Vec::new();
        if let (Some(rate), Some(successes)) = (self.rate, self.successes) {
            let mut part = format!(
                "success rate {} ({successes}/{})",
                percent(rate),
                self.tasks
            );
            if let Some([low, high]) = self.interval {
                part.push_str(&format!(", interval {}–{}", percent(low), percent(high)));
            }
            parts.push(part);
        }
        if let Some(q) = self.quantile {
            let mut part = format!("quantile {q:.0} ms of {} tasks", self.tasks);
            if let Some(bound) = self.lower_bound {
                part.push_str(&format!(", lower bound {bound:.0} ms"));
            }
            if self.approximate {
                part.push_str(" (approximate: from rollups)");
            }
            parts.push(part);
        }
        if let Some(cost) = self.cost_usd {
            let mut part = format!("cost ${cost:.2} of {} tasks", self.tasks);
            if let Some(n) = self.unpriced.filter(|n| *n > 0) {
                part.push_str(&format!(" ({n} without a cost)"));
            }
            parts.push(part);
        }
        for [long, short] in &self.burn_rates {
            parts.push(format!(
                "burn rate {long:.1}x (long window), {short:.1}x (short)"
            ));
        }
        if let Some(baseline) = self.baseline_tasks {
            parts.push(format!(
                "{} tasks now, {baseline} in the baseline",
                self.tasks
            ));
        }
        if let Some(q) = self.q_value {
            parts.push(format!("regression, adjusted p = {q:.4}"));
        }
        if parts.is_empty() {
            parts.push(format!("{} tasks", self.tasks));
        }
        parts.join("; ")
    }
}

/// What one rule found for one alert instance at one instant.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Finding {
    /// The rule's name.
    pub rule: String,
    /// The instance's agent or swarm (`None`: the rule's whole selection,
    /// or the tasks without a swarm).
    pub group: Option<String>,
    /// Whether the rule's condition holds.
    pub verdict: Verdict,
    /// The numbers that decided it.
    pub figures: Figures,
}
