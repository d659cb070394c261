//! Aggregates, percentiles and success rates on the file: raw rows and the
//! rollups a filter covers, read in one snapshot; the SQL behind them.

use rusqlite::types::Value as SqlValue;
use sketches_ddsketch::DDSketch;

use crate::engine::sqlite::columns::measured_sql;
use crate::engine::sqlite::functions::{raw_stat, raw_stat_columns, sql_function};
use crate::engine::sqlite::retention::merge::{merge_rollups, rollups_apply};
use crate::engine::sqlite::{FileStore, Snapshot};
use crate::error::{Error, Result};
use crate::model::answer::{
    aggregated_column, finish, quantiles_of, Aggregate, Percentile, SuccessRate,
};
use crate::model::filter::Filter;
use crate::model::record::{AggregationType, MetricKind, TaskResult};
use crate::rollup::rolled::RollupRead;
use crate::stats::running::Stat;

impl FileStore {
    /// [`MetricsStorage::aggregate_metrics`] on the file.
    pub(crate) fn aggregate(
        &self,
        kind: MetricKind,
        aggregation: AggregationType,
        filter: &Filter,
    ) -> Result<Aggregate> {
        let (column, metric_type) = aggregated_column(kind, filter)?;
        self.snapshot(|snapshot| {
            if rollups_apply(snapshot, kind, filter)? {
                let stat = stat_with_rollups(snapshot, kind, column, filter)?;
                return Ok(finish(&stat, aggregation, metric_type));
            }
            let (sql, params) = aggregate_sql(kind, sql_function(aggregation), filter)?;
            let rows = snapshot.rows(&sql, params, "aggregate metrics", |row| {
                let count: i64 = row.get(0).map_err(Error::sqlite("aggregate metrics"))?;
                let value: Option<f64> = row.get(1).map_err(Error::sqlite("aggregate metrics"))?;
                Ok((u64::try_from(count).unwrap_or(0), value))
            })?;
            let (count, value) = rows.into_iter().next().unwrap_or((0, None));
            Ok(Aggregate {
                aggregation,
                metric_type,
                count,
                value: if count == 0 { None } else { value },
                unpriced: None,
            })
        })
    }

    /// [`MetricsStorage::percentiles`] on the file.
    pub(crate) fn percentiles(
        &self,
        kind: MetricKind,
        qs: &[f64],
        filter: &Filter,
    ) -> Result<Vec<Percentile>> {
        let (_, metric_type) = aggregated_column(kind, filter)?;
        let (mut values, sketch) = self.values(kind, filter)?;
        Ok(quantiles_of(&mut values, sketch, qs, metric_type))
    }

    /// The values of the selection on the file; see
    /// [`MetricsStorage::selected_values`].
    pub(crate) fn values(
        &self,
        kind: MetricKind,
        filter: &Filter,
    ) -> Result<(Vec<f64>, Option<DDSketch>)> {
        let (column, _) = aggregated_column(kind, filter)?;
        let (mut values, rolled) = self.snapshot(|snapshot| {
            let (sql, params) = percentile_sql(kind, filter)?;
            let mut values = Vec::new();
            snapshot.each(&sql, params, "read values", |row| {
                values.extend(value_at(row, 0, kind, "read values")?);
                Ok(())
            })?;
            let mut rolled = None;
            if rollups_apply(snapshot, kind, filter)? {
                let read = RollupRead::column(kind, filter, None, column, true);
                rolled = merge_rollups(snapshot, &read)?.remove(&None);
            }
            Ok((values, rolled))
        })?;
        // Rollups that keep their values add them; those that keep
        // sketches add the sketch.
        let mut sketch = None;
        if let Some(rolled) = rolled {
            values.extend(rolled.values);
            sketch = rolled.sketch;
        }
        Ok((values, sketch))
    }

