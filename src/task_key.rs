//! Where a task metric sits in the file: its time key.
//!
//! Task metrics live in a rowid table whose integer key is the timestamp
//! in microseconds times 1024 plus a sequence number: the rows of one
//! microsecond take keys `t * 1024 ..= t * 1024 + 1023`, in task-id order.
//! The table is clustered by time, so a time range is one contiguous run
//! of keys, and an index entry carries the 8-byte key instead of the
//! timestamp and the task id it would carry under a `(timestamp, task_id)`
//! key. The timestamp is read back as `time_key >> 10` (a virtual column).
//!
//! The price is a range of storable times, about 285 years on either side
//! of 1970, and at most 1024 task metrics in one microsecond.

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::record::MetricKind;

/// Bits of the key below the timestamp.
pub(crate) const SEQ_BITS: u32 = 10;

/// Task metrics that can share one microsecond.
pub(crate) const PER_MICROSECOND: i64 = 1 << SEQ_BITS;

/// The earliest storable timestamp, in microseconds: one above the
/// smallest whose keys fit, so that no key is `i64::MIN` and a bound below
/// every timestamp is below every key.
pub(crate) const MIN_MICROS: i64 = -(1 << (63 - SEQ_BITS)) + 1;

/// The latest storable timestamp, in microseconds: one below the largest
/// whose keys fit, so that no key is `i64::MAX`.
pub(crate) const MAX_MICROS: i64 = (1 << (63 - SEQ_BITS)) - 2;

/// The watermark of a file with no indexed task metric: one below every
/// storable timestamp, and still a timestamp whose keys fit.
pub(crate) const NO_WATERMARK: i64 = MIN_MICROS - 1;

/// The first key of microsecond `us`, which must be storable.
pub(crate) fn first_key(us: i64) -> i64 {
    debug_assert!((NO_WATERMARK..=MAX_MICROS).contains(&us));
    us << SEQ_BITS
}

/// The last key of microsecond `us`, which must be storable.
pub(crate) fn last_key(us: i64) -> i64 {
    first_key(us) | (PER_MICROSECOND - 1)
}

/// The smallest key at or after time `us`, for any `us`: a bound that
/// keeps exactly the rows at or after `us` (keys saturate, and no stored
/// key reaches either end of the `i64` range).
pub(crate) fn at_or_after(us: i64) -> i64 {
    saturate(i128::from(us) << SEQ_BITS)
}

/// The largest key at or before time `us`, for any `us`.
pub(crate) fn at_or_before(us: i64) -> i64 {
    saturate((i128::from(us) << SEQ_BITS) | i128::from(PER_MICROSECOND - 1))
}

fn saturate(key: i128) -> i64 {
    i64::try_from(key).unwrap_or(if key < 0 { i64::MIN } else { i64::MAX })
}

/// The condition on `?1` that keeps the raw rows of `kind` older than
/// `cutoff`, with the value to bind: task metrics are found by key.
pub(crate) fn older_than(kind: MetricKind, cutoff: i64) -> (&'static str, i64) {
    match kind {
        MetricKind::Task => ("time_key < ?1", at_or_after(cutoff)),
        MetricKind::Agent | MetricKind::Swarm => ("timestamp < ?1", cutoff),
    }
}

/// The columns that order the raw rows of `kind` by time, one row apart:
/// as many as the values that bound a chunk of them.
pub(crate) fn time_order(kind: MetricKind) -> &'static [&'static str] {
    match kind {
        MetricKind::Task => &["time_key"],
        MetricKind::Agent | MetricKind::Swarm => &["timestamp", "metric_id"],
    }
}

/// Refuses a task metric's timestamp outside the storable range.
pub(crate) fn validate_time(timestamp: DateTime<Utc>) -> Result<()> {
    let us = timestamp.timestamp_micros();
    if (MIN_MICROS..=MAX_MICROS).contains(&us) {
        return Ok(());
    }
    let bound = |us| {
        DateTime::from_timestamp_micros(us)
            .map_or_else(|| us.to_string(), |t: DateTime<Utc>| t.to_rfc3339())
    };
    Err(Error::invalid(
        "timestamp",
        format!(
            "{timestamp} is outside the times a task metric can have, {} to {}",
            bound(MIN_MICROS),
            bound(MAX_MICROS)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_like_timestamps_and_bounds_saturate() {
        assert_eq!(first_key(0), 0);
        assert_eq!(last_key(0), 1023);
        assert_eq!(first_key(-1), -1024);
        assert_eq!(last_key(-1), -1);
        assert!(last_key(MAX_MICROS) < i64::MAX);
        assert!(first_key(MIN_MICROS) > i64::MIN);
        assert!(last_key(NO_WATERMARK) < first_key(MIN_MICROS));
        for us in [MIN_MICROS, -5, 0, 7, MAX_MICROS] {
            assert_eq!(at_or_after(us), first_key(us));
            assert_eq!(at_or_before(us), last_key(us));
            assert_eq!(last_key(us) >> SEQ_BITS, us);
        }
        // Bounds past the storable times keep nothing beyond them.
        assert_eq!(at_or_after(i64::MAX), i64::MAX);
        assert_eq!(at_or_before(i64::MIN), i64::MIN);
        assert!(at_or_after(MAX_MICROS + 1) > last_key(MAX_MICROS));
        assert!(at_or_before(MIN_MICROS - 1) < first_key(MIN_MICROS));
    }

    #[test]
    fn times_outside_the_range_are_refused_by_name() {
        let ok = DateTime::from_timestamp_micros(MAX_MICROS).unwrap();
        assert!(validate_time(ok).is_ok());
        let late = DateTime::from_timestamp_micros(MAX_MICROS + 1).unwrap();
        let err = validate_time(late).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "timestamp",
                ..
            }
        ));
        assert!(err.to_string().contains("2255"), "{err}");
    }
}
