//! Confidence intervals for success rates: how far the true rate may lie
//! from the one observed, given how few tasks it was observed on.

use serde::{Deserialize, Serialize};
use statrs::distribution::{Beta, ContinuousCDF, Normal};

use crate::error::{Error, Result};

/// The confidence most intervals are reported at.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;

/// How a confidence interval for a proportion is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalMethod {
    /// The Wilson score interval: close to the nominal confidence at any
    /// number of trials, never outside `[0, 1]`, and not degenerate at 0
    /// or all successes. The usual choice.
    #[default]
    Wilson,
    /// The Clopper–Pearson ("exact") interval, from the quantiles of the
    /// Beta distribution: it covers the true rate at least as often as the
    /// confidence says, and is wider for it.
    ClopperPearson,
}

/// A confidence interval for a success rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Interval {
    /// The lower bound, in `[0, 1]`.
    pub low: f64,
    /// The upper bound, in `[low, 1]`.
    pub high: f64,
    /// The confidence, in `(0, 1)` (0.95 for a 95% interval).
    pub confidence: f64,
    /// How it was computed.
    pub method: IntervalMethod,
}

impl Interval {
    /// The interval for `successes` out of `trials` at `confidence`; `None`
    /// when there were no trials.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `confidence` is not strictly between 0
    /// and 1, or when `successes` exceeds `trials`.
    pub fn for_proportion(
        successes: u64,
        trials: u64,
        confidence: f64,
        method: IntervalMethod,
    ) -> Result<Option<Interval>> {
        Error::check_open_unit("confidence", confidence)?;
        if successes > trials {
            return Err(Error::invalid(
                "successes",
                format!("{successes} successes out of {trials} trials"),
            ));
        }
        if trials == 0 {
            return Ok(None);
        }
        let (low, high) = match method {
            IntervalMethod::Wilson => wilson(successes, trials, z(confidence)),
            IntervalMethod::ClopperPearson => clopper_pearson(successes, trials, confidence)?,
        };
        Ok(Some(Interval {
            low,
            high,
            confidence,
            method,
        }))
    }

    /// The 95% Wilson interval of `successes` out of `trials` (`None` for
    /// no trials): what every [`SuccessRate`] carries. Cheap enough to
    /// compute on every count.
    pub(crate) fn default_for(successes: u64, trials: u64) -> Option<Interval> {
        (trials > 0 && successes <= trials).then(|| {
            let (low, high) = wilson(successes, trials, Z_95);
            Interval {
                low,
                high,
                confidence: DEFAULT_CONFIDENCE,
                method: IntervalMethod::Wilson,
            }
        })
    }

    /// Whether `rate` lies inside the interval, both ends included.
    pub fn contains(&self, rate: f64) -> bool {
        self.low <= rate && rate <= self.high
    }
}

/// The two-sided normal quantile for `confidence` (1.96 for 0.95).
fn z(confidence: f64) -> f64 {
    // The same constant as every `SuccessRate` uses, so that both agree to
    // the last bit.
    if confidence == DEFAULT_CONFIDENCE {
        return Z_95;
    }
    let standard = Normal::standard();
    standard.inverse_cdf(1.0 - (1.0 - confidence) / 2.0)
}

/// [`z`] of [`DEFAULT_CONFIDENCE`], which a test checks.
const Z_95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval with the normal quantile `z`.
fn wilson(successes: u64, trials: u64, z: f64) -> (f64, f64) {
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    // The bounds are exactly 0 and 1 at the extremes; rounding must not
    // take them past the observed rate or out of [0, 1].
    let low = if successes == 0 {
        0.0
    } else {
        (center - half).clamp(0.0, p)
    };
    let high = if successes == trials {
        1.0
    } else {
        (center + half).clamp(p, 1.0)
    };
    (low, high)
}

