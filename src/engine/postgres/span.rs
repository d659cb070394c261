//! The spans of tasks on a server: every agent's totals with the instants
//! they cover, and the first and last instants of a selection.

use std::collections::BTreeMap;

use super::filter::Where;
use super::Columns;
use super::PgStore;
use crate::error::Result;
use crate::model::filter::Filter;
use crate::model::record::MetricKind;
use crate::rollup::rolled::{add_agent_rollups, AgentTotals};

/// Every agent's totals, and the first and last instants (µs) they cover.
pub(crate) type AgentTotalsSpan = (BTreeMap<String, AgentTotals>, Option<(i64, i64)>);

impl PgStore {
    /// Every agent's totals over the tasks `filter` selects, raw and
    /// rolled up, and the first and last instants (µs) they cover.
    pub fn agent_totals_over(&self, filter: &Filter) -> Result<AgentTotalsSpan> {
        let w = Where::tasks(filter);
        let sql = format!(
            "SELECT m.agent_id, count(*), count(*) FILTER (WHERE m.result = 0), \
                    sum(m.duration_ms)::float8, sum(m.tokens_used)::float8, \
                    min(m.timestamp), max(m.timestamp) \
             FROM task_metrics m WHERE {} GROUP BY m.agent_id",
            w.clause
        );
        self.with_rollups(MetricKind::Task, filter, |client, rollups| {
            let mut span: Option<(i64, i64)> = None;
            let mut widen = |first: i64, last: i64| {
                span = Some(span.map_or((first, last), |(a, b)| (a.min(first), b.max(last))));
            };
            let mut agents: BTreeMap<String, AgentTotals> = BTreeMap::new();
            for row in client
                .query_typed(&sql, &w.params())
                .map_err(self.error("rank agents"))?
            {
                let count =
                    |i| -> Result<u64> { Ok(u64::try_from(row.column::<i64>(i)?).unwrap_or(0)) };
                widen(row.column(5)?, row.column(6)?);
                let totals = AgentTotals {
                    tasks: count(1)?,
                    success: count(2)?,
                    duration_total: row.column(3)?,
                    tokens_total: row.column(4)?,
                };
                agents.insert(row.column(0)?, totals);
            }
            if rollups {
                add_agent_rollups(&mut agents, filter, |read| self.merge_rollups(client, read))?;
                if let Some((first, last)) = self.rollup_span(client, MetricKind::Task, filter)? {
                    widen(first, last);
                }
            }
            Ok((agents, span))
        })
    }
}

impl PgStore {
    /// The first and last instants (µs) of the tasks `filter` selects, raw
    /// or rolled up.
    pub(crate) fn task_span(&self, filter: &Filter) -> Result<Option<(i64, i64)>> {
        let w = Where::tasks(filter);
        let sql = format!(
            "SELECT min(m.timestamp), max(m.timestamp) FROM task_metrics m WHERE {}",
            w.clause
        );
        self.with_rollups(MetricKind::Task, filter, |client, rollups| {
            let row = client
                .query_typed_one(&sql, &w.params())
                .map_err(self.error("read the span of the data"))?;
            let first: Option<i64> = row.column(0)?;
            let last: Option<i64> = row.column(1)?;
            let mut span = first.zip(last);
            if rollups {
                if let Some((first, last)) = self.rollup_span(client, MetricKind::Task, filter)? {
                    span = Some(span.map_or((first, last), |(a, b)| (a.min(first), b.max(last))));
                }
            }
            Ok(span)
        })
    }
}
