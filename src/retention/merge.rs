//! Reading rollups back: the one place where an answer takes in the
//! rollups a filter covers, for aggregates and analytics alike. Callers
//! read the raw rows in the same [`Snapshot`], so that a chunk folded
//! meanwhile is counted once, as raw rows or as rollups.

use std::collections::BTreeMap;

use rusqlite::types::Value as SqlValue;

use super::rollup_row::{measure_columns, read_stat, rollup_prefix, rollup_table};
use crate::error::{Error, Result};
use crate::query::{all_of, Filter, GroupBy, Params};
use crate::record::{MetricKind, TaskResult};
use crate::stat::Stat;
use crate::storage::Snapshot;

/// What to read from the rollups a filter covers.
pub(crate) struct RollupRead<'a> {
    pub kind: MetricKind,
    pub filter: &'a Filter,
    /// How to group the rollups; `None` puts them all in one group, keyed
    /// `None`.
    pub group: Option<GroupBy>,
    /// The raw column whose stat to merge (`duration_ms`, `value`, ...);
    /// `None` to count only.
    pub column: Option<&'static str>,
    /// Whether to merge the sketches too (for percentiles).
    pub sketches: bool,
}

/// What the rollups of one group hold.
pub(crate) struct Rolled {
    /// Task counts by result, indexed by the result's code (task rollups
    /// only).
    pub results: [u64; 4],
    /// The merged stat of the column asked for (empty without one).
    pub stat: Stat,
}

impl Rolled {
    /// The task counts by result.
    pub fn result_counts(&self) -> impl Iterator<Item = (TaskResult, u64)> + '_ {
        TaskResult::ALL
            .iter()
            .map(|r| (*r, self.results[r.code() as usize]))
    }
}

/// Whether the rollups of `kind` could hold anything `filter` covers: some
/// exist, and the filter names no task (rollups cannot tell tasks apart).
/// Answers read raw rows alone otherwise, the quicker way.
pub(crate) fn rollups_apply(
    snapshot: &Snapshot<'_>,
    kind: MetricKind,
    filter: &Filter,
) -> Result<bool> {
    if filter.task_id.is_some() {
        return Ok(false);
    }
    let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", rollup_table(kind));
    let exists = snapshot.rows(&sql, Vec::new(), "read rollups", |row| {
        row.get::<_, bool>(0).map_err(Error::sqlite("read rollups"))
    })?;
    Ok(exists.first().copied().unwrap_or(false))
}

/// Merges the rollups `read` asks for, one [`Rolled`] per group.
pub(crate) fn merge_rollups(
    snapshot: &Snapshot<'_>,
    read: &RollupRead<'_>,
) -> Result<BTreeMap<Option<String>, Rolled>> {
    let mut groups: BTreeMap<Option<String>, Rolled> = BTreeMap::new();
    let Some((clause, params)) = rollup_where(read.filter, read.kind) else {
        return Ok(groups);
    };
    let table = rollup_table(read.kind);
    let int = read.kind == MetricKind::Task;
    let key = match read.group {
        Some(group) => group.key_sql(read.kind, "r")?,
        None => "NULL".to_owned(),
    };
    let result = if int { "r.result" } else { "0" };
    let measure = read
        .column
        .map(|column| {
            format!(
                ", {}",
                measure_columns(rollup_prefix(column), "r.", read.sketches)
            )
        })
        .unwrap_or_default();
    let sql = format!("SELECT {key}, {result}, r.count{measure} FROM {table} r WHERE {clause}");
    snapshot.each(&sql, params, "read rollups", |row| {
        let get_err = || Error::sqlite("read rollups");
        let key: Option<String> = row.get(0).map_err(get_err())?;
        let code: i64 = row.get(1).map_err(get_err())?;
        let count: i64 = row.get(2).map_err(get_err())?;
        let count = u64::try_from(count).map_err(|_| Error::CorruptRow {
            table,
            reason: format!("negative count {count}"),
        })?;
        let slot = usize::try_from(code)
            .ok()
            .filter(|&c| c < 4)
            .ok_or_else(|| Error::CorruptRow {
                table,
                reason: format!("unknown result code {code}"),
            })?;
        let group = groups.entry(key).or_insert_with(|| Rolled {
            results: [0; 4],
            stat: Stat::new(int, read.sketches),
        });
        group.results[slot] += count;
        if read.column.is_some() {
            group
                .stat
                .merge(&read_stat(row, count, 3, int, read.sketches, table)?)?;
        }
        Ok(())
    })?;
    Ok(groups)
}

/// The `WHERE` clause selecting the rollup rows (alias `r`) that `filter`
/// covers: a rollup counts when its bucket starts inside the range.
/// `None` when the filter names a task, which rollups cannot tell apart.
fn rollup_where(filter: &Filter, kind: MetricKind) -> Option<(String, Vec<SqlValue>)> {
    if filter.task_id.is_some() {
        return None;
    }
    let mut params = Params::default();
    let mut clauses = Vec::new();
    if let Some(id) = &filter.agent_id {
        clauses.push(params.bind(
            "r.agent = (SELECT id FROM agents WHERE name = ?)",
            id.clone(),
        ));
    }
    if let Some(id) = &filter.swarm_id {
        // Tasks without a swarm are rolled up under swarm 0; no swarm has
        // id -1.
        clauses.push(params.bind(
            "r.swarm = coalesce((SELECT id FROM swarms WHERE name = ?), -1)",
            id.clone(),
        ));
    }
    // A rollup counts when its bucket starts inside the range.
    filter.bind_result_type_and_range(kind, &mut params, &mut clauses, "r", "r.bucket");
    Some((all_of(&clauses), params.into_values()))
}
