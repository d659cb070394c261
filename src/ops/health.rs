//! A health check for probes and on-call people: each check named, with
//! its figure, and one verdict.

use std::path::Path;

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::engine::on_engine;
use crate::model::record::now;
use crate::ops::retention::RetentionPolicy;
use crate::storage::MetricsStorage;

/// What [`MetricsStorage::health`] holds a store to.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HealthOptions {
    /// A swarm whose newest task is older than this is stale.
    pub stale_after: Duration,
    /// A write-ahead log larger than this is unhealthy (a checkpoint
    /// cannot keep up, or a reader holds it).
    pub max_wal_bytes: u64,
    /// Less free disk than this beside the file is unhealthy.
    pub min_free_bytes: u64,
    /// The retention policy the store is kept to, if any: raw rows older
    /// than its raw horizon by more than `max_retention_lag` are a lag.
    pub retention: Option<RetentionPolicy>,
    /// How far past its policy retention may run behind.
    pub max_retention_lag: Duration,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            stale_after: Duration::minutes(15),
            max_wal_bytes: 256 << 20,
            min_free_bytes: 256 << 20,
            retention: None,
            max_retention_lag: Duration::days(1),
        }
    }
}

impl HealthOptions {
    /// The defaults: stale after 15 minutes, a WAL under 256 MiB, 256 MiB
    /// free beside the file, no retention policy, a day's retention lag.
    pub fn new() -> Self {
        HealthOptions::default()
    }

    /// Swarms are stale after this long without a task.
    pub fn stale_after(mut self, span: Duration) -> Self {
        self.stale_after = span;
        self
    }

    /// The retention policy the store is kept to.
    pub fn retention(mut self, policy: RetentionPolicy) -> Self {
        self.retention = Some(policy);
        self
    }
}

/// One named check and what it found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HealthCheck {
    /// What was checked: `integrity`, `wal_size`, `free_disk`,
    /// `retention_lag`, `stale:<swarm>`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// The figure it found, in words.
    pub figure: String,
}

/// Every check, and whether all passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Health {
    /// Whether every check passed.
    pub healthy: bool,
    /// The checks, in order.
    pub checks: Vec<HealthCheck>,
}

impl Health {
    /// The health of a store that could not be opened: one failed
    /// `open` check giving the reason.
    pub fn unreachable(reason: impl Into<String>) -> Health {
        Health {
            healthy: false,
            checks: vec![check("open", false, reason)],
        }
    }
}

fn check(name: impl Into<String>, ok: bool, figure: impl Into<String>) -> HealthCheck {
    HealthCheck {
        name: name.into(),
        ok,
        figure: figure.into(),
    }
}

/// Bytes in MiB, for figures.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// A span in words, to the minute.
fn span_text(span: Duration) -> String {
    let minutes = span.num_minutes();
    match minutes {
        m if m >= 2 * 24 * 60 => format!("{} days", m / (24 * 60)),
        m if m >= 120 => format!("{} hours", m / 60),
        m => format!("{m} minutes"),
    }
}

impl MetricsStorage {
    /// Checks the store: it answers and passes a quick check (on a
    /// server: its schema version); its WAL is under the limit and the
    /// disk beside the file has room (on a file); every swarm had a task
    /// within `stale_after`; raw rows do not lag the retention policy.
    /// Each check is named, with its figure; a check that cannot be read
    /// fails with the reason as its figure, rather than failing the call.
    pub fn health(&self, options: &HealthOptions) -> Health {
        let mut checks = Vec::new();
        checks.push(match on_engine!(self.engine(), quick_check()) {
            Ok(problems) if problems.is_empty() => check("integrity", true, "ok"),
            Ok(problems) => check("integrity", false, problems.join("; ")),
            Err(e) => check("integrity", false, e.to_string()),
        });
        let on_file = self.engine().file().is_some();
        if on_file {
            checks.push(match on_engine!(self.engine(), sizes()) {
                Ok((_, wal)) => check(
                    "wal_size",
                    wal <= options.max_wal_bytes,
                    format!("{} (limit {})", mib(wal), mib(options.max_wal_bytes)),
                ),
                Err(e) => check("wal_size", false, e.to_string()),
            });
            checks.push(match free_bytes_beside(self.path()) {
                Some(free) => check(
                    "free_disk",
                    free >= options.min_free_bytes,
                    format!(
                        "{} free (at least {})",
                        mib(free),
                        mib(options.min_free_bytes)
                    ),
                ),
                None => check("free_disk", true, "not measured on this platform"),
            });
        }
        if let Some(raw) = options.retention.and_then(|policy| policy.raw) {
            checks.push(match self.stats() {
                Ok(stats) => {
                    let horizon = now() - raw;
                    let lag = [
                        stats.task_metrics.oldest,
                        stats.agent_metrics.oldest,
                        stats.swarm_metrics.oldest,
                    ]
                    .into_iter()
                    .flatten()
                    .map(|oldest| horizon - oldest)
                    .max()
                    .filter(|lag| *lag > Duration::zero())
                    .unwrap_or_else(Duration::zero);
                    check(
                        "retention_lag",
                        lag <= options.max_retention_lag,
                        format!(
                            "raw rows {} past the policy (at most {})",
                            span_text(lag),
                            span_text(options.max_retention_lag)
                        ),
                    )
                }
                Err(e) => check("retention_lag", false, e.to_string()),
            });
        }
        match on_engine!(self.engine(), last_task_by_swarm()) {
            Ok(swarms) => {
                let now_us = now().timestamp_micros();
                for (swarm, last) in swarms {
                    let Some(swarm) = swarm else { continue };
                    let age = Duration::microseconds(now_us.saturating_sub(last));
                    checks.push(check(
                        format!("stale:{swarm}"),
                        age <= options.stale_after,
                        format!(
                            "last task {} ago (stale after {})",
                            span_text(age),
                            span_text(options.stale_after)
                        ),
                    ));
                }
            }
            Err(e) => checks.push(check("stale", false, e.to_string())),
        }
        Health {
            healthy: checks.iter().all(|c| c.ok),
            checks,
        }
    }
}

/// The bytes free to this process on the file system holding `path`.
#[cfg(unix)]
fn free_bytes_beside(path: &Path) -> Option<u64> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stat = rustix::fs::statvfs(folder).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Not measured off Unix.
#[cfg(not(unix))]
fn free_bytes_beside(_path: &Path) -> Option<u64> {
    None
}
