//! Time series on the file: raw rows by bucket in SQL, merged with the
//! rollups of each bucket.

use std::collections::BTreeMap;

use rusqlite::types::Value as SqlValue;
use sketches_ddsketch::DDSketch;

use crate::engine::sqlite::aggregate::value_at;
use crate::engine::sqlite::columns::measured_sql;
use crate::engine::sqlite::functions::{raw_stat, raw_stat_columns, sql_function};
use crate::engine::sqlite::retention::merge::{merge_rollups_by_time, rollups_apply};
use crate::engine::sqlite::{FileStore, Snapshot};
use crate::error::{Error, Result};
use crate::model::analytics::{bucket_of, BucketValue, Measure, SeriesRead};
use crate::model::answer::{aggregated_column, finish, quantiles_of, Aggregate, SuccessRate};
use crate::model::record::{AggregationType, MetricKind, TaskResult};
use crate::rollup::rolled::{Rolled, RollupRead};
use crate::stats::running::Stat;

impl FileStore {
    /// [`MetricsStorage::series`]' buckets that hold metrics, from the file.
    pub(crate) fn series(
        &self,
        series: &SeriesRead<'_>,
        measure: Measure,
    ) -> Result<BTreeMap<i64, BucketValue>> {
        self.snapshot(|snapshot| {
            let rollups = rollups_apply(snapshot, series.kind, series.filter)?;
            match measure {
                Measure::Aggregate(aggregation) => {
                    series.aggregates(snapshot, aggregation, rollups)
                }
                Measure::Percentile(q) => series.percentiles(snapshot, q, rollups),
                Measure::SuccessRate => series.success_rates(snapshot, rollups),
            }
        })
    }
}

/// The SQL expression of a row's bucket start, given the parameter number
/// holding the width (`floor(t / width) * width`, also before 1970).
fn bucket_sql(w: usize) -> String {
    format!("(m.timestamp - (((m.timestamp % ?{w}) + ?{w}) % ?{w}))")
}

