//! Time series: a measure per bucket of time.

use std::collections::BTreeMap;

use chrono::Duration;
use rusqlite::types::Value as SqlValue;

use sketches_ddsketch::DDSketch;

use super::validate_q;
use crate::aggregate::{
    aggregated_column, finish, quantiles_of, value_at, Aggregate, Percentile, SuccessRate,
};
use crate::engine::on_engine;
use crate::engine::sqlite::{FileStore, Snapshot};
use crate::error::{Error, Result};
pub(crate) use crate::model::analytics::SeriesRead;
pub use crate::model::analytics::{Bucket, BucketValue, EmptyBuckets, Measure};
use crate::query::{from_micros, to_micros, Filter};
use crate::record::{AggregationType, MetricKind, TaskResult};
use crate::retention::{merge_rollups_by_time, rollups_apply, Rolled, RollupRead};
use crate::stat::{raw_stat, raw_stat_columns, sql_function, Stat};
use crate::storage::MetricsStorage;

fn micros_of(width: Duration) -> Result<i64> {
    match width.num_microseconds() {
        Some(us) if us > 0 => Ok(us),
        _ => Err(Error::invalid(
            "width",
            format!("a bucket width must be at least one microsecond, got {width}"),
        )),
    }
}

/// Most buckets a filled series may hold.
const MAX_FILLED_BUCKETS: i64 = 1_000_000;

/// Adds `empty` for every bucket without data between the filter's start
/// and end (or the first and last bucket with data).
fn fill(
    buckets: &mut BTreeMap<i64, BucketValue>,
    filter: &Filter,
    width: i64,
    empty: BucketValue,
) -> Result<()> {
    let (first, last) = match &filter.time_range {
        Some(range) => (
            bucket_of(to_micros(range.start()), width),
            bucket_of(to_micros(range.end()), width),
        ),
        None => match (buckets.keys().next(), buckets.keys().next_back()) {
            (Some(&first), Some(&last)) => (first, last),
            _ => return Ok(()),
        },
    };
    let count = (last - first) / width + 1;
    if count > MAX_FILLED_BUCKETS {
        return Err(Error::invalid(
            "width",
            format!("filling the range would take {count} buckets; at most {MAX_FILLED_BUCKETS} are allowed"),
        ));
    }
    let mut start = first;
    while start <= last {
        buckets.entry(start).or_insert(empty);
        start += width;
    }
    Ok(())
}

/// `floor(t / width) * width`, also for times before 1970.
fn bucket_of(t: i64, width: i64) -> i64 {
    t.div_euclid(width) * width
}

impl MetricsStorage {
    /// `measure` over time, one bucket of `width` each, buckets aligned to
    /// multiples of `width` since the Unix epoch (UTC), oldest first.
    ///
    /// Raw rows and the rollups the filter covers are read in one
    /// snapshot, as the single-number calls read them: history kept only
    /// as hourly (or daily) rollups counts in the bucket where its hour
    /// (or day) starts, so buckets of whole hours (or days) answer exactly
    /// and narrower ones get a rolled-up hour whole in its first bucket.
    /// Percentiles of rollups that keep sketches are approximate (within
    /// 1%), and say so.
    ///
    /// Buckets without metrics are left out ([`EmptyBuckets::Skip`]), or
    /// given as empty results (count 0, no value) for every bucket from the
    /// filter's start to its end, or from the first to the last bucket
    /// with data without a time range ([`EmptyBuckets::Zero`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a width under one microsecond, a
    /// quantile outside `[0, 1]`, a success rate of agent or swarm metrics,
    /// a filter that does not apply, or more than a million buckets to
    /// fill; otherwise as the single-number calls.
    pub fn series(
        &self,
        kind: MetricKind,
        measure: Measure,
        width: Duration,
        filter: &Filter,
        empty: EmptyBuckets,
    ) -> Result<Vec<Bucket>> {
        let width = micros_of(width)?;
        match measure {
            Measure::SuccessRate if kind != MetricKind::Task => {
                return Err(Error::invalid(
                    "kind",
                    format!("success rates are computed from task metrics, not {kind} metrics"),
                ))
            }
            Measure::SuccessRate => filter.validate(kind, false)?,
            Measure::Percentile(q) => {
                validate_q(q)?;
                filter.validate(kind, true)?;
            }
            Measure::Aggregate(_) => filter.validate(kind, true)?,
        }
        let series = SeriesRead {
            kind,
            filter,
            width,
        };
        let mut buckets = on_engine!(self.engine(), series(&series, measure))?;
        if empty == EmptyBuckets::Zero {
            let (_, metric_type) = aggregated_column(kind, filter)?;
            let empty = match measure {
                Measure::Aggregate(aggregation) => BucketValue::Aggregate(Aggregate {
                    aggregation,
                    metric_type,
                    count: 0,
                    value: None,
                }),
                Measure::Percentile(q) => BucketValue::Percentile(Percentile {
                    q,
                    metric_type,
                    count: 0,
                    value: None,
                    approximate: false,
                }),
                Measure::SuccessRate => BucketValue::SuccessRate(SuccessRate::default()),
            };
            fill(&mut buckets, filter, width, empty)?;
        }
        buckets
            .into_iter()
            .map(|(start, value)| {
                let start = from_micros(start).ok_or_else(|| {
                    Error::invalid("width", "a bucket starts outside the representable dates")
                })?;
                Ok(Bucket { start, value })
            })
            .collect()
    }
}

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
        let sql = format!(
            "SELECT {bucket} AS bucket, count(m.{column}), {}(m.{column}) FROM {from} \
             GROUP BY bucket",
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
        let sql = format!("SELECT m.timestamp, m.{column} FROM {from}");
        let mut values: BTreeMap<i64, (Vec<f64>, Option<DDSketch>)> = BTreeMap::new();
        snapshot.each(&sql, params, operation, |row| {
            let t: i64 = row.get(0).map_err(Error::sqlite(operation))?;
            let v = value_at(row, 1, self.kind, operation)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_floor_also_before_1970() {
        assert_eq!(bucket_of(125, 60), 120);
        assert_eq!(bucket_of(-1, 60), -60);
        assert_eq!(bucket_of(-60, 60), -60);
        assert_eq!(bucket_of(0, 60), 0);
    }

    #[test]
    fn widths_and_counts_are_checked() {
        assert!(micros_of(Duration::zero()).is_err());
        assert!(micros_of(Duration::microseconds(-5)).is_err());
        assert_eq!(micros_of(Duration::hours(1)).unwrap(), 3_600_000_000);
    }
}
