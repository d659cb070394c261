//! Results per agent, swarm, result or metric type.

use std::collections::{BTreeMap, HashMap};

use rusqlite::types::Value as SqlValue;

use crate::aggregate::{
    aggregated_column, finish, quantiles_of, value_at, Aggregate, Percentile, SuccessRate,
};
use crate::analytics::validate_q;
use crate::answer::GroupValues;
use crate::engine::on_engine;
use crate::engine::sqlite::{FileStore, Snapshot};
use crate::error::{Error, Result};
pub use crate::model::analytics::Grouped;
use crate::query::{Filter, GroupBy};
use crate::record::{AggregationType, MetricKind, TaskResult};
use crate::retention::{merge_rollups, rollups_apply, RollupRead};
use crate::stat::{raw_stat, raw_stat_columns, sql_function, Stat};
use crate::storage::MetricsStorage;

impl MetricsStorage {
    /// [`aggregate_metrics`](Self::aggregate_metrics) for every group at
    /// once, sorted by key (no key first).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the grouping or a filter field does not
    /// apply to `kind`; otherwise as `aggregate_metrics`.
    pub fn aggregate_by(
        &self,
        kind: MetricKind,
        aggregation: AggregationType,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<Grouped<Aggregate>>> {
        filter.validate(kind, true)?;
        group_by.validate(kind)?;
        on_engine!(
            self.engine(),
            aggregate_by(kind, aggregation, group_by, filter)
        )
    }

    /// [`percentile`](Self::percentile) for every group at once, sorted by
    /// key (no key first): the p95 duration of each agent, say.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `q` outside `[0, 1]`, or when the
    /// grouping or a filter field does not apply to `kind`; otherwise as
    /// `percentile`.
    pub fn percentile_by(
        &self,
        kind: MetricKind,
        q: f64,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<Grouped<Percentile>>> {
        validate_q(q)?;
        filter.validate(kind, true)?;
        group_by.validate(kind)?;
        on_engine!(self.engine(), percentile_by(kind, q, group_by, filter))
    }

    /// The values of each group of the selection (durations of task
    /// metrics by default, see [`Filter::column`]), raw rows and rollups
    /// read in one snapshot, each with the sketch of what survives only as
    /// one; see [`selected_values`](Self::selected_values).
    pub(crate) fn values_by_group(
        &self,
        kind: MetricKind,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<GroupValues> {
        filter.validate(kind, true)?;
        group_by.validate(kind)?;
        on_engine!(self.engine(), values_by_group(kind, group_by, filter))
    }

    /// [`success_rate`](Self::success_rate) for every agent, swarm or
    /// result at once, best first by the lower bound of each rate's 95%
    /// interval (so a rate seen on few tasks does not come first), then by
    /// the rate, then by key.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `GroupBy::MetricType` or a filter field
    /// that does not apply to task metrics; otherwise as `success_rate`.
    pub fn success_rate_by(
        &self,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<Grouped<SuccessRate>>> {
        filter.validate(MetricKind::Task, false)?;
        group_by.validate(MetricKind::Task)?;
        let mut out = on_engine!(self.engine(), success_rate_by(group_by, filter))?;
        best_first(&mut out);
        Ok(out)
    }
}

impl FileStore {
    /// [`MetricsStorage::aggregate_by`] on the file.
    pub(crate) fn aggregate_by(
        &self,
        kind: MetricKind,
        aggregation: AggregationType,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<Grouped<Aggregate>>> {
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
            let sql = format!(
                "SELECT {key}, count(m.{column}), {}(m.{column}) FROM {from} GROUP BY {group_column}",
                sql_function(aggregation),
            );
            let mut rows = snapshot.rows(&sql, params, "aggregate by group", |row| {
                let key: Option<String> =
                    row.get(0).map_err(Error::sqlite("aggregate by group"))?;
                let count: i64 = row.get(1).map_err(Error::sqlite("aggregate by group"))?;
                let value: Option<f64> =
                    row.get(2).map_err(Error::sqlite("aggregate by group"))?;
                let count = u64::try_from(count).unwrap_or(0);
                Ok(Grouped {
                    key,
                    value: Aggregate {
                        aggregation,
                        metric_type,
                        count,
                        value: if count == 0 { None } else { value },
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
        kind: MetricKind,
        q: f64,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<Grouped<Percentile>>> {
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
                    values.push(value_at(row, 1, kind, operation)?);
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
    pub(crate) fn values_by_group(
        &self,
        kind: MetricKind,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<GroupValues> {
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

/// Orders success rates best first by what can be trusted of each: the
/// lower bound of its interval, then the rate, then the key. Keys are
/// unique, so an unstable sort (no extra memory) is exact.
fn best_first(groups: &mut [Grouped<SuccessRate>]) {
    groups.sort_unstable_by(|a, b| {
        let low = |g: &Grouped<SuccessRate>| g.value.interval.map_or(-1.0, |ci| ci.low);
        let rate = |g: &Grouped<SuccessRate>| g.value.rate.unwrap_or(-1.0);
        low(b)
            .total_cmp(&low(a))
            .then(rate(b).total_cmp(&rate(a)))
            .then_with(|| a.key.cmp(&b.key))
    });
}

/// The `(key, value)` rows of a selection, ordered by group.
fn values_by_group_sql(kind: MetricKind, group_by: GroupBy, filter: &Filter) -> Result<String> {
    let key = group_by.key_sql(kind, "m")?;
    let (column, _) = aggregated_column(kind, filter)?;
    let (from, _) = filter.sql_from(kind);
    Ok(format!(
        "SELECT {key}, m.{column} FROM {from} ORDER BY {}",
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
        let value = value_at(row, 1, kind, operation)?;
        groups.entry(key).or_default().0.push(value);
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
