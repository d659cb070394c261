//! Agents' totals and summaries of tasks on the file, in one pass over
//! raw rows and the rollups a filter covers.

use std::collections::BTreeMap;

use crate::engine::sqlite::columns::FILES_CHANGED;
use crate::engine::sqlite::retention::merge::{merge_rollups, rollup_span, rollups_apply};
use crate::engine::sqlite::{FileStore, Snapshot};
use crate::engine::AgentTotalsSpan;
use crate::error::{Error, Result};
use crate::model::analytics::{DurationStats, Summary};
use crate::model::analytics::{P50, P95, P99};
use crate::model::filter::Filter;
use crate::model::record::{MetricKind, TaskResult};
use crate::rollup::rolled::{add_agent_rollups, AgentTotals};
use crate::stats::running::quantile;

impl FileStore {
    /// Every agent's totals over the file's raw rows and rollups.
    pub(crate) fn agent_totals(&self, filter: &Filter) -> Result<AgentTotalsSpan> {
        self.snapshot(|s| agent_totals(s, filter))
    }

    /// [`MetricsStorage::summary`] in one pass over the raw rows, when
    /// the selection lies in them alone.
    pub(crate) fn summary_of_rows(&self, filter: &Filter) -> Result<Option<Summary>> {
        if self.snapshot(|s| rollups_apply(s, MetricKind::Task, filter))? {
            return Ok(None);
        }
        self.summary_of_raw_rows(filter).map(Some)
    }
}

impl FileStore {
    /// [`MetricsStorage::summary`] of raw rows alone, in one pass.
    fn summary_of_raw_rows(&self, filter: &Filter) -> Result<Summary> {
        let (from, params) = filter.sql_from(MetricKind::Task);
        let sql =
            format!("SELECT m.result, m.duration_ms, m.tokens_used, {FILES_CHANGED} FROM {from}");
        let mut summary = Summary::default();
        let mut durations = Vec::new();
        let mut sum_duration = 0f64;
        for (code, duration, tokens, files) in
            self.read_rows(&sql, params, "summarise tasks", |row| {
                let code: i64 = row.get(0).map_err(Error::sqlite("summarise tasks"))?;
                let duration: i64 = row.get(1).map_err(Error::sqlite("summarise tasks"))?;
                let tokens: i64 = row.get(2).map_err(Error::sqlite("summarise tasks"))?;
                let files: i64 = row.get(3).map_err(Error::sqlite("summarise tasks"))?;
                Ok((code, duration, tokens, files))
            })?
        {
            let result = TaskResult::from_code(code).ok_or_else(|| Error::CorruptRow {
                table: "task_metrics",
                reason: format!("unknown result code {code}"),
            })?;
            summary.success_rate.add(result, 1);
            durations.push(duration as f64);
            sum_duration += duration as f64;
            summary.tokens_total = summary
                .tokens_total
                .saturating_add(u64::try_from(tokens).unwrap_or(0));
            summary.files_changed_total = summary
                .files_changed_total
                .saturating_add(u64::try_from(files).unwrap_or(0));
        }
        summary.tasks = durations.len() as u64;
        if summary.tasks > 0 {
            let n = summary.tasks as f64;
            summary.tokens_per_task = Some(summary.tokens_total as f64 / n);
            summary.duration_ms = DurationStats {
                avg: Some(sum_duration / n),
                p50: quantile(&mut durations, P50),
                p95: quantile(&mut durations, P95),
                p99: quantile(&mut durations, P99),
                max: durations.iter().copied().reduce(f64::max),
                approximate: false,
            };
        }
        Ok(summary)
    }
}

/// Every agent's totals over the raw rows and the rollups `filter`
/// covers, with the span of time they cover (µs; `(i64::MAX, i64::MIN)`
/// for none).
fn agent_totals(
    snapshot: &Snapshot<'_>,
    filter: &Filter,
) -> Result<(BTreeMap<String, AgentTotals>, (i64, i64))> {
    let operation = "rank agents";
    let (from, params) = filter.sql_from(MetricKind::Task);
    let sql = format!(
        "SELECT (SELECT name FROM agents WHERE id = m.agent), count(*), \
                count(*) FILTER (WHERE m.result = 0), total(m.duration_ms), total(m.tokens_used), \
                min(m.timestamp), max(m.timestamp) \
         FROM {from} GROUP BY m.agent"
    );
    let mut agents: BTreeMap<String, AgentTotals> = BTreeMap::new();
    let (mut oldest, mut newest) = (i64::MAX, i64::MIN);
    snapshot.each(&sql, params, operation, |row| {
        let get = |i| row.get::<_, i64>(i).map_err(Error::sqlite(operation));
        let agent: String = row.get(0).map_err(Error::sqlite(operation))?;
        let totals = AgentTotals {
            tasks: u64::try_from(get(1)?).unwrap_or(0),
            success: u64::try_from(get(2)?).unwrap_or(0),
            duration_total: row.get(3).map_err(Error::sqlite(operation))?,
            tokens_total: row.get(4).map_err(Error::sqlite(operation))?,
        };
        oldest = oldest.min(get(5)?);
        newest = newest.max(get(6)?);
        agents.insert(agent, totals);
        Ok(())
    })?;
    if rollups_apply(snapshot, MetricKind::Task, filter)? {
        add_agent_rollups(&mut agents, filter, |read| merge_rollups(snapshot, read))?;
        if let Some((first, last)) = rollup_span(snapshot, MetricKind::Task, filter)? {
            oldest = oldest.min(first);
            newest = newest.max(last);
        }
    }
    Ok((agents, (oldest, newest)))
}
