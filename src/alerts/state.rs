//! The life of one alert instance, as Prometheus and Grafana define it:
//! inactive → pending (for `for`) → firing → recovering (for
//! `keep_firing_for`) → inactive. A window with too few tasks gives no
//! verdict and leaves the state as it was.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Where an alert instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition does not hold.
    #[default]
    Inactive,
    /// The condition holds, not yet for the rule's `for`.
    Pending,
    /// The condition has held for the rule's `for`.
    Firing,
    /// The condition cleared less than the rule's `keep_firing_for` ago:
    /// still firing, so that a flapping condition does not page twice.
    Recovering,
}

impl AlertState {
    /// The state's name, as the JSON output and the history spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Recovering => "recovering",
        }
    }

    /// Whether receivers are told the alert fires: firing, or recovering
    /// (still firing for `keep_firing_for`).
    pub fn is_firing(self) -> bool {
        matches!(self, AlertState::Firing | AlertState::Recovering)
    }
}

impl std::fmt::Display for AlertState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one evaluation found about a rule's condition for one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The condition holds.
    Holds,
    /// The condition does not hold.
    Clear,
    /// Too few tasks to tell: the state is left as it was.
    Unknown,
}

/// One instance's state with the instants that time it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Standing {
    /// Where the instance stands.
    pub state: AlertState,
    /// When the condition began to hold (pending, firing, recovering):
    /// Alertmanager's `startsAt`.
    pub active_since: Option<DateTime<Utc>>,
    /// When the condition last cleared (recovering), or when the alert
    /// resolved (inactive after firing): Alertmanager's `endsAt`.
    pub cleared_at: Option<DateTime<Utc>>,
}

impl Standing {
    /// The standing after an evaluation at `at` found `verdict`, for a
    /// rule that waits `pending_for` before firing and keeps firing for
    /// `keep_firing_for` after its condition clears.
    pub fn next(
        self,
        verdict: Verdict,
        at: DateTime<Utc>,
        pending_for: Duration,
        keep_firing_for: Duration,
    ) -> Standing {
        use AlertState::{Firing, Inactive, Pending, Recovering};
        let held_long_enough =
            |since: Option<DateTime<Utc>>| since.is_none_or(|since| at - since >= pending_for);
        let fire = |since| Standing {
            state: Firing,
            active_since: Some(since),
            cleared_at: None,
        };
        let resolved = || Standing {
            state: Inactive,
            active_since: None,
            cleared_at: Some(at),
        };
        match (self.state, verdict) {
            (_, Verdict::Unknown) => self,
            (Inactive, Verdict::Clear) => self,
            (Inactive, Verdict::Holds) if pending_for <= Duration::zero() => fire(at),
            (Inactive, Verdict::Holds) => Standing {
                state: Pending,
                active_since: Some(at),
                cleared_at: None,
            },
            (Pending, Verdict::Holds) if held_long_enough(self.active_since) => {
                fire(self.active_since.unwrap_or(at))
            }
            (Pending, Verdict::Holds) => self,
            (Pending, Verdict::Clear) => Standing::default(),
            (Firing | Recovering, Verdict::Holds) => fire(self.active_since.unwrap_or(at)),
            (Firing, Verdict::Clear) if keep_firing_for <= Duration::zero() => resolved(),
            (Firing, Verdict::Clear) => Standing {
                state: Recovering,
                active_since: self.active_since,
                cleared_at: Some(at),
            },
            (Recovering, Verdict::Clear) => match self.cleared_at {
                Some(cleared) if at - cleared < keep_firing_for => self,
                _ => resolved(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    /// The states a run of verdicts, one every 5 minutes, goes through.
    fn run(verdicts: &str, pending: i64, keep: i64) -> Vec<AlertState> {
        let mut standing = Standing::default();
        verdicts
            .chars()
            .enumerate()
            .map(|(i, v)| {
                let verdict = match v {
                    'H' => Verdict::Holds,
                    'C' => Verdict::Clear,
                    _ => Verdict::Unknown,
                };
                standing = standing.next(
                    verdict,
                    t(5 * i as i64),
                    Duration::minutes(pending),
                    Duration::minutes(keep),
                );
                standing.state
            })
            .collect()
    }

    #[test]
    fn pending_fires_after_for_and_recovers_after_keep_firing_for() {
        use AlertState::*;
        assert_eq!(
            run("CHHHCCCC", 10, 10),
            [Inactive, Pending, Pending, Firing, Recovering, Recovering, Inactive, Inactive]
        );
    }

    #[test]
    fn zero_waits_fire_and_resolve_at_once() {
        use AlertState::*;
        assert_eq!(run("HCH", 0, 0), [Firing, Inactive, Firing]);
    }

    #[test]
    fn a_clear_while_pending_starts_over() {
        use AlertState::*;
        assert_eq!(
            run("HCHHH", 10, 0),
            [Pending, Inactive, Pending, Pending, Firing]
        );
    }

    #[test]
    fn no_verdict_leaves_every_state_as_it_was() {
        use AlertState::*;
        assert_eq!(run("H?H", 10, 0), [Pending, Pending, Firing]);
        assert_eq!(
            run("HC??C", 0, 10),
            [Firing, Recovering, Recovering, Recovering, Inactive]
        );
        assert_eq!(run("??", 0, 0), [Inactive, Inactive]);
    }

    #[test]
    fn holding_again_while_recovering_keeps_the_alert_firing_from_its_start() {
        let mut s = Standing::default();
        let (zero, ten) = (Duration::zero(), Duration::minutes(10));
        s = s.next(Verdict::Holds, t(0), zero, ten);
        s = s.next(Verdict::Clear, t(5), zero, ten);
        assert_eq!(s.state, AlertState::Recovering);
        s = s.next(Verdict::Holds, t(10), zero, ten);
        assert_eq!(s.state, AlertState::Firing);
        assert_eq!(s.active_since, Some(t(0)));
        assert_eq!(s.cleared_at, None);
    }
}
