//! Keeping a store in shape, as the façade offers it: tiered retention
//! (this file: the policy, its report and the driver both engines' steps
//! run through), plain cleanup ([`cleanup`]), giving space back
//! ([`vacuum`]), and both at once on a full disk ([`in_place`]). Each
//! engine's own steps are under `engine/`.

mod cleanup;
mod in_place;
mod vacuum;

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::engine::on_engine;
use crate::error::{Error, Result};
use crate::model::filter::to_micros;
use crate::model::record::{now, MetricKind};
use crate::rollup::tiers::{floor_to, let_others_write};
use crate::rollup::tiers::{Step, DAY_US, HOUR_US};
use crate::storage::MetricsStorage;

pub use cleanup::{CleanupReport, DEFAULT_RETENTION_DAYS};
pub use in_place::InPlaceReport;
pub use vacuum::VacuumReport;

/// How long each tier is kept; `None` keeps it forever.
///
/// Defaults: raw rows 7 days, hourly rollups 90 days, daily rollups 2
/// years. Each horizon must be at least as long as the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Raw rows older than this are folded into hourly rollups.
    pub raw: Option<Duration>,
    /// Hourly rollups older than this are folded into daily rollups.
    pub hourly: Option<Duration>,
    /// Daily rollups older than this are dropped.
    pub daily: Option<Duration>,
    /// Rows (or hourly rollups) folded per transaction: what a concurrent
    /// store waits for at most.
    pub chunk_rows: usize,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            raw: Some(Duration::days(7)),
            hourly: Some(Duration::days(90)),
            daily: Some(Duration::days(730)),
            chunk_rows: 5_000,
        }
    }
}