impl SeriesRead<'_> {
    /// The rollups of the series' metrics by bucket, with `column`'s stat
    /// (and its values or sketch when `quantiles`).
    fn rollups(
        &self,
        snapshot: &Snapshot<'_>,
        column: Option<&'static str>,
        quantiles: bool,
    ) -> Result<BTreeMap<i64, Rolled>> {
        let read = match column {
            Some(column) => RollupRead::column(self.kind, self.filter, None, column, quantiles),
            None => RollupRead::counts(self.kind, self.filter, None),
        };
        merge_rollups_by_time(snapshot, &read, self.width)
    }

    fn aggregates(
        &self,
        snapshot: &Snapshot<'_>,
        aggregation: AggregationType,
        rollups: bool,
    ) -> Result<BTreeMap<i64, BucketValue>> {
        let operation = "aggregate series";
        let (column, metric_type) = aggregated_column(self.kind, self.filter)?;
        let (from, mut params) = self.filter.sql_from(self.kind);
        params.push(SqlValue::Integer(self.width));
        let bucket = bucket_sql(params.len());
        let mut buckets = BTreeMap::new();
        if rollups {
            // Raw stats merged with the rollups' exactly, as
            // `aggregate_metrics` merges them.
            let int = self.kind == MetricKind::Task;
            let sql = format!(
                "SELECT {bucket} AS bucket, {} FROM {from} GROUP BY bucket",
                raw_stat_columns(column)
            );
            let mut stats: BTreeMap<i64, Stat> = BTreeMap::new();
            snapshot.each(&sql, params, operation, |row| {
                let start: i64 = row.get(0).map_err(Error::sqlite(operation))?;
                stats.insert(start, raw_stat(row, 1, int)?);
                Ok(())
            })?;
            for (start, rolled) in self.rollups(snapshot, Some(column), false)? {
                stats
                    .entry(start)
                    .or_insert_with(|| Stat::new(int, false))
                    .merge(&rolled.stat)?;
            }
            for (start, stat) in stats {
                let value = BucketValue::Aggregate(finish(&stat, aggregation, metric_type));
                buckets.insert(start, value);
            }
            return Ok(buckets);
        }
        let c = measured_sql(column);
        let sql = format!(
            "SELECT {bucket} AS bucket, count({c}), {}({c}) FROM {from} GROUP BY bucket",
            sql_function(aggregation),
        );
        snapshot.each(&sql, params, operation, |row| {
            let start: i64 = row.get(0).map_err(Error::sqlite(operation))?;
            let count: i64 = row.get(1).map_err(Error::sqlite(operation))?;
            let value: Option<f64> = row.get(2).map_err(Error::sqlite(operation))?;
            let count = u64::try_from(count).unwrap_or(0);
            let aggregate = Aggregate {
                aggregation,
                metric_type,
                count,
                value: if count == 0 { None } else { value },
                unpriced: None,
            };
            buckets.insert(start, BucketValue::Aggregate(aggregate));
            Ok(())
        })?;
        Ok(buckets)
    }

    fn percentiles(
        &self,
        snapshot: &Snapshot<'_>,
        q: f64,
        rollups: bool,
    ) -> Result<BTreeMap<i64, BucketValue>> {
        let operation = "percentile series";
        let (column, metric_type) = aggregated_column(self.kind, self.filter)?;
        let (from, params) = self.filter.sql_from(self.kind);
        let sql = format!("SELECT m.timestamp, {} FROM {from}", measured_sql(column));
        let mut values: BTreeMap<i64, (Vec<f64>, Option<DDSketch>)> = BTreeMap::new();
        snapshot.each(&sql, params, operation, |row| {
            let t: i64 = row.get(0).map_err(Error::sqlite(operation))?;
            let Some(v) = value_at(row, 1, self.kind, operation)? else {
                return Ok(());
            };
            values
                .entry(bucket_of(t, self.width))
                .or_default()
                .0
                .push(v);
            Ok(())
        })?;
        if rollups {
            for (start, rolled) in self.rollups(snapshot, Some(column), true)? {
                let bucket = values.entry(start).or_default();
                bucket.0.extend(rolled.values);
                bucket.1 = rolled.sketch;
            }
        }
        Ok(values
            .into_iter()
            .map(|(start, (mut vs, sketch))| {
                let percentile = quantiles_of(&mut vs, sketch, &[q], metric_type).remove(0);
                (start, BucketValue::Percentile(percentile))
            })
            .collect())
    }

    fn success_rates(
        &self,
        snapshot: &Snapshot<'_>,
        rollups: bool,
    ) -> Result<BTreeMap<i64, BucketValue>> {
        let operation = "success rate series";
        let (from, mut params) = self.filter.sql_from(self.kind);
        params.push(SqlValue::Integer(self.width));
        let bucket = bucket_sql(params.len());
        let sql = format!(
            "SELECT {bucket} AS bucket, m.result, count(*) FROM {from} GROUP BY bucket, m.result"
        );
        let mut rates: BTreeMap<i64, SuccessRate> = BTreeMap::new();
        snapshot.each(&sql, params, operation, |row| {
            let start: i64 = row.get(0).map_err(Error::sqlite(operation))?;
            let code: i64 = row.get(1).map_err(Error::sqlite(operation))?;
            let n: i64 = row.get(2).map_err(Error::sqlite(operation))?;
            let result = TaskResult::from_code(code).ok_or_else(|| Error::CorruptRow {
                table: "task_metrics",
                reason: format!("unknown result code {code}"),
            })?;
            rates
                .entry(start)
                .or_default()
                .add(result, u64::try_from(n).unwrap_or(0));
            Ok(())
        })?;
        if rollups {
            for (start, rolled) in self.rollups(snapshot, None, false)? {
                let rate = rates.entry(start).or_default();
                for (result, n) in rolled.result_counts() {
                    rate.add(result, n);
                }
            }
        }
        Ok(rates
            .into_iter()
            .map(|(start, rate)| (start, BucketValue::SuccessRate(rate)))
            .collect())
    }
}
