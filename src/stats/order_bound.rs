//! A distribution-free lower confidence bound of a quantile, from the
//! order statistics of a sample.
//!
//! Of `n` values drawn independently, the k-th smallest `x(k)` lies at or
//! below the true `q` quantile when at least `k` values do, which happens
//! with probability `P(Binomial(n, q) >= k)` whatever the distribution.
//! The bound is `x(k)` for the largest `k` that keeps this probability at
//! or above the confidence: a latency alert that fires only when this
//! bound exceeds its threshold is confident that the quantile does.

use statrs::distribution::{Binomial, DiscreteCDF};

/// The 1-based rank of the order statistic that bounds the `q` quantile
/// from below with `confidence`, among `n` values; `None` when no rank
/// does (too few values: even the smallest is not below the quantile
/// often enough).
pub(crate) fn lower_bound_rank(n: u64, q: f64, confidence: f64) -> Option<u64> {
    if n == 0 || !(q > 0.0 && q < 1.0) || !(confidence > 0.0 && confidence < 1.0) {
        return None;
    }
    let binomial = Binomial::new(q, n).ok()?;
    // P(X >= k) = 1 - P(X <= k - 1), falling as k grows.
    let at_least = |k: u64| 1.0 - binomial.cdf(k - 1);
    if at_least(1) < confidence {
        return None;
    }
    // The largest k in [1, n] with at_least(k) >= confidence.
    let (mut good, mut bad) = (1u64, n + 1);
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if at_least(mid) >= confidence {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Some(good)
}

/// The lower confidence bound itself: the order statistic of
/// [`lower_bound_rank`] of `values`, which it reorders.
pub(crate) fn quantile_lower_bound(values: &mut [f64], q: f64, confidence: f64) -> Option<f64> {
    let k = lower_bound_rank(values.len() as u64, q, confidence)?;
    let index = usize::try_from(k - 1).ok()?;
    let (_, kth, _) = values.select_nth_unstable_by(index, f64::total_cmp);
    Some(*kth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_match_the_binomial_tail() {
        // 100 values, the median, 95%: P(Bin(100, .5) >= 42) = 0.9557,
        // P(>= 43) = 0.9334 (exact sums of the binomial terms).
        assert_eq!(lower_bound_rank(100, 0.5, 0.95), Some(42));
        // The 95th percentile of 20 values at 95%: P(>= 17) = 0.9841,
        // P(>= 18) = 0.9245.
        assert_eq!(lower_bound_rank(20, 0.95, 0.95), Some(17));
        // Too few values: P(at least 1 of 2 below the 5th percentile) is
        // 0.0975.
        assert_eq!(lower_bound_rank(2, 0.05, 0.95), None);
        assert_eq!(lower_bound_rank(0, 0.5, 0.95), None);
    }

    #[test]
    fn the_bound_covers_the_quantile_as_often_as_promised() {
        // Uniform values on [0, 1): the true 0.9 quantile is 0.9. Over
        // many seeded samples the bound must lie above it at most 5% of
        // the time (and not far less, or it is needlessly loose).
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let trials = 4000;
        let mut above = 0;
        for _ in 0..trials {
            let mut values: Vec<f64> = (0..60).map(|_| next()).collect();
            let bound = quantile_lower_bound(&mut values, 0.9, 0.95).unwrap();
            if bound > 0.9 {
                above += 1;
            }
        }
        let share = above as f64 / trials as f64;
        assert!(share <= 0.05 + 0.01, "bound above the quantile in {share}");
        assert!(share >= 0.01, "bound needlessly loose: {share}");
    }
}
