//! One evaluation of alert rules: the findings of a consistent read
//! turned into each instance's next standing, and the transitions between
//! them, which an engine writes in one transaction with the states it
//! read inside it.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::figures::{Figures, Finding};
use super::rules::{AlertGroup, Rules};
use super::state::{AlertState, Standing, Verdict};
use crate::error::{Error, Result};

/// One alert instance after an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AlertInstance {
    /// The rule's name: the alert's `alertname`.
    pub rule: String,
    /// What the group is: an agent, a swarm, or none.
    pub group_by: AlertGroup,
    /// The agent or swarm (`None`: the rule's whole selection).
    pub group: Option<String>,
    /// The rule's `severity`.
    pub severity: String,
    /// Where the instance stands now.
    pub standing: Standing,
    /// What this evaluation found.
    pub verdict: Verdict,
    /// The numbers behind the verdict (those of the last evaluation that
    /// had some, when this one had none).
    pub figures: Figures,
    /// The transition this evaluation made, if any.
    pub transition: Option<Transition>,
}

/// A change of an alert instance's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Transition {
    /// The rule's name.
    pub rule: String,
    /// What the group is.
    pub group_by: AlertGroup,
    /// The agent or swarm (`None`: the rule's whole selection).
    pub group: Option<String>,
    /// The state before.
    pub from: AlertState,
    /// The state after.
    pub to: AlertState,
    /// The instant of the evaluation that made it.
    pub at: DateTime<Utc>,
    /// The numbers that decided it.
    pub figures: Figures,
}

/// An alert instance as a store keeps it between evaluations.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredAlert {
    pub rule: String,
    pub group_by: AlertGroup,
    pub group: Option<String>,
    pub standing: Standing,
    pub evaluated_at: DateTime<Utc>,
    pub figures: Figures,
}

/// What one rule needs to time and label its instances.
#[derive(Debug, Clone)]
struct Timing {
    pending_for: Duration,
    keep_firing_for: Duration,
    severity: String,
    group_by: AlertGroup,
}

/// One evaluation's findings, owned, with what each rule needs: what an
/// engine takes into its write transaction.
#[derive(Debug, Clone)]
pub(crate) struct Evaluation {
    at: DateTime<Utc>,
    findings: Vec<Finding>,
    timings: BTreeMap<String, Timing>,
}

/// What an evaluation writes and answers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    /// The new state of every instance this evaluation left pending,
    /// firing or recovering: the rows to write.
    pub states: Vec<StoredAlert>,
    /// The instances this evaluation left inactive: the rows to delete
    /// (an inactive instance has none).
    pub inactive: Vec<(String, Option<String>)>,
    /// The rules evaluated, with this evaluation's instant: the instant
    /// each rule was last evaluated at, which a later evaluation must
    /// pass.
    pub evaluated: Vec<(String, DateTime<Utc>)>,
    /// The transitions, in instance order.
    pub transitions: Vec<Transition>,
    /// Every instance of the evaluated rules, as it stands now.
    pub instances: Vec<AlertInstance>,
}

impl Evaluation {
    /// An evaluation at `at` of `rules`, which found `findings`.
    pub fn new(rules: &Rules, at: DateTime<Utc>, findings: Vec<Finding>) -> Evaluation {
        let timings = rules
            .iter()
            .map(|rule| {
                let timing = Timing {
                    pending_for: rule.pending_for,
                    keep_firing_for: rule.keep_firing_for,
                    severity: rule.severity.clone(),
                    group_by: rule.group_by,
                };
                (rule.name.clone(), timing)
            })
            .collect();
        Evaluation {
            at,
            findings,
            timings,
        }
    }