impl RetentionPolicy {
    /// Checks that every horizon is positive and none is shorter than the
    /// tier before it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (field `policy`) naming the horizon.
    pub fn validate(&self) -> Result<()> {
        if self.chunk_rows == 0 {
            return Err(Error::invalid("policy", "chunk_rows must be at least 1"));
        }
        let tiers = [
            ("raw", self.raw),
            ("hourly", self.hourly),
            ("daily", self.daily),
        ];
        for (name, horizon) in tiers {
            if let Some(h) = horizon {
                if h <= Duration::zero() {
                    return Err(Error::invalid(
                        "policy",
                        format!("the {name} horizon must be positive, got {h}"),
                    ));
                }
            }
        }
        for pair in tiers.windows(2) {
            let ((a, ha), (b, hb)) = (pair[0], pair[1]);
            match (ha, hb) {
                (None, Some(_)) => {
                    return Err(Error::invalid(
                        "policy",
                        format!("{a} is kept forever, so {b} must be too"),
                    ))
                }
                (Some(x), Some(y)) if y < x => {
                    return Err(Error::invalid(
                        "policy",
                        format!("the {b} horizon ({y}) is shorter than the {a} horizon ({x})"),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// What [`MetricsStorage::apply_retention`] did: in all, and for each
/// kind of metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RetentionReport {
    /// Raw rows folded into hourly rollups (and deleted), of all kinds.
    pub raw_folded: u64,
    /// Hourly rollups folded into daily ones (and deleted), of all kinds.
    pub hourly_folded: u64,
    /// Daily rollups dropped, of all kinds.
    pub daily_dropped: u64,
    /// The same for task metrics alone.
    #[serde(default)]
    pub task_metrics: TierCounts,
    /// The same for agent metrics alone.
    #[serde(default)]
    pub agent_metrics: TierCounts,
    /// The same for swarm metrics alone.
    #[serde(default)]
    pub swarm_metrics: TierCounts,
    /// Whether the run finished (false when stopped by a chunk limit).
    pub finished: bool,
    /// Transitions of the alert history dropped: those older than the
    /// daily horizon, once the run finishes.
    #[serde(default)]
    pub alert_transitions_dropped: u64,
}

/// What tiered retention did to one kind of metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TierCounts {
    /// Raw rows folded into hourly rollups (and deleted).
    pub raw_folded: u64,
    /// Hourly rollups folded into daily ones (and deleted).
    pub hourly_folded: u64,
    /// Daily rollups dropped.
    pub daily_dropped: u64,
}

impl RetentionReport {
    /// Counts `n` rows or rollups that `step` did, in all and for its kind.
    fn count(&mut self, step: &Step, n: u64) {
        let kind = step.kind();
        let of_kind = match kind {
            MetricKind::Task => &mut self.task_metrics,
            MetricKind::Agent => &mut self.agent_metrics,
            MetricKind::Swarm => &mut self.swarm_metrics,
        };
        let (total, own) = match step {
            Step::FoldRaw { .. } => (&mut self.raw_folded, &mut of_kind.raw_folded),
            Step::FoldHourly { .. } => (&mut self.hourly_folded, &mut of_kind.hourly_folded),
            Step::DropDaily { .. } => (&mut self.daily_dropped, &mut of_kind.daily_dropped),
        };
        *total += n;
        *own += n;
    }
}

impl MetricsStorage {
    /// Applies `policy`: folds raw rows older than the raw horizon into
    /// hourly rollups, hourly rollups older than the hourly horizon into
    /// daily ones, and drops daily rollups older than the daily horizon.
    /// Horizons are aligned down to whole hours (raw) and days (rollups).
    ///
    /// Works in bounded chunks, one transaction each, through the same
    /// queue as stores, so writers wait for one chunk at most, with a short
    /// pause after each so that writers in other processes get in too.
    /// Safe to interrupt and to run again: no row is ever counted twice or
    /// lost, and reads that combine raw rows and rollups see each row once
    /// whatever the moment.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an invalid policy; [`Error::ReadOnly`];
    /// [`Error::Sqlite`] when a chunk fails (chunks already done stay done).
    pub fn apply_retention(&self, policy: &RetentionPolicy) -> Result<RetentionReport> {
        self.apply_retention_steps(policy, usize::MAX)
    }

    /// [`apply_retention`](Self::apply_retention), stopping after at most
    /// `max_chunks` chunks that did something (for bounded maintenance
    /// windows); steps with nothing to do cost nothing. The report says
    /// whether it finished: `finished` is true as soon as nothing is left
    /// to do. The next call goes on from where this one stopped.
    ///
    /// # Errors
    /// As [`apply_retention`](Self::apply_retention), and for `max_chunks`
    /// = 0.
    pub fn apply_retention_steps(
        &self,
        policy: &RetentionPolicy,
        max_chunks: usize,
    ) -> Result<RetentionReport> {
        policy.validate()?;
        if max_chunks == 0 {
            return Err(Error::invalid("max_chunks", "must be at least 1"));
        }
        let steps = planned_steps(policy)?;
        if self.is_read_only() {
            return Err(Error::ReadOnly {
                path: self.path().to_path_buf(),
            });
        }
        let mut report = drive(
            &steps,
            max_chunks,
            |step| on_engine!(self.engine(), retention_step(step)),
            |step| on_engine!(self.engine(), has_retention_work(step)),
        )?;
        // The alert history is kept as long as the daily rollups that
        // show what it was about.
        if let (true, Some(daily)) = (report.finished, policy.daily) {
            let cutoff =
                to_micros(now()).saturating_sub(daily.num_microseconds().unwrap_or(i64::MAX));
            report.alert_transitions_dropped =
                on_engine!(self.engine(), delete_alert_history_before(cutoff))?;
        }
        Ok(report)
    }
}

/// The steps `policy` asks for now, in order: for each kind, folding raw
/// rows, folding hourly rollups, dropping daily ones.
fn planned_steps(policy: &RetentionPolicy) -> Result<Vec<Step>> {
    let now_us = to_micros(now());
    let horizon = |d: Option<Duration>, width: i64| -> Result<Option<i64>> {
        d.map(|d| {
            let us = d
                .num_microseconds()
                .ok_or_else(|| Error::invalid("policy", format!("horizon {d} is too long")))?;
            Ok(floor_to(now_us.saturating_sub(us), width))
        })
        .transpose()
    };
    let (raw, hourly, daily) = (
        horizon(policy.raw, HOUR_US)?,
        horizon(policy.hourly, DAY_US)?,
        horizon(policy.daily, DAY_US)?,
    );
    let limit = i64::try_from(policy.chunk_rows).unwrap_or(i64::MAX);
    let mut steps = Vec::new();
    for kind in MetricKind::ALL.iter().copied() {
        steps.extend(raw.map(|cutoff| Step::FoldRaw {
            kind,
            cutoff,
            limit,
        }));
        steps.extend(hourly.map(|cutoff| Step::FoldHourly {
            kind,
            cutoff,
            limit,
        }));
        steps.extend(daily.map(|cutoff| Step::DropDaily { kind, cutoff }));
    }
    Ok(steps)
}

/// Runs `steps` in order, each chunk by chunk through `run` (which says
/// what a chunk did and whether the step may have more), at most
/// `max_chunks` chunks that did something; `has_work` tells, once the
/// budget is spent, whether the run finished.
fn drive(
    steps: &[Step],
    max_chunks: usize,
    mut run: impl FnMut(&Step) -> Result<(usize, bool)>,
    has_work: impl Fn(&Step) -> Result<bool>,
) -> Result<RetentionReport> {
    let mut report = RetentionReport::default();
    let mut chunks = 0;
    for step in steps {
        loop {
            if chunks == max_chunks {
                // The budget is spent: the run is finished only if no
                // step has anything left to do.
                if has_work(step)? {
                    return Ok(report);
                }
                break;
            }
            let (n, more) = run(step)?;
            report.count(step, n as u64);
            // Only a chunk that did something counts: a step with
            // nothing to do must not use up a bounded run.
            if n > 0 {
                chunks += 1;
                let_others_write();
            }
            if !more {
                break;
            }
        }
    }
    report.finished = true;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_checked() {
        assert!(RetentionPolicy::default().validate().is_ok());
        let p = |r: Option<i64>, h: Option<i64>, d: Option<i64>| RetentionPolicy {
            raw: r.map(Duration::days),
            hourly: h.map(Duration::days),
            daily: d.map(Duration::days),
            ..RetentionPolicy::default()
        };
        assert!(p(Some(1), None, None).validate().is_ok());
        assert!(p(None, None, None).validate().is_ok());
        assert!(p(Some(0), None, None).validate().is_err());
        assert!(p(Some(10), Some(5), None).validate().is_err());
        assert!(p(None, Some(5), None).validate().is_err());
        assert!(p(Some(1), Some(5), Some(4)).validate().is_err());
    }
}
