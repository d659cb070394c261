//! [`MetricsStorage::task_tallies`](crate::MetricsStorage::task_tallies)
//! on the file: one pass over the rows, counted by the interned ids the
//! rows hold; names are looked up once per id at the end.

use std::collections::HashMap;

use rusqlite::types::ValueRef;
use rusqlite::Row;

use super::read::{column, corrupt, count_column};
use super::usage::UsageCell;
use super::{FileStore, Snapshot};
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
            let mut counted: HashMap<Key, TaskTally> = HashMap::new();
            snapshot.each(&sql, params, OPERATION, |row| {
                let (key, duration, tokens, cost) = tally_row(row)?;
                counted
                    .entry(key)
                    .or_insert_with(|| TaskTally::empty(String::new(), None, None, key.3))
                    .add(duration, tokens, cost);
                Ok(())
            })?;
            let mut names = Lookup::new(snapshot);
            counted
                .into_iter()
                .map(|((agent, swarm, model, _), mut tally)| {
                    tally.agent_id = names.name("agents", agent)?;
                    tally.swarm_id = swarm.map(|id| names.name("swarms", id)).transpose()?;
                    tally.model = names.model(model)?;
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

/// Names by interned id, each read once from the snapshot.
struct Lookup<'a> {
    snapshot: &'a Snapshot<'a>,
    read: HashMap<(&'static str, i64), Option<String>>,
}

impl<'a> Lookup<'a> {
    fn new(snapshot: &'a Snapshot<'a>) -> Self {
        Lookup {
            snapshot,
            read: HashMap::new(),
        }
    }

    /// The name of row `id` of `table` (`agents`, `swarms` or `models`,
    /// whose model name is read); a row that is missing is corruption.
    fn name(&mut self, table: &'static str, id: i64) -> Result<String> {
        if let Some(name) = self.read.get(&(table, id)) {
            return name.clone().ok_or_else(|| missing(table, id));
        }
        let column = if table == "models" { "model" } else { "name" };
        let sql = format!("SELECT {column} FROM {table} WHERE id = ?1");
        let name: Option<String> = self.snapshot.one(&sql, vec![id.into()], OPERATION)?;
        self.read.insert((table, id), name.clone());
        name.ok_or_else(|| missing(table, id))
    }

    /// The model of `models` row `id`: `None` for 0 and for the row of
    /// tasks that named a provider only.
    fn model(&mut self, id: u64) -> Result<Option<String>> {
        if id == 0 {
            return Ok(None);
        }
        let id = i64::try_from(id).map_err(|_| missing("models", i64::MAX))?;
        Ok(Some(self.name("models", id)?).filter(|m| !m.is_empty()))
    }
}

fn missing(table: &'static str, id: i64) -> crate::error::Error {
    corrupt(TABLE, format!("{id} is not a row of {table}"))
}
