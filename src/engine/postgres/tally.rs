//! [`MetricsStorage::task_tallies`](crate::MetricsStorage::task_tallies)
//! on PostgreSQL: grouped, summed and collected by the server in one
//! statement.

use super::filter::Where;
use super::{Columns, PgStore};
use crate::error::{Error, Result};
use crate::model::filter::Filter;
use crate::model::record::TaskResult;
use crate::model::tally::TaskTally;

impl PgStore {
    /// [`MetricsStorage::task_tallies`](crate::MetricsStorage::task_tallies)
    /// on the server, in no order.
    pub(crate) fn task_tallies(&self, filter: &Filter) -> Result<Vec<TaskTally>> {
        let w = Where::tasks(filter);
        // Sums as text: a numeric has no binary form the client reads,
        // and a double would round them.
        let sql = format!(
            "SELECT m.agent_id, m.swarm_id, m.model, m.result, count(*), \
                    sum(m.tokens_used)::text, coalesce(sum(m.cost_micros), 0)::text, \
                    count(*) FILTER (WHERE m.cost_micros IS NULL), array_agg(m.duration_ms) \
             FROM task_metrics m WHERE {} GROUP BY 1, 2, 3, 4",
            w.clause
        );
        let rows = self
            .read_conn()?
            .query_typed(&sql, &w.params())
            .map_err(self.error("tally tasks"))?;
        rows.iter()
            .map(|row| {
                let code: i16 = row.column(3)?;
                let result = TaskResult::from_code(i64::from(code))
                    .ok_or_else(|| corrupt(format!("unknown result code {code}")))?;
                let count = |at| -> Result<u64> {
                    let n: i64 = row.column(at)?;
                    u64::try_from(n).map_err(|_| corrupt(format!("negative count {n}")))
                };
                let sum = |at| -> Result<u128> {
                    let text: String = row.column(at)?;
                    text.parse()
                        .map_err(|_| corrupt(format!("sum {text:?} is not a count")))
                };
                let durations: Vec<i64> = row.column(8)?;
                let durations_ms = durations
                    .into_iter()
                    .map(|d| u64::try_from(d).map_err(|_| corrupt(format!("duration {d}"))))
                    .collect::<Result<_>>()?;
                Ok(TaskTally {
                    tasks: count(4)?,
                    tokens_used: sum(5)?,
                    cost_micros: sum(6)?,
                    unpriced: count(7)?,
                    durations_ms,
                    ..TaskTally::empty(row.column(0)?, row.column(1)?, row.column(2)?, result)
                })
            })
            .collect()
    }
}

fn corrupt(reason: String) -> Error {
    Error::CorruptRow {
        table: "task_metrics",
        reason,
    }
}
