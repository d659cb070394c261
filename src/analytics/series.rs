//! Time series: a measure per bucket of time.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rusqlite::types::Value as SqlValue;
use serde::{Deserialize, Serialize};

use super::validate_q;
use crate::aggregate::{aggregated_column, Aggregate, Percentile, SuccessRate};
use crate::error::{Error, Result};
use crate::query::{from_micros, to_micros, Filter};
use crate::record::{AggregationType, MetricKind, TaskResult};
use crate::stat::{quantile, sql_function};
use crate::storage::MetricsStorage;

/// What a time series measures in each bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// An aggregate of the values, as [`MetricsStorage::aggregate_metrics`].
    Aggregate(AggregationType),
    /// A quantile of the values, as [`MetricsStorage::percentile`].
    Percentile(f64),
    /// The success rate of tasks, as [`MetricsStorage::success_rate`].
    SuccessRate,
}

/// What one bucket of a series holds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BucketValue {
    /// For [`Measure::Aggregate`].
    Aggregate(Aggregate),
    /// For [`Measure::Percentile`].
    Percentile(Percentile),
    /// For [`Measure::SuccessRate`].
    SuccessRate(SuccessRate),
}

/// One bucket of a time series: `[start, start + width)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Bucket {
    /// The first instant of the bucket, aligned to multiples of the width
    /// since the Unix epoch (so minutes, hours and days start on UTC
    /// boundaries).
    pub start: DateTime<Utc>,
    /// The measure over the bucket's metrics.
    pub value: BucketValue,
}

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

/// What a [time series](MetricsStorage::series) does with buckets that
/// hold no metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyBuckets {
    /// Leaves them out.
    #[default]
    Skip,
    /// Gives them as empty results: count 0, no value.
    Zero,
}

impl MetricsStorage {
    /// `measure` over time, one bucket of `width` each, buckets aligned to
    /// multiples of `width` since the Unix epoch (UTC), oldest first.
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
        let fill_empty = empty == EmptyBuckets::Zero;
        let width = micros_of(width)?;
        let mut buckets: BTreeMap<i64, BucketValue> = BTreeMap::new();
        match measure {
            Measure::Aggregate(aggregation) => {
                filter.validate(kind, true)?;
                let (column, metric_type) = aggregated_column(kind, filter)?;
                let (from, mut params) = filter.sql_from(kind);
                params.push(SqlValue::Integer(width));
                let w = params.len();
                let sql = format!(
                    "SELECT (m.timestamp - (((m.timestamp % ?{w}) + ?{w}) % ?{w})) AS bucket, \
                     count(m.{column}), {}(m.{column}) FROM {from} GROUP BY bucket",
                    sql_function(aggregation),
                );
                for (start, count, value) in
                    self.read_rows(&sql, params, "aggregate series", |row| {
                        let start: i64 = row.get(0).map_err(Error::sqlite("aggregate series"))?;
                        let count: i64 = row.get(1).map_err(Error::sqlite("aggregate series"))?;
                        let value: Option<f64> =
                            row.get(2).map_err(Error::sqlite("aggregate series"))?;
                        Ok((start, u64::try_from(count).unwrap_or(0), value))
                    })?
                {
                    buckets.insert(
                        start,
                        BucketValue::Aggregate(Aggregate {
                            aggregation,
                            metric_type,
                            count,
                            value: if count == 0 { None } else { value },
                        }),
                    );
                }
                if fill_empty {
                    let empty = BucketValue::Aggregate(Aggregate {
                        aggregation,
                        metric_type,
                        count: 0,
                        value: None,
                    });
                    fill(&mut buckets, filter, width, empty)?;
                }
            }
            Measure::Percentile(q) => {
                validate_q(q)?;
                filter.validate(kind, true)?;
                let (column, metric_type) = aggregated_column(kind, filter)?;
                let (from, params) = filter.sql_from(kind);
                let sql = format!("SELECT m.timestamp, m.{column} FROM {from}");
                let mut values: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
                for (t, v) in self.read_rows(&sql, params, "percentile series", |row| {
                    let t: i64 = row.get(0).map_err(Error::sqlite("percentile series"))?;
                    let v: f64 = row.get(1).map_err(Error::sqlite("percentile series"))?;
                    Ok((t, v))
                })? {
                    values.entry(bucket_of(t, width)).or_default().push(v);
                }
                for (start, mut vs) in values {
                    let count = vs.len() as u64;
                    let value = quantile(&mut vs, q);
                    buckets.insert(
                        start,
                        BucketValue::Percentile(Percentile {
                            q,
                            metric_type,
                            count,
                            value,
                            approximate: false,
                        }),
                    );
                }
                if fill_empty {
                    let empty = BucketValue::Percentile(Percentile {
                        q,
                        metric_type,
                        count: 0,
                        value: None,
                        approximate: false,
                    });
                    fill(&mut buckets, filter, width, empty)?;
                }
            }
            Measure::SuccessRate => {
                if kind != MetricKind::Task {
                    return Err(Error::invalid(
                        "kind",
                        format!("success rates are computed from task metrics, not {kind} metrics"),
                    ));
                }
                filter.validate(kind, false)?;
                let (from, mut params) = filter.sql_from(kind);
                params.push(SqlValue::Integer(width));
                let w = params.len();
                let sql = format!(
                    "SELECT (m.timestamp - (((m.timestamp % ?{w}) + ?{w}) % ?{w})) AS bucket, \
                     m.result, count(*) FROM {from} GROUP BY bucket, m.result"
                );
                for (start, code, n) in
                    self.read_rows(&sql, params, "success rate series", |row| {
                        let start: i64 =
                            row.get(0).map_err(Error::sqlite("success rate series"))?;
                        let code: i64 = row.get(1).map_err(Error::sqlite("success rate series"))?;
                        let n: i64 = row.get(2).map_err(Error::sqlite("success rate series"))?;
                        Ok((start, code, n))
                    })?
                {
                    let result = TaskResult::from_code(code).ok_or_else(|| Error::CorruptRow {
                        table: "task_metrics",
                        reason: format!("unknown result code {code}"),
                    })?;
                    let entry = buckets
                        .entry(start)
                        .or_insert(BucketValue::SuccessRate(SuccessRate::default()));
                    if let BucketValue::SuccessRate(rate) = entry {
                        rate.add(result, u64::try_from(n).unwrap_or(0));
                    }
                }
                if fill_empty {
                    fill(
                        &mut buckets,
                        filter,
                        width,
                        BucketValue::SuccessRate(SuccessRate::default()),
                    )?;
                }
            }
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
