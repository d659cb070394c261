//! Alert rules: the `[[rule]]` tables of a TOML file, checked as a whole
//! before anything is evaluated.
//!
//! ```toml
//! [[rule]]
//! name = "agent-success"   # unique; the alert's `alertname` label
//! kind = "success_rate"    # success_rate | latency | burn_rate | regression | no_data | cost
//! group_by = "agent"       # none | agent | swarm
//! window = "1h"
//! below = 0.85
//! min_tasks = 10
//! for = "10m"
//! keep_firing_for = "10m"
//! severity = "page"
//! [rule.filter]
//! swarm = "swarm-prod"
//! ```

use std::collections::HashSet;
use std::path::Path;

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::filter::Filter;
use crate::model::record::{validate_id, TaskResult};
use crate::model::span::span_of;
use crate::stats::interval::{IntervalMethod, DEFAULT_CONFIDENCE};

/// The fewest tasks in a window that give a verdict, when a rule does not
/// say.
const DEFAULT_MIN_TASKS: u64 = 10;

/// The false discovery rate of a regression rule that does not say.
const DEFAULT_ALPHA: f64 = 0.05;

/// The quantile of a latency rule that does not say.
const DEFAULT_QUANTILE: f64 = 0.95;

/// A set of alert rules, each with a unique name.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    rules: Vec<Rule>,
}

/// What one alert instance of a rule is: the whole selection, or one
/// agent or swarm of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertGroup {
    /// One instance for everything the rule selects.
    #[default]
    None,
    /// One instance per agent.
    Agent,
    /// One instance per swarm.
    Swarm,
}

/// How a rule's figure is compared with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Only when the whole confidence interval lies past the threshold:
    /// confident that the true figure is, not merely unlucky.
    #[default]
    Interval,
    /// When the point estimate lies past the threshold, as most alert
    /// managers do; fires on healthy agents with small samples.
    Point,
}

/// One pair of windows of a burn-rate rule: it holds when the error
/// budget burns faster than `factor` over both.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnWindows {
    /// The long window.
    pub long: Duration,
    /// The short window, which makes the alert stop soon after the burn.
    pub short: Duration,
    /// How many times the sustainable rate.
    pub factor: f64,
}

/// The multiwindow pairs of the SRE workbook: 14.4× over 1h and 5m, 6×
/// over 6h and 30m, 1× over 3d and 6h.
pub fn default_burn_windows() -> Vec<BurnWindows> {
    let pair = |long, short, factor| BurnWindows {
        long,
        short,
        factor,
    };
    vec![
        pair(Duration::hours(1), Duration::minutes(5), 14.4),
        pair(Duration::hours(6), Duration::minutes(30), 6.0),
        pair(Duration::days(3), Duration::hours(6), 1.0),
    ]
}

/// What a rule watches, with the thresholds of its kind.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// The success rate is under `below`.
    SuccessRate {
        /// The objective.
        below: f64,
        /// The confidence of the interval.
        confidence: f64,
        /// How the interval is computed.
        interval: IntervalMethod,
        /// Interval or point comparison.
        mode: Mode,
    },
    /// The `quantile` of durations is over `above_ms`.
    Latency {
        /// The quantile, in `(0, 1)`.
        quantile: f64,
        /// The threshold, in milliseconds.
        above_ms: f64,
        /// The confidence of the lower bound.
        confidence: f64,
        /// Bound or point comparison.
        mode: Mode,
    },
    /// The error budget of `objective` burns too fast.
    BurnRate {
        /// The success objective, in `(0, 1)`.
        objective: f64,
        /// The pairs of windows; any pair holding fires.
        windows: Vec<BurnWindows>,
    },
    /// The success rate fell or durations rose from `baseline` to the
    /// window, significantly at `alpha` (a rise in cost does not count:
    /// spend is watched by [`Condition::Cost`]).
    Regression {
        /// The span just before the window.
        baseline: Duration,
        /// The false discovery rate.
        alpha: f64,
    },
    /// No task in the window for a group that had tasks in `baseline`.
    NoData {
        /// The span just before the window.
        baseline: Duration,
    },
    /// The tasks of the window cost more than `above_usd` in all. Spend
    /// is spend however few tasks made it: `min_tasks` does not apply.
    /// Tasks without a cost count for nothing (the figures say how many),
    /// so the cost compared is what is known to be spent.
    Cost {
        /// The budget of one window, in USD.
        above_usd: f64,
    },
}