fn clopper_pearson(successes: u64, trials: u64, confidence: f64) -> Result<(f64, f64)> {
    let alpha = 1.0 - confidence;
    let (s, n) = (successes as f64, trials as f64);
    let beta = |a: f64, b: f64| {
        Beta::new(a, b).map_err(|e| Error::invalid("trials", format!("no Beta({a}, {b}): {e}")))
    };
    let low = if successes == 0 {
        0.0
    } else {
        beta(s, n - s + 1.0)?.inverse_cdf(alpha / 2.0)
    };
    let high = if successes == trials {
        1.0
    } else {
        beta(s + 1.0, n - s)?.inverse_cdf(1.0 - alpha / 2.0)
    };
    let p = s / n;
    Ok((low.clamp(0.0, p), high.clamp(p, 1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    fn interval(s: u64, n: u64, confidence: f64, method: IntervalMethod) -> (f64, f64) {
        let ci = Interval::for_proportion(s, n, confidence, method)
            .unwrap()
            .unwrap();
        (ci.low, ci.high)
    }

    fn assert_near(got: (f64, f64), want: (f64, f64), tolerance: f64) {
        assert!(
            (got.0 - want.0).abs() < tolerance && (got.1 - want.1).abs() < tolerance,
            "{got:?} != {want:?}"
        );
    }

    /// Published values: 9 successes out of 10 at 95%.
    #[test]
    fn nine_of_ten_matches_the_published_intervals() {
        assert_near(
            interval(9, 10, 0.95, IntervalMethod::Wilson),
            (0.5958, 0.9821),
            5e-5,
        );
        assert_near(
            interval(9, 10, 0.95, IntervalMethod::ClopperPearson),
            (0.5550, 0.9975),
            5e-5,
        );
    }

    /// The output of `scripts/interval_reference.py`: scipy's
    /// `binomtest(k, n).proportion_ci(confidence, method=...)`, an
    /// independent implementation.
    #[test]
    fn intervals_match_scipy() {
        #[rustfmt::skip]
        let cases = [
            // (k, n, confidence, wilson, clopper-pearson)
            (0, 10, 0.95, (0.000000000, 0.277532800), (0.000000000, 0.308497108)),
            (10, 10, 0.95, (0.722467200, 1.000000000), (0.691502892, 1.000000000)),
            (1, 1, 0.95, (0.206549314, 1.000000000), (0.025000000, 1.000000000)),
            (9, 10, 0.95, (0.595849973, 0.982123787), (0.554983883, 0.997471421)),
            (50, 100, 0.95, (0.403831530, 0.596168470), (0.398321130, 0.601678870)),
            (81, 100, 0.95, (0.722211546, 0.874852485), (0.719302042, 0.881556804)),
            (3, 7, 0.95, (0.158219855, 0.749541635), (0.098988278, 0.815948432)),
            (999, 1000, 0.95, (0.994357441, 0.999823454), (0.994441076, 0.999974683)),
            (0, 10, 0.99, (0.000000000, 0.398854093), (0.000000000, 0.411295981)),
            (10, 10, 0.99, (0.601145907, 1.000000000), (0.588704019, 1.000000000)),
            (1, 1, 0.99, (0.130977543, 1.000000000), (0.005000000, 1.000000000)),
            (9, 10, 0.99, (0.492768229, 0.988148497), (0.455712943, 0.999498871)),
            (50, 100, 0.99, (0.375279625, 0.624720375), (0.368861437, 0.631138563)),
            (81, 100, 0.99, (0.690972895, 0.890450279), (0.690162112, 0.899182670)),
            (3, 7, 0.99, (0.116373681, 0.810285096), (0.055299350, 0.882296248)),
            (999, 1000, 0.99, (0.991539434, 0.999882584), (0.992593713, 0.999994987)),
        ];
        for (k, n, confidence, wilson, exact) in cases {
            assert_near(
                interval(k, n, confidence, IntervalMethod::Wilson),
                wilson,
                1e-8,
            );
            assert_near(
                interval(k, n, confidence, IntervalMethod::ClopperPearson),
                exact,
                1e-8,
            );
        }
    }

    #[test]
    fn the_default_interval_is_the_95_percent_wilson_one() {
        let computed = Normal::standard().inverse_cdf(0.975);
        assert!((computed - Z_95).abs() < 1e-12, "{computed}");
        for (s, n) in [(0, 1), (1, 1), (9, 10), (500, 1000), (3, 7)] {
            assert_eq!(
                Interval::default_for(s, n),
                Interval::for_proportion(s, n, DEFAULT_CONFIDENCE, IntervalMethod::Wilson).unwrap()
            );
        }
        assert_eq!(Interval::default_for(0, 0), None);
    }

    #[test]
    fn no_trials_have_no_interval_and_bad_confidence_is_refused() {
        let none = Interval::for_proportion(0, 0, 0.95, IntervalMethod::Wilson).unwrap();
        assert_eq!(none, None);
        for confidence in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            let err = Interval::for_proportion(1, 2, confidence, IntervalMethod::Wilson);
            assert!(err.unwrap_err().is_invalid_input());
        }
        let err = Interval::for_proportion(3, 2, 0.95, IntervalMethod::ClopperPearson);
        assert!(err.unwrap_err().is_invalid_input());
    }

    fn method() -> impl proptest::strategy::Strategy<Value = IntervalMethod> {
        proptest::sample::select(vec![IntervalMethod::Wilson, IntervalMethod::ClopperPearson])
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config { cases: 300, ..Default::default() })]

        /// Every interval holds the observed rate, stays inside [0, 1],
        /// narrows as the same rate is seen over more trials, and widens
        /// with the confidence.
        #[test]
        fn intervals_hold_the_rate_and_narrow_with_trials(
            (successes, trials) in (1u64..5_000).prop_flat_map(|n| (0..=n, proptest::strategy::Just(n))),
            confidence in proptest::sample::select(vec![0.8, 0.9, 0.95, 0.99]),
            method in method(),
        ) {
            use proptest::prop_assert;
            let rate = successes as f64 / trials as f64;
            let (low, high) = interval(successes, trials, confidence, method);
            prop_assert!(0.0 <= low && low <= rate && rate <= high && high <= 1.0, "{low} {rate} {high}");
            let (more_low, more_high) = interval(successes * 4, trials * 4, confidence, method);
            prop_assert!(more_high - more_low < high - low, "{more_low}..{more_high} vs {low}..{high}");
            let (wide_low, wide_high) = interval(successes, trials, 0.999, method);
            prop_assert!(wide_low <= low && high <= wide_high);
        }
    }
}
