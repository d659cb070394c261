//! Alerting as the façade offers it: what each rule finds at an instant,
//! per alert instance (the verdict and the figures that decided it,
//! composed from the store's answers, so that both engines decide alike),
//! and the evaluation that records states and transitions.

use std::cell::RefCell;
use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use sketches_ddsketch::DDSketch;

use crate::alerts::evaluate::{AlertInstance, Evaluation, Transition};
use crate::alerts::figures::{Figures, Finding};
use crate::alerts::rules::{AlertGroup, BurnWindows, Condition, Mode, Rule, Rules};
use crate::alerts::state::Verdict;
use crate::engine::on_engine;
use crate::error::Result;
use crate::model::answer::SuccessRate;
use crate::model::filter::{Filter, GroupBy, TaskColumn, TimeRange};
use crate::model::record::{AggregationType, MetricKind};
use crate::query::compare::{RegressedMeasure, Regression};
use crate::stats::interval::IntervalMethod;
use crate::stats::order_bound::{lower_bound_rank, quantile_lower_bound};
use crate::stats::running::{quantile, sketch_quantile};
use crate::storage::MetricsStorage;

/// The success rate of each group with tasks.
type Rates = Vec<(Option<String>, SuccessRate)>;

/// What a read of rates selects: the rule's filter, grouping and range.
type Selection = (Filter, AlertGroup, TimeRange);

/// The rates one evaluation has read, by selection: rules that read the
/// same selection read it once.
#[derive(Default)]
struct Reads {
    rates: RefCell<Vec<(Selection, Rates)>>,
}

/// The range `span` long that ends at `at`.
fn ending_at(at: DateTime<Utc>, span: Duration) -> Result<TimeRange> {
    TimeRange::new(at - span, at)
}

/// `filter` within `range`.
fn within(filter: &Filter, range: TimeRange) -> Filter {
    filter.clone().range(range)
}

fn group_by_of(group: AlertGroup) -> Option<GroupBy> {
    match group {
        AlertGroup::None => None,
        AlertGroup::Agent => Some(GroupBy::Agent),
        AlertGroup::Swarm => Some(GroupBy::Swarm),
    }
}

impl MetricsStorage {
    /// What every rule finds at `at`, read in one consistent snapshot:
    /// one finding per rule and group with tasks in the spans the rule
    /// reads (a group it does not list had none, which is no verdict).
    /// Nothing is written; alert states build on these findings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) when a rule's
    /// window reaches outside the time the store can hold; otherwise as
    /// the answers it reads ([`success_rate_by`](Self::success_rate_by),
    /// [`percentile_by`](Self::percentile_by),
    /// [`regressions_in`](Self::regressions_in)).
    pub fn alert_findings(&self, rules: &Rules, at: DateTime<Utc>) -> Result<Vec<Finding>> {
        self.consistent(|store| {
            let reads = Reads::default();
            let mut findings = Vec::new();
            for rule in rules.iter() {
                findings.extend(store.findings(&reads, rule, at)?);
            }
            Ok(findings)
        })
    }

