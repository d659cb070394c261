//! Time series: a measure per bucket of time.

use std::collections::BTreeMap;

use chrono::Duration;

use super::validate_q;
use crate::engine::on_engine;
use crate::error::{Error, Result};
use crate::model::analytics::bucket_of;
use crate::model::answer::{aggregated_column, Aggregate, Percentile, SuccessRate};
use crate::model::filter::{from_micros, to_micros, Filter};
use crate::model::record::MetricKind;
use crate::query::cost::measures_cost;
use crate::storage::MetricsStorage;

pub(crate) use crate::model::analytics::SeriesRead;
pub use crate::model::analytics::{Bucket, BucketValue, EmptyBuckets, Measure};

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
        let cost = measures_cost(kind, filter) && measure != Measure::SuccessRate;
        let mut buckets = if cost {
            self.cost_series(&series, measure)?
        } else {
            on_engine!(self.engine(), series(&series, measure))?
        };
        if empty == EmptyBuckets::Zero {
            let (_, metric_type) = aggregated_column(kind, filter)?;
            let empty = match measure {
                Measure::Aggregate(aggregation) => BucketValue::Aggregate(Aggregate {
                    aggregation,
                    metric_type,
                    count: 0,
                    value: None,
                    unpriced: cost.then_some(0),
                }),
                Measure::Percentile(q) => BucketValue::Percentile(Percentile {
                    q,
                    metric_type,
                    count: 0,
                    value: None,
                    approximate: false,
                    unpriced: cost.then_some(0),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::analytics::bucket_of;

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
