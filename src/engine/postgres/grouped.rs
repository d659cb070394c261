//! One answer per agent, swarm, result or metric type, on PostgreSQL. The
//! groups come back unordered: the store orders them as it orders SQLite's.

use std::collections::{BTreeMap, HashMap};

use postgres::types::Type;
use postgres::{Client, Row};

use super::filter::Where;
use super::read::{aggregate_columns, aggregate_of, rates_by_key};
use super::rollups::{stat_columns, stat_of};
use super::Columns;
use super::PgStore;
use crate::error::{Error, Result};
use crate::model::answer::{
    aggregated_column, finish, quantiles_of, Aggregate, GroupValues, Percentile, SuccessRate,
};
use crate::model::filter::{Filter, GroupBy};
use crate::model::record::{AggregationType, MetricKind, MetricType, TaskResult};
use crate::model::shapes::GroupRead;
use crate::rollup::rolled::RollupRead;
use crate::stats::running::Stat;

/// The column a grouping reads (validated for the kind before).
fn key_column(group_by: GroupBy) -> &'static str {
    match group_by {
        GroupBy::Agent => "m.agent_id",
        GroupBy::Swarm => "m.swarm_id",
        GroupBy::Result => "m.result",
        GroupBy::MetricType => "m.metric_type",
        GroupBy::Model => "m.model",
    }
}

/// A group's key from column 0: the agent or swarm id (none for tasks
/// without a swarm), or the result's or metric type's name.
fn key_of(row: &Row, group_by: GroupBy, table: &'static str) -> Result<Option<String>> {
    let corrupt = |reason: String| Error::CorruptRow { table, reason };
    Ok(match group_by {
        GroupBy::Agent | GroupBy::Swarm | GroupBy::Model => row.column(0)?,
        GroupBy::Result => {
            let code: i16 = row.column(0)?;
            let result = TaskResult::from_code(i64::from(code))
                .ok_or_else(|| corrupt(format!("unknown result code {code}")))?;
            Some(result.as_str().to_owned())
        }
        GroupBy::MetricType => {
            let code: i16 = row.column(0)?;
            let metric_type = MetricType::from_code(i64::from(code))
                .ok_or_else(|| corrupt(format!("unknown metric type code {code}")))?;
            Some(metric_type.as_str().to_owned())
        }
    })
}

