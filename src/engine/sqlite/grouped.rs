//! Answers per group on the file: raw rows grouped in SQL, merged with
//! the rollups of each group.

use std::collections::{BTreeMap, HashMap};

use rusqlite::types::Value as SqlValue;

use crate::engine::sqlite::aggregate::value_at;
use crate::engine::sqlite::columns::measured_sql;
use crate::engine::sqlite::functions::{raw_stat, raw_stat_columns, sql_function};
use crate::engine::sqlite::retention::merge::{merge_rollups, rollups_apply};
use crate::engine::sqlite::{FileStore, Snapshot};
use crate::error::{Error, Result};
use crate::model::analytics::Grouped;
use crate::model::answer::GroupValues;
use crate::model::answer::{
    aggregated_column, finish, quantiles_of, Aggregate, Percentile, SuccessRate,
};
use crate::model::filter::{Filter, GroupBy};
use crate::model::record::{AggregationType, MetricKind, TaskResult};
use crate::model::shapes::GroupRead;
use crate::rollup::rolled::RollupRead;
use crate::stats::running::Stat;

impl FileStore {
    /// [`MetricsStorage::aggregate_by`] on the file.
    pub(crate) fn aggregate_by(
        &self,
        read: &GroupRead<'_>,
        aggregation: AggregationType,
    ) -> Result<Vec<Grouped<Aggregate>>> {
        let (kind, group_by, filter) = (read.kind, read.group_by, read.filter);
        let key = group_by.key_sql(kind, "m")?;
        let (column, metric_type) = aggregated_column(kind, filter)?;
        let (from, params) = filter.sql_from(kind);
        let group_column = group_by.column("m");
        self.snapshot(|snapshot| {
            if rollups_apply(snapshot, kind, filter)? {
                let int = kind == MetricKind::Task;
                let sql = format!(
                    "SELECT {key}, {} FROM {from} GROUP BY {group_column}",
                    raw_stat_columns(column),
                );
                let mut groups: BTreeMap<Option<String>, Stat> = BTreeMap::new();
                snapshot.each(&sql, params, "aggregate by group", |row| {
                    let key: Option<String> =
                        row.get(0).map_err(Error::sqlite("aggregate by group"))?;
                    groups.insert(key, raw_stat(row, 1, int)?);
                    Ok(())
                })?;
                let read = RollupRead::column(kind, filter, Some(group_by), column, false);
                for (key, rolled) in merge_rollups(snapshot, &read)? {
                    groups
                        .entry(key)
                        .or_insert_with(|| Stat::new(int, false))
                        .merge(&rolled.stat)?;
                }
                return Ok(groups
                    .into_iter()
                    .map(|(key, stat)| Grouped {
                        key,
                        value: finish(&stat, aggregation, metric_type),
                    })
                    .collect());
            }
            let c = measured_sql(column);
            let sql = format!(
                "SELECT {key}, count({c}), {}({c}) FROM {from} GROUP BY {group_column}",
                sql_function(aggregation),
            );
            let mut rows = snapshot.rows(&sql, params, "aggregate by group", |row| {
                let key: Option<String> =
                    row.get(0).map_err(Error::sqlite("aggregate by group"))?;
                let count: i64 = row.get(1).map_err(Error::sqlite("aggregate by group"))?;
                let value: Option<f64> = row.get(2).map_err(Error::sqlite("aggregate by group"))?;
                let count = u64::try_from(count).unwrap_or(0);
                Ok(Grouped {
                    key,
                    value: Aggregate {
                        aggregation,
                        metric_type,
                        count,
                        value: if count == 0 { None } else { value },
                        unpriced: None,
                    },
                })
            })?;
            // Keys are unique: an unstable sort is exact and needs no memory.
            rows.sort_unstable_by(|a, b| a.key.cmp(&b.key));
            Ok(rows)
        })
    }