    /// What `rule` finds at `at`, one finding per group that has tasks in
    /// the spans it reads.
    fn findings(&self, reads: &Reads, rule: &Rule, at: DateTime<Utc>) -> Result<Vec<Finding>> {
        let window = ending_at(at, rule.window)?;
        match &rule.condition {
            Condition::SuccessRate {
                below,
                confidence,
                interval,
                mode,
            } => Ok(self
                .rates(reads, rule, window)?
                .into_iter()
                .map(|(group, rate)| {
                    let figures = rate_figures(&rate, *confidence, *interval);
                    Finding {
                        rule: rule.name.clone(),
                        group,
                        verdict: rate_verdict(rule, &figures, *below, *mode),
                        figures,
                    }
                })
                .collect()),
            Condition::Latency {
                quantile,
                above_ms,
                confidence,
                mode,
            } => {
                let filter = within(&rule.filter, window).column(TaskColumn::Duration);
                let groups = match group_by_of(rule.group_by) {
                    None => {
                        BTreeMap::from([(None, self.selected_values(MetricKind::Task, &filter)?)])
                    }
                    Some(by) => self.values_by_group(MetricKind::Task, by, &filter)?,
                };
                Ok(groups
                    .into_iter()
                    .filter(|(_, (values, sketch))| !values.is_empty() || sketch.is_some())
                    .map(|(group, (mut values, sketch))| {
                        let figures = latency_figures(&mut values, sketch, *quantile, *confidence);
                        let verdict = if figures.tasks < rule.min_tasks {
                            Verdict::Unknown
                        } else {
                            let figure = match mode {
                                Mode::Interval => figures.lower_bound,
                                Mode::Point => figures.quantile,
                            };
                            match figure {
                                None => Verdict::Unknown,
                                Some(ms) if ms > *above_ms => Verdict::Holds,
                                Some(_) => Verdict::Clear,
                            }
                        };
                        Finding {
                            rule: rule.name.clone(),
                            group,
                            verdict,
                            figures,
                        }
                    })
                    .collect())
            }
            Condition::BurnRate { objective, windows } => {
                self.burn(reads, rule, at, *objective, windows)
            }
            Condition::Regression { baseline, alpha } => {
                let baseline_range = ending_at(at - rule.window, *baseline)?;
                // The rule watches the health of work; spend has its own
                // kind of rule, so a cost regression does not fire it.
                let regressions: Vec<Regression> = self
                    .regressions_in(&rule.filter, window, baseline_range, *alpha)?
                    .into_iter()
                    .filter(|r| r.measure != RegressedMeasure::Cost)
                    .collect();
                let wanted = group_by_of(rule.group_by);
                Ok(self
                    .rates(reads, rule, window)?
                    .into_iter()
                    .map(|(group, rate)| {
                        let regressed = regressions.iter().find(|r| {
                            Some(r.group) == wanted && Some(&r.id) == group.as_ref()
                                || wanted.is_none()
                        });
                        let verdict = match regressed {
                            _ if rate.total < rule.min_tasks => Verdict::Unknown,
                            Some(_) => Verdict::Holds,
                            None => Verdict::Clear,
                        };
                        Finding {
                            rule: rule.name.clone(),
                            group,
                            verdict,
                            figures: Figures {
                                q_value: regressed.map(|r| r.q_value),
                                ..rate_figures(&rate, 0.95, IntervalMethod::Wilson)
                            },
                        }
                    })
                    .collect())
            }
            Condition::Cost { above_usd } => {
                let filter = within(&rule.filter, window).column(TaskColumn::Cost);
                let groups = match group_by_of(rule.group_by) {
                    None => vec![(
                        None,
                        self.aggregate_metrics(MetricKind::Task, AggregationType::Sum, &filter)?,
                    )],
                    Some(by) => self
                        .aggregate_by(MetricKind::Task, AggregationType::Sum, by, &filter)?
                        .into_iter()
                        .map(|g| (g.key, g.value))
                        .collect(),
                };
                Ok(groups
                    .into_iter()
                    .filter_map(|(group, cost)| {
                        let unpriced = cost.unpriced.unwrap_or(0);
                        let tasks = cost.count + unpriced;
                        // A window without tasks has no instance.
                        (tasks > 0).then(|| {
                            let spent = cost.value.unwrap_or(0.0);
                            Finding {
                                rule: rule.name.clone(),
                                group,
                                verdict: if spent > *above_usd {
                                    Verdict::Holds
                                } else {
                                    Verdict::Clear
                                },
                                figures: Figures {
                                    tasks,
                                    cost_usd: Some(spent),
                                    unpriced: Some(unpriced),
                                    ..Figures::default()
                                },
                            }
                        })
                    })
                    .collect())
            }
            Condition::NoData { baseline } => {
                let before = self.rates(reads, rule, ending_at(at - rule.window, *baseline)?)?;
                let now: BTreeMap<_, _> = self.rates(reads, rule, window)?.into_iter().collect();
                Ok(before
                    .into_iter()
                    .map(|(group, then)| {
                        let tasks = now.get(&group).map_or(0, |rate| rate.total);
                        Finding {
                            rule: rule.name.clone(),
                            verdict: if tasks == 0 {
                                Verdict::Holds
                            } else {
                                Verdict::Clear
                            },
                            figures: Figures {
                                tasks,
                                baseline_tasks: Some(then.total),
                                ..Figures::default()
                            },
                            group,
                        }
                    })
                    .collect())
            }
        }
    }