impl PgStore {
    /// The success rate of each group of tasks, unordered.
    pub fn rates_by_group(
        &self,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<(Option<String>, SuccessRate)>> {
        let key = key_column(group_by);
        let w = Where::of(MetricKind::Task, filter);
        let sql = format!(
            "SELECT {key}, m.result, count(*) FROM task_metrics m WHERE {} \
             GROUP BY {key}, m.result ORDER BY {key}",
            w.clause
        );
        self.with_rollups(MetricKind::Task, filter, |client, rollups| {
            let rows = client
                .query_typed(&sql, &w.params())
                .map_err(self.error("compute success rates"))?;
            let mut rates = rates_by_key(&rows, |row| key_of(row, group_by, "task_metrics"))?;
            if rollups {
                let read = RollupRead::counts(MetricKind::Task, filter, Some(group_by));
                let mut position: HashMap<Option<String>, usize> = rates
                    .iter()
                    .enumerate()
                    .map(|(i, (key, _))| (key.clone(), i))
                    .collect();
                for (key, rolled) in self.merge_rollups(client, &read)? {
                    let i = *position.entry(key.clone()).or_insert_with(|| {
                        rates.push((key, SuccessRate::default()));
                        rates.len() - 1
                    });
                    for (result, n) in rolled.result_counts() {
                        rates[i].1.add(result, n);
                    }
                }
            }
            Ok(rates)
        })
    }

    /// `aggregation` of each group's values, unordered.
    pub fn aggregates_by_group(
        &self,
        kind: MetricKind,
        aggregation: AggregationType,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<(Option<String>, Aggregate)>> {
        let (column, metric_type) = aggregated_column(kind, filter)?;
        let key = key_column(group_by);
        let w = Where::of(kind, filter);
        let table = kind.table();
        self.with_rollups(kind, filter, |client, rollups| {
            if rollups {
                let sql = format!(
                    "SELECT {key}, {} FROM {table} m WHERE {} GROUP BY {key}",
                    stat_columns(column),
                    w.clause
                );
                let mut stats: BTreeMap<Option<String>, Stat> = BTreeMap::new();
                for row in client
                    .query_typed(&sql, &w.params())
                    .map_err(self.error("aggregate by group"))?
                {
                    stats.insert(key_of(&row, group_by, table)?, stat_of(&row, 1, kind)?);
                }
                let read = RollupRead::column(kind, filter, Some(group_by), column, false);
                for (key, rolled) in self.merge_rollups(client, &read)? {
                    stats
                        .entry(key)
                        .or_insert_with(|| Stat::new(kind == MetricKind::Task, false))
                        .merge(&rolled.stat)?;
                }
                return Ok(stats
                    .into_iter()
                    .map(|(key, stat)| (key, finish(&stat, aggregation, metric_type)))
                    .collect());
            }
            let sql = format!(
                "SELECT {key}, {} FROM {table} m WHERE {} GROUP BY {key}",
                aggregate_columns(column, aggregation),
                w.clause
            );
            client
                .query_typed(&sql, &w.params())
                .map_err(self.error("aggregate by group"))?
                .iter()
                .map(|row| {
                    let key = key_of(row, group_by, table)?;
                    Ok((key, aggregate_of(row, 1, kind, aggregation, metric_type)?))
                })
                .collect()
        })
    }

    /// The `q` quantile of each group's values, unordered.
    pub fn percentiles_by_group(
        &self,
        kind: MetricKind,
        q: f64,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<(Option<String>, Percentile)>> {
        let (column, metric_type) = aggregated_column(kind, filter)?;
        let key = key_column(group_by);
        let w = Where::of(kind, filter);
        let table = kind.table();
        let sql = format!(
            "SELECT {key}, count(m.{column}), \
                    percentile_cont(${}::float8) WITHIN GROUP (ORDER BY m.{column}::float8) \
             FROM {table} m WHERE {} GROUP BY {key}",
            w.params.len() + 1,
            w.clause
        );
        let mut params = w.params();
        params.push((&q, Type::FLOAT8));
        self.with_rollups(kind, filter, |client, rollups| {
            if rollups {
                return Ok(self
                    .values_by_group_in(client, kind, group_by, filter, true)?
                    .into_iter()
                    .map(|(key, (values, sketch))| {
                        let mut values = values;
                        let p = quantiles_of(&mut values, sketch, &[q], metric_type).remove(0);
                        (key, p)
                    })
                    .collect());
            }
            client
                .query_typed(&sql, &params)
                .map_err(self.error("percentile by group"))?
                .iter()
                .map(|row| {
                    let key = key_of(row, group_by, table)?;
                    let count = u64::try_from(row.column::<i64>(1)?).unwrap_or(0);
                    let percentile = Percentile {
                        q,
                        metric_type,
                        count,
                        value: row.column(2)?,
                        approximate: false,
                        unpriced: None,
                    };
                    Ok((key, percentile))
                })
                .collect()
        })
    }
}

impl PgStore {
    /// Each group's values (the task column `filter` names, or agent and
    /// swarm metrics' values), as doubles, raw rows and rollups read in
    /// one snapshot, each with the sketch of what survives only as one.
    pub(crate) fn values_by_group(&self, read: &GroupRead<'_>) -> Result<GroupValues> {
        let (kind, group_by, filter) = (read.kind, read.group_by, read.filter);
        self.with_rollups(kind, filter, |client, rollups| {
            self.values_by_group_in(client, kind, group_by, filter, rollups)
        })
    }

    /// [`values_by_group`](Self::values_by_group) on `client`, taking in
    /// the rollups when `rollups`.
    fn values_by_group_in(
        &self,
        client: &mut Client,
        kind: MetricKind,
        group_by: GroupBy,
        filter: &Filter,
        rollups: bool,
    ) -> Result<GroupValues> {
        let (column, _) = aggregated_column(kind, filter)?;
        let key = key_column(group_by);
        let w = Where::of(kind, filter);
        let table = kind.table();
        let sql = format!(
            "SELECT {key}, m.{column}::float8 FROM {table} m WHERE {}",
            w.clause
        );
        let mut groups = GroupValues::new();
        for row in client
            .query_typed(&sql, &w.params())
            .map_err(self.error("read values by group"))?
        {
            groups
                .entry(key_of(&row, group_by, table)?)
                .or_default()
                .0
                .extend(row.column::<Option<f64>>(1)?);
        }
        if rollups {
            let read = RollupRead::column(kind, filter, Some(group_by), column, true);
            for (key, rolled) in self.merge_rollups(client, &read)? {
                let (values, sketch) = groups.entry(key).or_default();
                values.extend(rolled.values);
                *sketch = rolled.sketch;
            }
        }
        Ok(groups)
    }
}