    /// [`MetricsStorage::percentile_by`] on the file.
    pub(crate) fn percentile_by(
        &self,
        read: &GroupRead<'_>,
        q: f64,
    ) -> Result<Vec<Grouped<Percentile>>> {
        let (kind, group_by, filter) = (read.kind, read.group_by, read.filter);
        let sql = values_by_group_sql(kind, group_by, filter)?;
        let (_, metric_type) = aggregated_column(kind, filter)?;
        let (_, params) = filter.sql_from(kind);
        let operation = "percentile by group";
        let finish = |key, values: &mut Vec<f64>, sketch| Grouped {
            key,
            value: quantiles_of(values, sketch, &[q], metric_type).remove(0),
        };
        let mut out = self.snapshot(|snapshot| {
            let mut out = Vec::new();
            if !rollups_apply(snapshot, kind, filter)? {
                // Rows come ordered by group: each group's percentile is
                // taken as soon as its rows are read, so that only one
                // group's values are ever held.
                let mut current: Option<Option<String>> = None;
                let mut values = Vec::new();
                snapshot.each(&sql, params, operation, |row| {
                    let key: Option<String> = row.get(0).map_err(Error::sqlite(operation))?;
                    if current.as_ref() != Some(&key) {
                        if let Some(done) = current.replace(key) {
                            out.push(finish(done, &mut values, None));
                            values.clear();
                        }
                    }
                    values.extend(value_at(row, 1, kind, operation)?);
                    Ok(())
                })?;
                if let Some(done) = current {
                    out.push(finish(done, &mut values, None));
                }
                return Ok(out);
            }
            let groups = values_by_group(snapshot, kind, group_by, filter, (&sql, params), true)?;
            for (key, (mut values, sketch)) in groups {
                out.push(finish(key, &mut values, sketch));
            }
            Ok(out)
        })?;
        // Keys are unique: an unstable sort is exact and needs no memory.
        out.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// [`MetricsStorage::values_by_group`] on the file.
    pub(crate) fn values_by_group(&self, read: &GroupRead<'_>) -> Result<GroupValues> {
        let (kind, group_by, filter) = (read.kind, read.group_by, read.filter);
        let sql = values_by_group_sql(kind, group_by, filter)?;
        let (_, params) = filter.sql_from(kind);
        self.snapshot(|snapshot| {
            let rollups = rollups_apply(snapshot, kind, filter)?;
            values_by_group(snapshot, kind, group_by, filter, (&sql, params), rollups)
        })
    }

    /// [`MetricsStorage::success_rate_by`] on the file, in no order.
    pub(crate) fn success_rate_by(
        &self,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<Grouped<SuccessRate>>> {
        let key = group_by.key_sql(MetricKind::Task, "m")?;
        let (from, params) = filter.sql_from(MetricKind::Task);
        // Ordered by the group, so that each group's rows come together
        // and are counted without a map: a million agents cost a million
        // small entries, nothing more.
        let sql = format!(
            "SELECT {key}, m.result, count(*) FROM {from} GROUP BY {group}, m.result \
             ORDER BY {group}",
            group = group_by.column("m")
        );
        self.snapshot(|snapshot| {
            let mut groups = count_results_by_group(snapshot, &sql, params)?;
            if rollups_apply(snapshot, MetricKind::Task, filter)? {
                let read = RollupRead::counts(MetricKind::Task, filter, Some(group_by));
                let mut position: HashMap<Option<String>, usize> = groups
                    .iter()
                    .enumerate()
                    .map(|(i, g)| (g.key.clone(), i))
                    .collect();
                for (key, rolled) in merge_rollups(snapshot, &read)? {
                    let i = *position.entry(key.clone()).or_insert_with(|| {
                        groups.push(Grouped {
                            key,
                            value: SuccessRate::default(),
                        });
                        groups.len() - 1
                    });
                    for (result, n) in rolled.result_counts() {
                        groups[i].value.add(result, n);
                    }
                }
            }
            Ok(groups)
        })
    }
}

/// The `(key, value)` rows of a selection, ordered by group.
fn values_by_group_sql(kind: MetricKind, group_by: GroupBy, filter: &Filter) -> Result<String> {
    let key = group_by.key_sql(kind, "m")?;
    let (column, _) = aggregated_column(kind, filter)?;
    let (from, _) = filter.sql_from(kind);
    Ok(format!(
        "SELECT {key}, {} FROM {from} ORDER BY {}",
        measured_sql(column),
        group_by.column("m")
    ))
}

/// Each group's values from the rows of `query` (see
/// [`values_by_group_sql`]) and, when `rollups` apply, from the rollups,
/// in `snapshot`.
fn values_by_group(
    snapshot: &Snapshot<'_>,
    kind: MetricKind,
    group_by: GroupBy,
    filter: &Filter,
    (sql, params): (&str, Vec<SqlValue>),
    rollups: bool,
) -> Result<GroupValues> {
    let operation = "values by group";
    let mut groups = GroupValues::new();
    snapshot.each(sql, params, operation, |row| {
        let key: Option<String> = row.get(0).map_err(Error::sqlite(operation))?;
        let values = &mut groups.entry(key).or_default().0;
        values.extend(value_at(row, 1, kind, operation)?);
        Ok(())
    })?;
    if rollups {
        let column = aggregated_column(kind, filter)?.0;
        let read = RollupRead::column(kind, filter, Some(group_by), column, true);
        for (key, rolled) in merge_rollups(snapshot, &read)? {
            let (values, sketch) = groups.entry(key).or_default();
            values.extend(rolled.values);
            *sketch = rolled.sketch;
        }
    }
    Ok(groups)
}

/// The success rate of each group from the `(key, result code, count)`
/// rows of `sql`, which come ordered by group.
fn count_results_by_group(
    snapshot: &Snapshot<'_>,
    sql: &str,
    params: Vec<SqlValue>,
) -> Result<Vec<Grouped<SuccessRate>>> {
    let mut groups: Vec<Grouped<SuccessRate>> = Vec::new();
    snapshot.each(sql, params, "success rate by group", |row| {
        let key: Option<String> = row.get(0).map_err(Error::sqlite("success rate by group"))?;
        let code: i64 = row.get(1).map_err(Error::sqlite("success rate by group"))?;
        let n: i64 = row.get(2).map_err(Error::sqlite("success rate by group"))?;
        let result = TaskResult::from_code(code).ok_or_else(|| Error::CorruptRow {
            table: "task_metrics",
            reason: format!("unknown result code {code}"),
        })?;
        if groups.last().is_none_or(|last| last.key != key) {
            groups.push(Grouped {
                key,
                value: SuccessRate::default(),
            });
        }
        if let Some(group) = groups.last_mut() {
            group.value.add(result, u64::try_from(n).unwrap_or(0));
        }
        Ok(())
    })?;
    Ok(groups)
}