    /// The success rate of each of the rule's groups with tasks in
    /// `range` (one, keyed `None`, without grouping).
    fn rates(&self, reads: &Reads, rule: &Rule, range: TimeRange) -> Result<Rates> {
        let key = (rule.filter.clone(), rule.group_by, range);
        if let Some((_, rates)) = reads.rates.borrow().iter().find(|(k, _)| *k == key) {
            return Ok(rates.clone());
        }
        let rates = self.read_rates(rule, range)?;
        reads.rates.borrow_mut().push((key, rates.clone()));
        Ok(rates)
    }

    /// [`rates`](Self::rates), read.
    fn read_rates(&self, rule: &Rule, range: TimeRange) -> Result<Rates> {
        let filter = within(&rule.filter, range);
        Ok(match group_by_of(rule.group_by) {
            None => {
                let rate = self.success_rate(&filter)?;
                if rate.total == 0 {
                    Vec::new()
                } else {
                    vec![(None, rate)]
                }
            }
            Some(by) => self
                .success_rate_by(by, &filter)?
                .into_iter()
                .map(|g| (g.key, g.value))
                .collect(),
        })
    }

    /// The burn-rate findings: a pair holds when both its windows burn
    /// faster than its factor; the rule holds when any pair does. The
    /// longest window decides whether there are tasks enough.
    fn burn(
        &self,
        reads: &Reads,
        rule: &Rule,
        at: DateTime<Utc>,
        objective: f64,
        windows: &[BurnWindows],
    ) -> Result<Vec<Finding>> {
        let budget = 1.0 - objective;
        let burn_of = |rate: Option<&SuccessRate>| {
            rate.and_then(|r| r.rate)
                .map_or(0.0, |rate| (1.0 - rate) / budget)
        };
        let mut per_pair = Vec::with_capacity(windows.len());
        for pair in windows {
            let long: BTreeMap<_, _> = self
                .rates(reads, rule, ending_at(at, pair.long)?)?
                .into_iter()
                .collect();
            let short: BTreeMap<_, _> = self
                .rates(reads, rule, ending_at(at, pair.short)?)?
                .into_iter()
                .collect();
            per_pair.push((pair.factor, long, short));
        }
        let longest = self.rates(reads, rule, ending_at(at, rule.window)?)?;
        Ok(longest
            .into_iter()
            .map(|(group, rate)| {
                let burn_rates: Vec<[f64; 2]> = per_pair
                    .iter()
                    .map(|(_, long, short)| [burn_of(long.get(&group)), burn_of(short.get(&group))])
                    .collect();
                let holds = per_pair
                    .iter()
                    .zip(&burn_rates)
                    .any(|((factor, _, _), [long, short])| long > factor && short > factor);
                let verdict = match holds {
                    _ if rate.total < rule.min_tasks => Verdict::Unknown,
                    true => Verdict::Holds,
                    false => Verdict::Clear,
                };
                Finding {
                    rule: rule.name.clone(),
                    group,
                    verdict,
                    figures: Figures {
                        burn_rates,
                        ..rate_figures(&rate, 0.95, IntervalMethod::Wilson)
                    },
                }
            })
            .collect())
    }
}

/// A success-rate rule's verdict from the figures of a rate: the whole
/// interval (or, in point mode, the rate) below `below`.
fn rate_verdict(rule: &Rule, figures: &Figures, below: f64, mode: Mode) -> Verdict {
    if figures.tasks < rule.min_tasks {
        return Verdict::Unknown;
    }
    let figure = match mode {
        Mode::Point => figures.rate,
        Mode::Interval => figures.interval.map(|[_, high]| high),
    };
    match figure {
        None => Verdict::Unknown,
        Some(figure) if figure < below => Verdict::Holds,
        Some(_) => Verdict::Clear,
    }
}

fn rate_figures(rate: &SuccessRate, confidence: f64, method: IntervalMethod) -> Figures {
    Figures {
        tasks: rate.total,
        successes: Some(rate.success),
        rate: rate.rate,
        interval: rate
            .interval(confidence, method)
            .ok()
            .flatten()
            .map(|i| [i.low, i.high]),
        ..Figures::default()
    }
}

