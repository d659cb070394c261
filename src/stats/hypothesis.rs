//! Significance tests behind comparisons: two success rates (the
//! two-proportion z-test, or Fisher's exact test for small counts) and two
//! samples of durations (the Mann–Whitney U test).

use statrs::function::erf::erfc;
use statrs::function::gamma::ln_gamma;

/// Below this expected count in any cell of the 2×2 table, the normal
/// approximation of the z-test is poor and Fisher's exact test is used.
pub(crate) const MIN_EXPECTED_COUNT: f64 = 5.0;

/// The two-sided p-value of a standard normal statistic `z`.
fn two_sided(z: f64) -> f64 {
    erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0)
}

/// The pooled two-proportion z-test of `x1` successes out of `n1` against
/// `x2` out of `n2`: the statistic and its two-sided p-value. `None` when
/// a side has no trials. When every trial of both sides went the same way
/// the rates cannot differ: z is 0 and p is 1.
pub(crate) fn two_proportion_z(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<(f64, f64)> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (x1, n1, x2, n2) = (x1 as f64, n1 as f64, x2 as f64, n2 as f64);
    let pooled = (x1 + x2) / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 {
        return Some((0.0, 1.0));
    }
    let z = (x1 / n1 - x2 / n2) / se;
    Some((z, two_sided(z)))
}

/// Whether the 2×2 table of the two sides is too small for the z-test.
pub(crate) fn needs_exact_test(x1: u64, n1: u64, x2: u64, n2: u64) -> bool {
    let total = (n1 + n2) as f64;
    let successes = (x1 + x2) as f64;
    let failures = total - successes;
    [n1 as f64, n2 as f64]
        .iter()
        .flat_map(|n| [n * successes / total, n * failures / total])
        .any(|expected| expected < MIN_EXPECTED_COUNT)
}

/// The two-sided p-value of Fisher's exact test on the 2×2 table of `x1`
/// successes out of `n1` and `x2` out of `n2`: the probability, given the
/// margins, of every table no more likely than the one observed.
pub(crate) fn fisher_exact(x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    let total = n1 + n2;
    let successes = x1 + x2;
    let ln_choose = |n: u64, k: u64| {
        ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0)
    };
    // The probability of x successes on the first side, given the margins
    // (hypergeometric).
    let ln_p = |x: u64| {
        ln_choose(successes, x) + ln_choose(total - successes, n1 - x) - ln_choose(total, n1)
    };
    let lowest = (n1 + successes).saturating_sub(total);
    let highest = n1.min(successes);
    let observed = ln_p(x1);
    // Tables as likely as the observed one, up to rounding, count too.
    let threshold = observed + 1e-7_f64.ln_1p();
    let p: f64 = (lowest..=highest)
        .map(ln_p)
        .filter(|&ln| ln <= threshold)
        .map(f64::exp)
        .sum();
    p.min(1.0)
}

/// Up to this many values on the smaller side, and without ties, the
/// Mann–Whitney p-value comes from the exact distribution of U.
const EXACT_MANN_WHITNEY_MAX: usize = 8;

/// The Mann–Whitney U test of `a` against `b`: the U statistic of `a` (how
/// many pairs have the value of `a` above that of `b`, ties counting half)
/// and its two-sided p-value. The p-value is exact when a side has at most
/// eight values and no value repeats; otherwise it comes from the normal
/// approximation with the tie correction and a continuity correction.
/// `None` when a side is empty. When every value is the same, nothing can
/// differ: p is 1.
pub(crate) fn mann_whitney(a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&v| (v, true))
        .chain(b.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    // Average ranks over ties; the sum of t³ - t over tie groups.
    let mut rank_sum_a = 0.0;
    let mut ties = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let count = (j - i + 1) as f64;
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_a += rank * all[i..=j].iter().filter(|(_, in_a)| *in_a).count() as f64;
        ties += count * count * count - count;
        i = j + 1;
    }
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    if ties == 0.0 && a.len().min(b.len()) <= EXACT_MANN_WHITNEY_MAX {
        return Some((u, exact_mann_whitney(u, a.len(), b.len())));
    }
    let n = n1 + n2;
    let mean = n1 * n2 / 2.0;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if variance <= 0.0 || !variance.is_finite() {
        return Some((u, 1.0));
    }
    // Half a unit towards the mean, as for any discrete statistic.
    let shifted = (u - mean).abs() - 0.5;
    let z = shifted.max(0.0) / variance.sqrt();
    Some((u, two_sided(z)))
}