    /// Each instance's next standing, given what the store held (`stored`:
    /// the instances not inactive; `last`: the instant each rule was last
    /// evaluated at; both read in the transaction that will write the
    /// outcome). An instance the findings do not list had too few tasks:
    /// no verdict. A rule last evaluated at or after this evaluation's
    /// instant is left as it is, so that an evaluation run twice, or
    /// late, changes nothing.
    pub fn apply(
        self,
        stored: Vec<StoredAlert>,
        last: &BTreeMap<String, DateTime<Utc>>,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        for rule in self.timings.keys() {
            if last.get(rule).is_none_or(|at| *at < self.at) {
                outcome.evaluated.push((rule.clone(), self.at));
            }
        }
        // The stored instances of the evaluated rules, by rule and group:
        // few (only those not inactive), taken as findings meet them.
        let mut before: HashMap<String, HashMap<Option<String>, StoredAlert>> = HashMap::new();
        for alert in stored {
            if self.timings.contains_key(&alert.rule) {
                before
                    .entry(alert.rule.clone())
                    .or_default()
                    .insert(alert.group.clone(), alert);
            }
        }
        let mut met = Vec::with_capacity(self.findings.len());
        for finding in self.findings {
            let previous = before
                .get_mut(finding.rule.as_str())
                .and_then(|groups| groups.remove(&finding.group));
            met.push((finding, previous));
        }
        // Instances with no finding had no task in the window: no verdict.
        let mut rest: Vec<StoredAlert> = before
            .into_values()
            .flat_map(HashMap::into_values)
            .collect();
        rest.sort_by(|a, b| (&a.rule, &a.group).cmp(&(&b.rule, &b.group)));
        met.extend(rest.into_iter().map(|previous| {
            let finding = Finding {
                rule: previous.rule.clone(),
                group: previous.group.clone(),
                verdict: Verdict::Unknown,
                figures: Figures::default(),
            };
            (finding, Some(previous))
        }));
        for (finding, previous) in met {
            let Some(timing) = self.timings.get(&finding.rule) else {
                continue;
            };
            let late = last.get(&finding.rule).is_some_and(|at| *at >= self.at);
            step(&mut outcome, self.at, timing, late, finding, previous);
        }
        outcome
    }
}

/// Moves one instance on and adds what changes to `outcome`: its row to
/// write or delete, its transition, and the instance as it stands.
fn step(
    outcome: &mut Outcome,
    at: DateTime<Utc>,
    timing: &Timing,
    late: bool,
    finding: Finding,
    previous: Option<StoredAlert>,
) {
    let Finding {
        rule,
        group,
        verdict,
        figures,
    } = finding;
    // A window without a verdict keeps the figures that decided the
    // standing it keeps.
    let figures = match (&previous, verdict) {
        (Some(previous), Verdict::Unknown) => previous.figures.clone(),
        _ => figures,
    };
    let standing_before = previous.as_ref().map(|p| p.standing).unwrap_or_default();
    let standing = if late {
        standing_before
    } else {
        standing_before.next(verdict, at, timing.pending_for, timing.keep_firing_for)
    };
    let transition = (!late && standing.state != standing_before.state).then(|| Transition {
        rule: rule.clone(),
        group_by: timing.group_by,
        group: group.clone(),
        from: standing_before.state,
        to: standing.state,
        at,
        figures: figures.clone(),
    });
    let unchanged = previous.is_some_and(|p| p.standing == standing);
    if late || unchanged {
        // As it was: nothing to write (a row keeps the figures of the
        // evaluation that last changed it).
    } else if standing.state == AlertState::Inactive {
        if standing_before.state != AlertState::Inactive {
            outcome.inactive.push((rule.clone(), group.clone()));
        }
    } else {
        outcome.states.push(StoredAlert {
            rule: rule.clone(),
            group_by: timing.group_by,
            group: group.clone(),
            standing,
            evaluated_at: at,
            figures: figures.clone(),
        });
    }
    if let Some(transition) = &transition {
        outcome.transitions.push(transition.clone());
    }
    outcome.instances.push(AlertInstance {
        rule,
        group_by: timing.group_by,
        group,
        severity: timing.severity.clone(),
        standing,
        verdict,
        figures,
        transition,
    });
}

/// A group as the alert tables key it: `''` for none (ids are never
/// empty).
pub(crate) fn group_key(group: &Option<String>) -> &str {
    group.as_deref().unwrap_or("")
}

/// The inverse of [`group_key`].
pub(crate) fn group_of(key: String) -> Option<String> {
    (!key.is_empty()).then_some(key)
}

/// A group kind as the alert tables spell it.
pub(crate) fn group_by_name(group_by: AlertGroup) -> &'static str {
    match group_by {
        AlertGroup::None => "none",
        AlertGroup::Agent => "agent",
        AlertGroup::Swarm => "swarm",
    }
}

/// The inverse of [`group_by_name`]; `None` for a name this version does
/// not know.
pub(crate) fn group_by_named(name: &str) -> Option<AlertGroup> {
    match name {
        "none" => Some(AlertGroup::None),
        "agent" => Some(AlertGroup::Agent),
        "swarm" => Some(AlertGroup::Swarm),
        _ => None,
    }
}

