//! Analytics for swarm controllers: grouped results ([`grouped`]), time
//! series ([`series`]), and rankings, summaries and outliers of tasks
//! ([`tasks`]). Every call takes the same [`Filter`](crate::Filter) as the
//! core queries.

mod grouped;
mod series;
mod tasks;

use crate::error::{Error, Result};

pub use crate::model::analytics::{P50, P90, P95, P99};
pub use grouped::Grouped;
pub use series::{Bucket, BucketValue, EmptyBuckets, Measure};
pub use tasks::{DurationStats, Order, Outlier, RankBy, Ranked, Summary};

/// Checks a quantile argument.
pub(crate) fn validate_q(q: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&q) {
        return Err(Error::invalid("q", format!("must lie in [0, 1], got {q}")));
    }
    Ok(())
}

pub(crate) fn validate_n(n: usize) -> Result<i64> {
    if n == 0 {
        return Err(Error::invalid("n", "must be at least 1"));
    }
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_counts_are_checked() {
        assert!(validate_n(0).is_err());
        assert_eq!(validate_n(3).unwrap(), 3);
        assert!(validate_q(1.01).is_err());
        assert!(validate_q(f64::NAN).is_err());
        assert!(validate_q(0.5).is_ok());
    }
}