/// The two-sided exact p-value of a Mann–Whitney U of `u` for samples of
/// `n1` and `n2` values without ties: twice the chance of a U at least as
/// far from the middle. The number of orderings giving each U are the
/// coefficients of the Gaussian binomial coefficient
/// `[n1 + n2 choose n1]_q`, built as the product over `i` of
/// `(1 - q^(n + i)) / (1 - q^i)` for the smaller size `m` and the larger
/// `n`; counts are kept as floats, whose relative precision is all a
/// p-value needs.
fn exact_mann_whitney(u: f64, n1: usize, n2: usize) -> f64 {
    let (m, n) = (n1.min(n2), n1.max(n2));
    let degree = m * n;
    let mut counts = vec![0.0_f64; degree + 1];
    counts[0] = 1.0;
    for i in 1..=m {
        // Times (1 - q^(n + i)), from the top down.
        for k in (n + i..=degree).rev() {
            counts[k] -= counts[k - (n + i)];
        }
        // Divided by (1 - q^i): a running sum with stride i.
        for k in i..=degree {
            counts[k] += counts[k - i];
        }
    }
    let total: f64 = counts.iter().sum();
    let far = u.max(degree as f64 - u).round() as usize;
    let tail: f64 = counts[far.min(degree)..].iter().sum();
    (2.0 * tail / total).min(1.0)
}

