//! Reading rollups back: the one place where an answer takes in the
//! rollups a filter covers, for aggregates and analytics alike. Callers
//! read the raw rows in the same [`Snapshot`], so that a chunk folded
//! meanwhile is counted once, as raw rows or as rollups.

use std::collections::BTreeMap;

use rusqlite::types::Value as SqlValue;

use crate::engine::sqlite::filter::{all_of, Field, Params};
use crate::engine::sqlite::rollup_codec::{read_counts, read_summary};
use crate::engine::sqlite::Snapshot;
use crate::error::{Error, Result};
use crate::model::filter::{Filter, GroupBy};
use crate::model::record::{MetricKind, TaskResult};
use crate::rollup::rolled::{add_rollup, classes_read, Rolled, RollupRead};
use crate::rollup::row::{count_columns, rollup_table};

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
    Ok(snapshot
        .one(&sql, Vec::new(), "read rollups")?
        .unwrap_or(false))
}

/// Merges the rollups `read` asks for, one [`Rolled`] per group.
pub(crate) fn merge_rollups(
    snapshot: &Snapshot<'_>,
    read: &RollupRead<'_>,
) -> Result<BTreeMap<Option<String>, Rolled>> {
    let by_result = read.group == Some(GroupBy::Result);
    let key = match read.group {
        // Rollups do not keep the model: theirs is no model.
        Some(GroupBy::Model) => "NULL".to_owned(),
        Some(group) if !by_result => group.key_sql(read.kind, "r")?,
        _ => "NULL".to_owned(),
    };
    merge_keyed(snapshot, read, &key, |row, class| {
        if by_result {
            return Ok(TaskResult::from_code(class as i64).map(|r| r.as_str().to_owned()));
        }
        row.get(0).map_err(Error::sqlite("read rollups"))
    })
}

/// Merges the rollups `read` asks for (its `group` ignored) by time: one
/// [`Rolled`] per bucket of `width` microseconds, aligned as
/// [`MetricsStorage::series`](crate::MetricsStorage::series) aligns them. A
/// rollup falls in the bucket where its own hour or day starts.
pub(crate) fn merge_rollups_by_time(
    snapshot: &Snapshot<'_>,
    read: &RollupRead<'_>,
    width: i64,
) -> Result<BTreeMap<i64, Rolled>> {
    merge_keyed(snapshot, read, "r.bucket", |row, _| {
        let bucket: i64 = row.get(0).map_err(Error::sqlite("read rollups"))?;
        Ok(bucket.div_euclid(width) * width)
    })
}

/// Merges the rollups `read` covers into groups keyed by `key_of` (given
/// each row, whose column 0 is `key_sql`, and the class being merged).
fn merge_keyed<K: Ord>(
    snapshot: &Snapshot<'_>,
    read: &RollupRead<'_>,
    key_sql: &str,
    key_of: impl Fn(&rusqlite::Row<'_>, usize) -> Result<K>,
) -> Result<BTreeMap<K, Rolled>> {
    let mut groups: BTreeMap<K, Rolled> = BTreeMap::new();
    let Some((clause, params)) = rollup_where(read.filter, read.kind) else {
        return Ok(groups);
    };
    let kind = read.kind;
    let table = rollup_table(kind);
    let count_list = count_columns(kind);
    let data = if read.column.is_some() {
        ", r.data"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {key_sql}, {}{data} FROM {table} r WHERE {clause}",
        count_list
            .iter()
            .map(|c| format!("r.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let classes = classes_read(read);
    snapshot.each(&sql, params, "read rollups", |row| {
        let counts = read_counts(row, 1, kind, table)?;
        let summary = match read.column {
            Some(_) => Some(read_summary(row, 1 + counts_len(kind), kind, table)?),
            None => None,
        };
        add_rollup(
            &mut groups,
            read,
            &classes,
            counts,
            summary.as_ref(),
            |class| key_of(row, class),
        )
    })?;
    Ok(groups)
}

/// How many count columns a rollup row of `kind` has.
fn counts_len(kind: MetricKind) -> usize {
    count_columns(kind).len()
}

/// The first and last instants (µs) of the rollups `filter` covers: from
/// the oldest one's start to the end of the newest one's hour or day.
pub(crate) fn rollup_span(
    snapshot: &Snapshot<'_>,
    kind: MetricKind,
    filter: &Filter,
) -> Result<Option<(i64, i64)>> {
    let Some((clause, params)) = rollup_where(filter, kind) else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT min(r.bucket), \
                max(r.bucket + CASE r.level WHEN 1 THEN 3600000000 ELSE 86400000000 END - 1) \
         FROM {} r WHERE {clause}",
        rollup_table(kind)
    );
    let mut span = None;
    snapshot.each(&sql, params, "read rollups", |row| {
        let first: Option<i64> = row.get(0).map_err(Error::sqlite("read rollups"))?;
        let last: Option<i64> = row.get(1).map_err(Error::sqlite("read rollups"))?;
        span = first.zip(last);
        Ok(())
    })?;
    Ok(span)
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
    if filter.agent_id.is_some() {
        clauses.push(params.bind(
            "r.agent = (SELECT id FROM agents WHERE name = ?)",
            Field::AgentId,
        ));
    }
    if filter.swarm_id.is_some() {
        // Tasks without a swarm are rolled up under swarm 0; no swarm has
        // id -1.
        clauses.push(params.bind(
            "r.swarm = coalesce((SELECT id FROM swarms WHERE name = ?), -1)",
            Field::SwarmId,
        ));
    }
    // A rollup counts when its bucket starts inside the range. The result
    // is no column of a rollup: reads pick it out of each row.
    filter.bind_type_and_range(kind, &mut params, &mut clauses, "r", "r.bucket");
    Some((all_of(&clauses), params.values(filter)))
}