/// A state as the alert tables store it.
pub(crate) fn state_code(state: AlertState) -> i64 {
    match state {
        AlertState::Inactive => 0,
        AlertState::Pending => 1,
        AlertState::Firing => 2,
        AlertState::Recovering => 3,
    }
}

/// The inverse of [`state_code`].
pub(crate) fn state_of_code(code: i64) -> Option<AlertState> {
    match code {
        0 => Some(AlertState::Inactive),
        1 => Some(AlertState::Pending),
        2 => Some(AlertState::Firing),
        3 => Some(AlertState::Recovering),
        _ => None,
    }
}

/// The columns of an alert row, as both engines read them.
pub(crate) struct AlertRow {
    pub rule: String,
    pub group_key: String,
    pub group_by: String,
    pub state: i64,
    pub active_since: Option<i64>,
    pub cleared_at: Option<i64>,
    /// `evaluated_at` of a state, `at` of a transition.
    pub at: i64,
    /// The state before (transitions only).
    pub from_state: Option<i64>,
    pub figures: String,
}

impl AlertRow {
    /// The columns as written, for the engine's statement.
    pub fn of_state(alert: &StoredAlert) -> Result<AlertRow> {
        Ok(AlertRow {
            rule: alert.rule.clone(),
            group_key: group_key(&alert.group).to_owned(),
            group_by: group_by_name(alert.group_by).to_owned(),
            state: state_code(alert.standing.state),
            active_since: alert.standing.active_since.map(|t| t.timestamp_micros()),
            cleared_at: alert.standing.cleared_at.map(|t| t.timestamp_micros()),
            at: alert.evaluated_at.timestamp_micros(),
            from_state: None,
            figures: figures_json(&alert.figures)?,
        })
    }

    /// The columns of a history row.
    pub fn of_transition(t: &Transition) -> Result<AlertRow> {
        Ok(AlertRow {
            rule: t.rule.clone(),
            group_key: group_key(&t.group).to_owned(),
            group_by: group_by_name(t.group_by).to_owned(),
            state: state_code(t.to),
            active_since: None,
            cleared_at: None,
            at: t.at.timestamp_micros(),
            from_state: Some(state_code(t.from)),
            figures: figures_json(&t.figures)?,
        })
    }

    /// The state row read back; `table` names it in a corrupt row's error.
    pub fn into_state(self, table: &'static str) -> Result<StoredAlert> {
        let corrupt = |reason: String| Error::CorruptRow { table, reason };
        let time = |us: i64| {
            DateTime::from_timestamp_micros(us).ok_or_else(|| corrupt(format!("instant {us}")))
        };
        Ok(StoredAlert {
            group_by: group_by_named(&self.group_by)
                .ok_or_else(|| corrupt(format!("group_by {:?}", self.group_by)))?,
            standing: Standing {
                state: state_of_code(self.state)
                    .ok_or_else(|| corrupt(format!("state {}", self.state)))?,
                active_since: self.active_since.map(time).transpose()?,
                cleared_at: self.cleared_at.map(time).transpose()?,
            },
            evaluated_at: time(self.at)?,
            figures: serde_json::from_str(&self.figures)
                .map_err(|e| corrupt(format!("figures: {e}")))?,
            group: group_of(self.group_key),
            rule: self.rule,
        })
    }

    /// The history row read back.
    pub fn into_transition(self, table: &'static str) -> Result<Transition> {
        let corrupt = |reason: String| Error::CorruptRow { table, reason };
        let state = |code: i64| state_of_code(code).ok_or_else(|| corrupt(format!("state {code}")));
        Ok(Transition {
            group_by: group_by_named(&self.group_by)
                .ok_or_else(|| corrupt(format!("group_by {:?}", self.group_by)))?,
            from: state(self.from_state.unwrap_or(-1))?,
            to: state(self.state)?,
            at: DateTime::from_timestamp_micros(self.at)
                .ok_or_else(|| corrupt(format!("instant {}", self.at)))?,
            figures: serde_json::from_str(&self.figures)
                .map_err(|e| corrupt(format!("figures: {e}")))?,
            group: group_of(self.group_key),
            rule: self.rule,
        })
    }
}

/// Figures as the alert tables store them.
fn figures_json(figures: &Figures) -> Result<String> {
    // Figures are counts and finite numbers: JSON holds them all.
    serde_json::to_string(figures).map_err(|_| Error::Internal("alert figures as JSON"))
}