/// One alert rule.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Rule {
    /// The rule's unique name.
    pub name: String,
    /// What it watches.
    pub condition: Condition,
    /// One instance per agent, per swarm, or one in all.
    pub group_by: AlertGroup,
    /// The look-back of each evaluation (for a burn-rate rule, its longest
    /// window).
    pub window: Duration,
    /// Fewer tasks in the window: no verdict.
    pub min_tasks: u64,
    /// How long the condition must hold before the alert fires.
    pub pending_for: Duration,
    /// How long an alert keeps firing after its condition clears.
    pub keep_firing_for: Duration,
    /// The `severity` label.
    pub severity: String,
    /// Which tasks the rule looks at (agent, swarm, result).
    pub filter: Filter,
}

/// A rule as the file spells it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    kind: String,
    group_by: Option<String>,
    window: Option<String>,
    below: Option<f64>,
    confidence: Option<f64>,
    interval: Option<String>,
    mode: Option<String>,
    quantile: Option<f64>,
    above_ms: Option<f64>,
    above_usd: Option<f64>,
    objective: Option<f64>,
    windows: Option<Vec<RawWindows>>,
    baseline: Option<String>,
    alpha: Option<f64>,
    min_tasks: Option<u64>,
    #[serde(rename = "for")]
    pending_for: Option<String>,
    keep_firing_for: Option<String>,
    severity: Option<String>,
    filter: Option<RawFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindows {
    long: String,
    short: String,
    factor: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    agent: Option<String>,
    swarm: Option<String>,
    result: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

impl Rules {
    /// Parses and checks the rules of a TOML document.
    ///
    /// # Errors
    /// [`Error::InvalidRule`] naming the rule and the field for the first
    /// problem found: TOML that does not parse, an unknown field, a field
    /// that does not apply to the rule's kind, a missing threshold, a
    /// value out of range, or a name used twice. No rule is kept then.
    pub fn from_toml_str(text: &str) -> Result<Rules> {
        let file: RawFile = toml::from_str(text).map_err(|e| Error::InvalidRule {
            rule: String::new(),
            field: e
                .span()
                .map_or_else(String::new, |span| format!("at byte {}", span.start)),
            reason: e.message().to_owned(),
        })?;
        let mut names = HashSet::new();
        let mut rules = Vec::with_capacity(file.rule.len());
        for raw in file.rule {
            let rule = raw.check()?;
            if !names.insert(rule.name.clone()) {
                return Err(invalid(&rule.name, "name", "is used by another rule"));
            }
            rules.push(rule);
        }
        Ok(Rules { rules })
    }

    /// Reads and checks the rules of a TOML file.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; otherwise as
    /// [`from_toml_str`](Self::from_toml_str).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Rules> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            operation: "read alert rules",
            path: path.to_owned(),
            source,
        })?;
        Rules::from_toml_str(&text)
    }

    /// The rules, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter()
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Whether `text` is a zero wait: `0`, or 0 of a unit (`0s`, `0m` …).
fn is_zero_span(text: &str) -> bool {
    let digits = text.trim_end_matches(['s', 'm', 'h', 'd', 'w', 'y']);
    text.len() - digits.len() <= 1 && !digits.is_empty() && digits.bytes().all(|b| b == b'0')
}

