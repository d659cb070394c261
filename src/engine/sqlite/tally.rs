//! [`MetricsStorage::task_tallies`](crate::MetricsStorage::task_tallies)
//! on the file: one pass over the rows, counted by the interned ids the
//! rows hold; names are looked up once per group at the end, through
//! the store's remembered names.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use foldhash::fast::RandomState as Fast;
use rusqlite::types::ValueRef;
use rusqlite::Row;

use super::read::{column, corrupt, count_column};
use super::usage::UsageCell;
use super::FileStore;
use crate::error::Result;
use crate::model::filter::Filter;
use crate::model::record::{MetricKind, TaskResult};
use crate::model::tally::TaskTally;

const TABLE: &str = "task_metrics";
const OPERATION: &str = "tally tasks";

/// A tally's key as a row holds it: the agent's and swarm's ids, the
/// `models` row (0: none) and the result.
type Key = (i64, Option<i64>, u64, TaskResult);

impl FileStore {
    /// [`MetricsStorage::task_tallies`](crate::MetricsStorage::task_tallies)
    /// on the file; a model named with several providers comes in one
    /// tally per provider.
    pub(crate) fn task_tallies(&self, filter: &Filter) -> Result<Vec<TaskTally>> {
        let (from, params) = filter.sql_from(MetricKind::Task);
        let sql = format!(
            "SELECT m.agent, m.swarm, m.result, m.duration_ms, m.tokens_used, m.usage FROM {from}"
        );
        self.snapshot(|snapshot| {
            // Every row is hashed: the quick hasher the writer's maps use.
            let mut counted: HashMap<Key, TaskTally, Fast> = HashMap::default();
            snapshot.each(&sql, params, OPERATION, |row| {
                let (key, duration, tokens, cost) = tally_row(row)?;
                counted
                    .entry(key)
                    // Named once per group, below.
                    .or_insert_with(|| TaskTally::empty(String::new(), None, None, key.3))
                    .add(duration, tokens, cost);
                Ok(())
            })?;
            // Swarms and models are remembered by the store; an agent is
            // read once per tally.
            let names = self.names(snapshot);
            let mut agents: HashMap<i64, String> = HashMap::new();
            counted
                .into_iter()
                .map(|((agent, swarm, model, _), mut tally)| {
                    tally.agent_id = match agents.entry(agent) {
                        Entry::Occupied(known) => known.get().clone(),
                        Entry::Vacant(new) => new.insert(names.agent(agent)?).clone(),
                    };
                    tally.swarm_id = swarm.map(|id| names.swarm(id)).transpose()?;
                    if model != 0 {
                        let id = i64::try_from(model).unwrap_or(i64::MAX);
                        tally.model = Some(names.model(id)?.0).filter(|m| !m.is_empty());
                    }
                    Ok(tally)
                })
                .collect()
        })
    }
}

/// One row's key, duration, tokens and cost (micro-dollars; `None`
/// without one).
fn tally_row(row: &Row<'_>) -> Result<(Key, u64, u64, Option<u64>)> {
    let code: i64 = column(row, 2, TABLE)?;
    let result = TaskResult::from_code(code)
        .ok_or_else(|| corrupt(TABLE, format!("unknown result code {code}")))?;
    let tokens = count_column(row, 4, TABLE)?;
    let cell = match row.get_ref(5) {
        Ok(ValueRef::Null) => UsageCell::default(),
        Ok(ValueRef::Blob(bytes)) => UsageCell::decode(bytes, tokens)?,
        Ok(_) => return Err(corrupt(TABLE, "usage is not a blob")),
        Err(e) => return Err(corrupt(TABLE, format!("column 5: {e}"))),
    };
    let key = (
        column(row, 0, TABLE)?,
        column(row, 1, TABLE)?,
        cell.model,
        result,
    );
    let cost = cell.cost.map(|c| c.micros);
    Ok((key, count_column(row, 3, TABLE)?, tokens, cost))
}