    /// [`MetricsStorage::success_rate`] on the file.
    pub(crate) fn success_rate(&self, filter: &Filter) -> Result<SuccessRate> {
        self.snapshot(|snapshot| {
            let (sql, params) = success_rate_sql(filter);
            let rows = snapshot.rows(&sql, params, "compute success rate", |row| {
                TaskResult::ALL
                    .iter()
                    .enumerate()
                    .map(|(i, result)| {
                        let n: i64 = row.get(i).map_err(Error::sqlite("compute success rate"))?;
                        Ok((*result, u64::try_from(n).unwrap_or(0)))
                    })
                    .collect::<Result<Vec<_>>>()
            })?;
            let mut rate = SuccessRate::default();
            for (result, n) in rows.into_iter().flatten() {
                rate.add(result, n);
            }
            if rollups_apply(snapshot, MetricKind::Task, filter)? {
                let read = RollupRead::counts(MetricKind::Task, filter, None);
                for rolled in merge_rollups(snapshot, &read)?.values() {
                    for (result, n) in rolled.result_counts() {
                        rate.add(result, n);
                    }
                }
            }
            Ok(rate)
        })
    }
}

/// The stat of `column` over the raw rows matching `filter` and the
/// rollups it covers, read in `snapshot`: counts, sums, extremes and
/// Welford states merge exactly.
fn stat_with_rollups(
    snapshot: &Snapshot<'_>,
    kind: MetricKind,
    column: &'static str,
    filter: &Filter,
) -> Result<Stat> {
    let int = kind == MetricKind::Task;
    let (from, params) = filter.sql_from(kind);
    let sql = format!("SELECT {} FROM {from}", raw_stat_columns(column));
    let mut stat = Stat::new(int, false);
    snapshot.each(&sql, params, "aggregate metrics", |row| {
        stat = raw_stat(row, 0, int)?;
        Ok(())
    })?;
    let read = RollupRead::column(kind, filter, None, column, false);
    for rolled in merge_rollups(snapshot, &read)?.values() {
        stat.merge(&rolled.stat)?;
    }
    Ok(stat)
}

/// The query behind `aggregate_metrics`: the count and `function` of the
/// aggregated column over the rows matching `filter`.
pub(crate) fn aggregate_sql(
    kind: MetricKind,
    function: &str,
    filter: &Filter,
) -> Result<(String, Vec<SqlValue>)> {
    let (column, _) = aggregated_column(kind, filter)?;
    let (from, params) = filter.sql_from(kind);
    let c = measured_sql(column);
    let sql = format!("SELECT count({c}), {function}({c}) FROM {from}");
    Ok((sql, params))
}

/// The query behind `percentile`: the values to rank.
pub(crate) fn percentile_sql(kind: MetricKind, filter: &Filter) -> Result<(String, Vec<SqlValue>)> {
    let (column, _) = aggregated_column(kind, filter)?;
    let (from, params) = filter.sql_from(kind);
    let sql = format!("SELECT {} FROM {from}", measured_sql(column));
    Ok((sql, params))
}

/// The query behind `success_rate`: the task counts of each result, in
/// code order, read in one pass (a `GROUP BY` would sort).
pub(crate) fn success_rate_sql(filter: &Filter) -> (String, Vec<SqlValue>) {
    let (from, params) = filter.sql_from(MetricKind::Task);
    let counts: Vec<String> = TaskResult::ALL
        .iter()
        .map(|r| format!("count(*) FILTER (WHERE m.result = {})", r.code()))
        .collect();
    let sql = format!("SELECT {} FROM {from}", counts.join(", "));
    (sql, params)
}

/// A stored metric value (an integer column of tasks, or a real value),
/// as a float; `None` for a task without the measure (no cost).
pub(crate) fn value_at(
    row: &rusqlite::Row<'_>,
    index: usize,
    kind: MetricKind,
    operation: &'static str,
) -> Result<Option<f64>> {
    match row.get_ref(index).map_err(Error::sqlite(operation))? {
        rusqlite::types::ValueRef::Integer(i) => Ok(Some(i as f64)),
        rusqlite::types::ValueRef::Real(x) => Ok(Some(x)),
        rusqlite::types::ValueRef::Null if kind == MetricKind::Task => Ok(None),
        other => Err(Error::CorruptRow {
            table: kind.table(),
            reason: format!("a metric value holds {:?}", other.data_type()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_rate_counts_add_up() {
        let mut r = SuccessRate::default();
        assert_eq!(r.rate, None);
        r.add(TaskResult::Success, 3);
        r.add(TaskResult::Timeout, 1);
        assert_eq!((r.total, r.success, r.timeout), (4, 3, 1));
        assert_eq!(r.rate, Some(0.75));
    }
}