fn invalid(rule: &str, field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidRule {
        rule: rule.to_owned(),
        field: field.to_owned(),
        reason: reason.into(),
    }
}

impl RawRule {
    fn check(self) -> Result<Rule> {
        let name = self.name.clone();
        let bad = |field: &str, reason: &str| invalid(&name, field, reason);
        if name.trim().is_empty() {
            return Err(bad("name", "must not be empty"));
        }
        let span = |field: &str, text: &Option<String>| -> Result<Option<Duration>> {
            text.as_deref()
                .map(|text| span_of(text).map_err(|e| bad(field, &e)))
                .transpose()
        };
        // `for` and `keep_firing_for` may be 0: fire, or stop, at once.
        let wait = |field: &str, text: &Option<String>| -> Result<Duration> {
            match text.as_deref() {
                None => Ok(Duration::zero()),
                Some(text) if is_zero_span(text) => Ok(Duration::zero()),
                Some(_) => Ok(span(field, text)?.unwrap_or_else(Duration::zero)),
            }
        };
        let share = |field: &str, value: Option<f64>| -> Result<Option<f64>> {
            match value {
                Some(v) if !(v > 0.0 && v < 1.0) => {
                    Err(bad(field, "must lie strictly between 0 and 1"))
                }
                other => Ok(other),
            }
        };
        let group_by = match self.group_by.as_deref() {
            None | Some("none") => AlertGroup::None,
            Some("agent") => AlertGroup::Agent,
            Some("swarm") => AlertGroup::Swarm,
            Some(_) => return Err(bad("group_by", "must be none, agent or swarm")),
        };
        let confidence = share("confidence", self.confidence)?.unwrap_or(DEFAULT_CONFIDENCE);
        let mode = match self.mode.as_deref() {
            None | Some("interval") => Mode::Interval,
            Some("point") => Mode::Point,
            Some(_) => return Err(bad("mode", "must be interval or point")),
        };
        let interval = match self.interval.as_deref() {
            None | Some("wilson") => IntervalMethod::Wilson,
            Some("clopper-pearson" | "clopper_pearson") => IntervalMethod::ClopperPearson,
            Some(_) => return Err(bad("interval", "must be wilson or clopper-pearson")),
        };
        let window = span("window", &self.window)?;
        let baseline = span("baseline", &self.baseline)?;

        // Which optional fields each kind reads; any other set is refused,
        // so that a misplaced threshold never goes unnoticed.
        let set: Vec<(&str, bool)> = vec![
            ("below", self.below.is_some()),
            ("confidence", self.confidence.is_some()),
            ("interval", self.interval.is_some()),
            ("mode", self.mode.is_some()),
            ("quantile", self.quantile.is_some()),
            ("above_ms", self.above_ms.is_some()),
            ("above_usd", self.above_usd.is_some()),
            ("objective", self.objective.is_some()),
            ("windows", self.windows.is_some()),
            ("baseline", self.baseline.is_some()),
            ("alpha", self.alpha.is_some()),
            ("window", self.window.is_some()),
        ];
        let reads: &[&str] = match self.kind.as_str() {
            "success_rate" => &["below", "confidence", "interval", "mode", "window"],
            "latency" => &["quantile", "above_ms", "confidence", "mode", "window"],
            "burn_rate" => &["objective", "windows"],
            "regression" => &["baseline", "alpha", "window"],
            "no_data" => &["baseline", "window"],
            "cost" => &["above_usd", "window"],
            _ => {
                return Err(bad(
                    "kind",
                    "must be success_rate, latency, burn_rate, regression, no_data or cost",
                ))
            }
        };
        if let Some((field, _)) = set
            .iter()
            .find(|(field, is_set)| *is_set && !reads.contains(field))
        {
            return Err(invalid(
                &name,
                field,
                format!("does not apply to {} rules", self.kind),
            ));
        }
        let required =
            |field: &str, value: Option<f64>| value.ok_or_else(|| bad(field, "is required"));
        let condition = match self.kind.as_str() {
            "success_rate" => Condition::SuccessRate {
                below: match required("below", self.below)? {
                    v if v > 0.0 && v <= 1.0 => v,
                    _ => return Err(bad("below", "must lie in (0, 1]")),
                },
                confidence,
                interval,
                mode,
            },
            "latency" => Condition::Latency {
                quantile: share("quantile", self.quantile)?.unwrap_or(DEFAULT_QUANTILE),
                above_ms: match required("above_ms", self.above_ms)? {
                    v if v.is_finite() && v >= 0.0 => v,
                    _ => {
                        return Err(bad(
                            "above_ms",
                            "must be a finite number of milliseconds, 0 or more",
                        ))
                    }
                },
                confidence,
                mode,
            },
            "burn_rate" => Condition::BurnRate {
                objective: share("objective", Some(required("objective", self.objective)?))?
                    .unwrap_or_default(),
                windows: match &self.windows {
                    None => default_burn_windows(),
                    Some(raw) if raw.is_empty() => {
                        return Err(bad("windows", "must hold at least one pair"))
                    }
                    Some(raw) => raw
                        .iter()
                        .map(|w| {
                            let long = span_of(&w.long).map_err(|e| bad("windows.long", &e))?;
                            let short = span_of(&w.short).map_err(|e| bad("windows.short", &e))?;
                            if short > long {
                                return Err(bad(
                                    "windows.short",
                                    "must not be longer than its long window",
                                ));
                            }
                            if !(w.factor.is_finite() && w.factor > 0.0) {
                                return Err(bad("windows.factor", "must be a positive number"));
                            }
                            Ok(BurnWindows {
                                long,
                                short,
                                factor: w.factor,
                            })
                        })
                        .collect::<Result<_>>()?,
                },
            },
            "regression" => Condition::Regression {
                baseline: baseline.ok_or_else(|| bad("baseline", "is required"))?,
                alpha: share("alpha", self.alpha)?.unwrap_or(DEFAULT_ALPHA),
            },
            "cost" => Condition::Cost {
                above_usd: match required("above_usd", self.above_usd)? {
                    v if v.is_finite() && v >= 0.0 => v,
                    _ => return Err(bad("above_usd", "must be a finite amount, 0 or more")),
                },
            },
            _ => Condition::NoData {
                baseline: baseline.ok_or_else(|| bad("baseline", "is required"))?,
            },
        };
        let window = match &condition {
            Condition::BurnRate { windows, .. } => windows
                .iter()
                .map(|w| w.long)
                .max()
                .unwrap_or_else(Duration::zero),
            _ => window.ok_or_else(|| bad("window", "is required"))?,
        };
        let mut filter = Filter::new();
        if let Some(raw) = &self.filter {
            if let Some(agent) = &raw.agent {
                validate_id("agent_id", agent).map_err(|e| bad("filter.agent", &e.to_string()))?;
                filter = filter.agent(agent.clone());
            }
            if let Some(swarm) = &raw.swarm {
                validate_id("swarm_id", swarm).map_err(|e| bad("filter.swarm", &e.to_string()))?;
                filter = filter.swarm(swarm.clone());
            }
            if let Some(result) = &raw.result {
                let result: TaskResult = result
                    .parse()
                    .map_err(|e: Error| bad("filter.result", &e.to_string()))?;
                filter = filter.result(result);
            }
        }
        Ok(Rule {
            condition,
            group_by,
            window,
            min_tasks: self.min_tasks.unwrap_or(DEFAULT_MIN_TASKS),
            pending_for: wait("for", &self.pending_for)?,
            keep_firing_for: wait("keep_firing_for", &self.keep_firing_for)?,
            severity: self
                .severity
                .clone()
                .unwrap_or_else(|| "warning".to_owned()),
            filter,
            name,
        })
    }
}
