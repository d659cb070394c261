//! Plain cleanup: deleting every metric older than a number of days.

use chrono::Duration;

use crate::engine::on_engine;
use crate::error::{Error, Result};
use crate::model::filter::to_micros;
use crate::model::record::now;
use crate::storage::MetricsStorage;

pub use crate::model::reports::CleanupReport;

impl MetricsStorage {
    /// Deletes every metric older than `retention_days` days (timestamp
    /// before now minus that many days) from all three tables, and every
    /// rollup of [tiered retention](Self::apply_retention) whose hour or
    /// day ends at or before that moment: afterwards nothing older than
    /// the horizon is left, raw or rolled up. (A rollup that straddles the
    /// horizon is kept whole: it cannot be cut.) The alert history ages
    /// with them: transitions older than the horizon go too.
    ///
    /// Deletes in bounded chunks, one transaction each, so that stores from
    /// other threads go on meanwhile. The space freed is reused by later
    /// stores; [`vacuum`](Self::vacuum) gives it back to the file system.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for 0 days (that would delete everything:
    /// say so with an explicit range instead) or a period too long to
    /// subtract from now; [`Error::ReadOnly`]; [`Error::Sqlite`] when a
    /// chunk fails (chunks already committed stay deleted).
    pub fn cleanup_old_metrics(&self, retention_days: u32) -> Result<CleanupReport> {
        let cutoff = cutoff(retention_days)?;
        let mut report = on_engine!(self.engine(), delete_before(cutoff))?;
        report.alert_transitions = on_engine!(self.engine(), delete_alert_history_before(cutoff))?;
        Ok(report)
    }

    /// How many metrics [`cleanup_old_metrics`](Self::cleanup_old_metrics)
    /// with the same `retention_days` would delete now, without deleting.
    ///
    /// # Errors
    /// As [`cleanup_old_metrics`](Self::cleanup_old_metrics), except that a
    /// read-only store can answer.
    pub fn count_old_metrics(&self, retention_days: u32) -> Result<CleanupReport> {
        let cutoff = cutoff(retention_days)?;
        let mut report = on_engine!(self.engine(), count_before(cutoff))?;
        report.alert_transitions = on_engine!(self.engine(), count_alert_history_before(cutoff))?;
        Ok(report)
    }
}

/// The reference's retention period.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// The first timestamp (µs) kept by a retention of `retention_days`.
pub(super) fn cutoff(retention_days: u32) -> Result<i64> {
    if retention_days == 0 {
        return Err(Error::invalid("retention_days", "must be at least 1"));
    }
    let cutoff = now()
        .checked_sub_signed(Duration::days(i64::from(retention_days)))
        .ok_or_else(|| {
            Error::invalid(
                "retention_days",
                format!("{retention_days} days is too long"),
            )
        })?;
    Ok(to_micros(cutoff))
}