/// The quantile of durations and its lower bound: exact from raw values,
/// approximate when rollups' sketches hold part of them.
fn latency_figures(
    values: &mut [f64],
    sketch: Option<DDSketch>,
    q: f64,
    confidence: f64,
) -> Figures {
    match sketch {
        None => Figures {
            tasks: values.len() as u64,
            quantile: quantile(values, q),
            lower_bound: quantile_lower_bound(values, q, confidence),
            ..Figures::default()
        },
        Some(mut sketch) => {
            values.iter().for_each(|v| sketch.add(*v));
            let n = sketch.count() as u64;
            // The k-th of n values sits at the quantile (k - 1) / (n - 1)
            // of the merged sketch.
            let lower_bound = lower_bound_rank(n, q, confidence).and_then(|k| {
                let at = if n > 1 {
                    (k - 1) as f64 / (n - 1) as f64
                } else {
                    0.0
                };
                sketch_quantile(&sketch, at)
            });
            Figures {
                tasks: n,
                quantile: sketch_quantile(&sketch, q),
                lower_bound,
                approximate: true,
                ..Figures::default()
            }
        }
    }
}

impl MetricsStorage {
    /// Evaluates every rule at `at` and records the result: reads what
    /// each rule finds in one consistent snapshot
    /// ([`alert_findings`](Self::alert_findings)), then, in one write
    /// transaction, reads each alert instance's state, moves it on
    /// ([`Standing::next`](crate::Standing::next)) and writes the new states and the transitions
    /// into the alert history. Returns every instance of these rules with
    /// its standing, figures and transition.
    ///
    /// Evaluating at instants in order replays history: the same
    /// sequence of instants gives the same transitions, whether evaluated
    /// live or afterwards. An instance already evaluated at `at` or later
    /// is left as it is (an evaluation repeated, or two processes
    /// evaluating at once, record a transition once).
    ///
    /// # Errors
    /// [`Error::ReadOnly`](crate::Error::ReadOnly) on a store opened
    /// read-only; otherwise as [`alert_findings`](Self::alert_findings)
    /// and the write of the states.
    pub fn evaluate_alerts(&self, rules: &Rules, at: DateTime<Utc>) -> Result<Vec<AlertInstance>> {
        let evaluation = Evaluation::new(rules, at, self.alert_findings(rules, at)?);
        let outcome = on_engine!(self.engine(), record_alerts(evaluation))?;
        Ok(outcome.instances)
    }

    /// Every alert instance that is pending, firing or recovering, by rule
    /// and group, with the figures of the evaluation that last changed
    /// its standing.
    ///
    /// # Errors
    /// [`Error::CorruptRow`](crate::Error::CorruptRow) for a state row
    /// this version cannot read; otherwise as any read.
    pub fn alert_states(&self) -> Result<Vec<AlertInstance>> {
        let stored = on_engine!(self.engine(), alert_states())?;
        Ok(stored
            .into_iter()
            .map(|alert| AlertInstance {
                rule: alert.rule,
                group_by: alert.group_by,
                group: alert.group,
                severity: String::new(),
                standing: alert.standing,
                verdict: Verdict::Unknown,
                figures: alert.figures,
                transition: None,
            })
            .collect())
    }

    /// The alert history: every transition whose instant lies in the
    /// filter's time range (all without one) and whose group is the
    /// filter's agent or swarm (when it sets one), oldest first.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) when the filter
    /// sets a field other than the agent, swarm and time range;
    /// [`Error::CorruptRow`](crate::Error::CorruptRow) for a row this
    /// version cannot read.
    pub fn alert_history(&self, filter: &Filter) -> Result<Vec<Transition>> {
        filter.validate_for_alerts()?;
        let mut transitions = on_engine!(self.engine(), alert_history(filter))?;
        transitions.retain(|t| {
            let named = |id: &Option<String>, group_by| {
                id.as_ref()
                    .is_none_or(|id| t.group_by == group_by && t.group.as_ref() == Some(id))
            };
            named(&filter.agent_id, AlertGroup::Agent) && named(&filter.swarm_id, AlertGroup::Swarm)
        });
        Ok(transitions)
    }
}