/// Benjamini–Hochberg adjusted p-values ("q-values"), in the order of
/// `p_values`: rejecting every hypothesis whose q-value is at most `alpha`
/// keeps the expected share of false discoveries among them at `alpha`.
pub(crate) fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    // From the largest p-value down, each q is the smallest m/rank · p of
    // its rank and every rank above it.
    let mut running = 1.0_f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p_values[i] * m as f64 / (rank + 1) as f64);
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= 1e-9 * want.abs().max(1e-300) || (got - want).abs() < 1e-12
    }

    // The reference values are the output of
    // `scripts/hypothesis_reference.py` (scipy), an independent
    // implementation.

    #[test]
    fn the_z_test_matches_scipy() {
        let cases = [
            (45, 50, 30, 50, 3.464101615138, 5.320055051392e-04),
            (940, 1000, 810, 1000, 8.789604249177, 1.500877209106e-18),
            (81, 100, 94, 100, -2.779516915889, 5.443981805202e-03),
            (5, 10, 5, 10, 0.0, 1.0),
            (1, 2, 0, 3, 1.369306393763, 1.709035202308e-01),
        ];
        for (x1, n1, x2, n2, z, p) in cases {
            let (got_z, got_p) = two_proportion_z(x1, n1, x2, n2).unwrap();
            assert!(
                (got_z - z).abs() < 1e-9,
                "{x1}/{n1} vs {x2}/{n2}: z {got_z}"
            );
            assert!(close(got_p, p), "{x1}/{n1} vs {x2}/{n2}: p {got_p} != {p}");
        }
        assert_eq!(two_proportion_z(0, 0, 1, 2), None);
        assert_eq!(two_proportion_z(3, 3, 5, 5), Some((0.0, 1.0)));
    }

    #[test]
    fn fishers_test_matches_scipy() {
        let cases = [
            (7, 8, 3, 10, 2.481831893597e-02),
            (9, 10, 3, 10, 1.976661109788e-02),
            (1, 1, 0, 3, 2.5e-01),
            (0, 5, 5, 5, 7.936507936508e-03),
            (3, 8, 4, 9, 1.0),
            (12, 15, 2, 4, 2.721878224974e-01),
            (50, 50, 49, 50, 1.0),
        ];
        for (x1, n1, x2, n2, p) in cases {
            let got = fisher_exact(x1, n1, x2, n2);
            assert!(
                (got - p).abs() < 1e-10,
                "{x1}/{n1} vs {x2}/{n2}: {got} != {p}"
            );
        }
        assert!(needs_exact_test(9, 10, 3, 10));
        assert!(!needs_exact_test(45, 50, 30, 50));
    }

    #[test]
    fn benjamini_hochberg_matches_scipy() {
        let cases: [(Vec<f64>, Vec<f64>); 4] = [
            (
                vec![0.01, 0.04, 0.03, 0.005, 0.5],
                vec![0.025, 0.05, 0.05, 0.025, 0.5],
            ),
            (vec![0.2, 0.2, 0.2], vec![0.2, 0.2, 0.2]),
            (vec![0.001], vec![0.001]),
            (
                vec![0.04, 0.01, 0.9, 0.03, 0.02, 0.6],
                vec![0.06, 0.06, 0.9, 0.06, 0.06, 0.72],
            ),
        ];
        for (p, q) in cases {
            let got = benjamini_hochberg(&p);
            assert!(
                got.iter().zip(&q).all(|(g, w)| (g - w).abs() < 1e-12),
                "{p:?}: {got:?} != {q:?}"
            );
        }
        assert!(benjamini_hochberg(&[]).is_empty());
    }

    #[test]
    fn mann_whitney_matches_scipy() {
        let third_a: Vec<f64> = (0..60).map(|i| (i % 17) as f64).collect();
        let third_b: Vec<f64> = (0..45).map(|i| (i % 13) as f64 + 2.0).collect();
        let cases: [(Vec<f64>, Vec<f64>, f64, f64); 4] = [
            (
                (1..=10).map(f64::from).collect(),
                (0..9).map(|i| 5.5 + f64::from(i)).collect(),
                15.0,
                1.601099081052e-02,
            ),
            (
                vec![10.0, 20.0, 20.0, 30.0, 40.0, 40.0, 40.0, 50.0],
                vec![20.0, 30.0, 30.0, 60.0, 70.0, 70.0, 80.0, 90.0, 100.0, 110.0],
                15.0,
                2.840600811982e-02,
            ),
            (third_a, third_b, 1308.0, 7.877142772112e-01),
            (vec![1.0, 1.0, 1.0], vec![1.0, 1.0], 3.0, 1.0),
        ];
        for (a, b, u, p) in cases {
            let (got_u, got_p) = mann_whitney(&a, &b).unwrap();
            assert_eq!(got_u, u);
            assert!(close(got_p, p), "{got_p} != {p}");
        }
        assert_eq!(mann_whitney(&[], &[1.0]), None);
    }

    #[test]
    fn small_samples_without_ties_get_scipys_exact_p_values() {
        let cases: [(Vec<f64>, Vec<f64>, f64, f64); 5] = [
            (vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0], 0.0, 1.0e-01),
            (
                vec![1.0, 5.0, 9.0, 12.0],
                vec![2.0, 3.0, 4.0, 6.0, 7.0],
                13.0,
                5.555555555556e-01,
            ),
            (
                vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0],
                vec![15.0, 25.0, 35.0],
                15.0,
                3.833333333333e-01,
            ),
            (
                vec![3.0],
                (1..=11).filter(|&v| v != 3).map(f64::from).collect(),
                2.0,
                5.454545454545e-01,
            ),
            (
                (1..=7).map(f64::from).collect(),
                (8..=19).map(f64::from).collect(),
                0.0,
                3.969199015639e-05,
            ),
        ];
        for (a, b, u, p) in cases {
            let (got_u, got_p) = mann_whitney(&a, &b).unwrap();
            assert_eq!(got_u, u);
            assert!(
                (got_p - p).abs() < 1e-12 * p.max(1e-3),
                "{a:?} {b:?}: {got_p} != {p}"
            );
        }
    }
}
