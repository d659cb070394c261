//! Running statistics: count, exact sum, extremes and Welford's mean and
//! M2 of one column, mergeable with Chan's formula; the [`Running`] state
//! a file's SQL aggregate returns; exact quantiles; and the quantile
//! sketches that rollups keep.
//!
//! Everything that summarises values uses this module, so that raw rows,
//! rollups and their merge agree to the last digit.

use sketches_ddsketch::{Config, DDSketch};

use crate::error::{Error, Result};

/// Running mean and sum of squared deviations (Welford): stable where the
/// textbook `sqrt((Σx² - (Σx)²/n) / (n-1))` cancels to nothing, e.g. for
/// 1e9+1 … 1e9+4.
///
/// The mean is kept as an origin (the first value) plus an offset, and
/// values are pushed relative to the origin: a mean near 4.5e15 rounds to
/// a whole unit, and Welford's update multiplies that rounding by each
/// deviation, which cost a relative 1e-12 of the deviation of large
/// durations; relative to the first value, the running mean is as small
/// as the spread and rounds accordingly.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Welford {
    pub n: u64,
    origin: f64,
    offset: f64,
    pub m2: f64,
}

impl Welford {
    /// A state of `n` values with this `mean` and sum of squared
    /// deviations `m2`, as a stored rollup or a server keeps them.
    pub fn from_parts(n: u64, mean: f64, m2: f64) -> Self {
        Welford {
            n,
            origin: mean,
            offset: 0.0,
            m2,
        }
    }

    /// The mean of the values pushed.
    pub fn mean(&self) -> f64 {
        self.origin + self.offset
    }

    pub fn push(&mut self, x: f64) {
        if self.n == 0 {
            self.origin = x;
        }
        self.n += 1;
        let y = x - self.origin;
        let delta = y - self.offset;
        self.offset += delta / self.n as f64;
        self.m2 += delta * (y - self.offset);
    }

    /// Chan's parallel combination of two states.
    pub fn merge(&mut self, other: &Welford) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        let (na, nb) = (self.n as f64, other.n as f64);
        let n = na + nb;
        let delta = (other.origin - self.origin) + (other.offset - self.offset);
        self.offset += delta * nb / n;
        self.m2 += other.m2 + delta * delta * na * nb / n;
        self.n += other.n;
    }

    /// The sample standard deviation; `None` below two values.
    pub fn sample_stddev(&self) -> Option<f64> {
        (self.n >= 2).then(|| (self.m2 / (self.n - 1) as f64).sqrt())
    }
}

/// Two states are equal when they hold the same count, mean and sum of
/// squared deviations, however the mean is split.
impl PartialEq for Welford {
    fn eq(&self, other: &Self) -> bool {
        (self.n, self.mean(), self.m2) == (other.n, other.mean(), other.m2)
    }
}

/// What the file's SQL function `swarm_running` keeps over a column: the
/// Welford state, and the exact sum of its integers (an `i128`, so that no
/// sum of storable values overflows).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Running {
    pub welford: Welford,
    pub int_sum: i128,
}

impl Running {
    /// The state as 40 little-endian bytes: count, mean, M2, integer sum.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40);
        out.extend(self.welford.n.to_le_bytes());
        out.extend(self.welford.mean().to_le_bytes());
        out.extend(self.welford.m2.to_le_bytes());
        out.extend(self.int_sum.to_le_bytes());
        out
    }

    /// The inverse of [`Running::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let part = |i: usize| -> Option<[u8; 8]> { bytes.get(i * 8..i * 8 + 8)?.try_into().ok() };
        Some(Running {
            welford: Welford::from_parts(
                u64::from_le_bytes(part(0)?),
                f64::from_le_bytes(part(1)?),
                f64::from_le_bytes(part(2)?),
            ),
            int_sum: i128::from_le_bytes(bytes.get(24..40)?.try_into().ok()?),
        })
    }
}

/// Count, exact sum, min, max and Welford state of one column, with an
/// optional sketch of its values. Integer columns keep integer sums and
/// extremes, so that they stay exact however many values are merged.
#[derive(Clone)]
pub(crate) struct Stat {
    pub int: bool,
    pub welford: Welford,
    pub sum_int: i128,
    pub sum_real: f64,
    pub min: f64,
    pub max: f64,
    pub min_int: i64,
    pub max_int: i64,
    pub sketch: Option<DDSketch>,
}

impl Stat {
    /// An empty stat of an integer (`int`) or real column, with a sketch
    /// when `with_sketch`.
    pub fn new(int: bool, with_sketch: bool) -> Self {
        Stat {
            int,
            welford: Welford::default(),
            sum_int: 0,
            sum_real: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            min_int: i64::MAX,
            max_int: i64::MIN,
            sketch: with_sketch.then(new_sketch),
        }
    }

    /// How many values the stat holds.
    pub fn count(&self) -> u64 {
        self.welford.n
    }

    pub fn push_int(&mut self, v: i64) {
        self.sum_int += i128::from(v);
        self.min_int = self.min_int.min(v);
        self.max_int = self.max_int.max(v);
        self.push_common(v as f64);
    }

    pub fn push_real(&mut self, v: f64) {
        self.sum_real += v;
        self.push_common(v);
    }

    fn push_common(&mut self, x: f64) {
        self.welford.push(x);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        if let Some(s) = &mut self.sketch {
            s.add(x);
        }
    }

    /// Adds `other`'s values to this stat's. Sketches merge when both
    /// have one; a stat without a sketch takes `other`'s.
    pub fn merge(&mut self, other: &Stat) -> Result<()> {
        if other.count() == 0 {
            return Ok(());
        }
        if self.count() == 0 {
            let sketch = self.sketch.take();
            *self = other.clone();
            if other.sketch.is_none() {
                self.sketch = sketch;
            }
            return Ok(());
        }
        self.welford.merge(&other.welford);
        self.sum_int += other.sum_int;
        self.sum_real += other.sum_real;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.min_int = self.min_int.min(other.min_int);
        self.max_int = self.max_int.max(other.max_int);
        if let (Some(a), Some(b)) = (&mut self.sketch, &other.sketch) {
            a.merge(b).map_err(|e| Error::CorruptRow {
                table: "rollups",
                reason: format!("sketches do not merge: {e:?}"),
            })?;
        }
        Ok(())
    }

    pub fn sum(&self) -> f64 {
        if self.int {
            self.sum_int as f64
        } else {
            self.sum_real
        }
    }

    /// The least (or, when `max`, the greatest) value.
    pub fn extreme(&self, max: bool) -> f64 {
        match (self.int, max) {
            (true, false) => self.min_int as f64,
            (true, true) => self.max_int as f64,
            (false, false) => self.min,
            (false, true) => self.max,
        }
    }
}

/// The `q` quantile (in `[0, 1]`) of `values` by linear interpolation
/// between the closest ranks (numpy's default), in linear time; reorders
/// `values`. `None` for no values.
///
/// ```
/// assert_eq!(swarm_metrics::quantile(&mut [4.0, 1.0, 3.0, 2.0], 0.5), Some(2.5));
/// ```
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let rank = q * (values.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let (_, &mut low, above) = values.select_nth_unstable_by(lo, f64::total_cmp);
    let fraction = rank - lo as f64;
    if fraction == 0.0 || above.is_empty() {
        return Some(low);
    }
    let high = above.iter().copied().fold(f64::INFINITY, f64::min);
    Some(low + (high - low) * fraction)
}

/// A sketch whose configuration equals that of every decoded sketch, so
/// that the two merge.
pub(crate) fn new_sketch() -> DDSketch {
    let empty = DDSketch::new(Config::defaults());
    DDSketch::from_java_bytes(&empty.to_java_bytes()).unwrap_or(empty)
}

/// A sketch as stored in a rollup row.
pub(crate) fn encode_sketch(sketch: &DDSketch) -> Vec<u8> {
    sketch.to_java_bytes()
}

/// The inverse of [`encode_sketch`]; a blob that is not a sketch is a
/// corrupt row of `table`.
pub(crate) fn decode_sketch(bytes: &[u8], table: &'static str) -> Result<DDSketch> {
    DDSketch::from_java_bytes(bytes).map_err(|e| Error::CorruptRow {
        table,
        reason: format!("sketch: {e:?}"),
    })
}

/// The `q` quantile from a sketch, interpolated between the estimates of
/// the two closest ranks as numpy does between exact values, so that the
/// estimate stays within the sketch's relative accuracy of the exact
/// answer.
pub(crate) fn sketch_quantile(sketch: &DDSketch, q: f64) -> Option<f64> {
    let n = sketch.count();
    if n == 0 {
        return None;
    }
    if n == 1 || q <= 0.0 {
        return sketch.min();
    }
    if q >= 1.0 {
        return sketch.max();
    }
    let rank = q * (n - 1) as f64;
    let lo = rank.floor();
    let at = |r: f64| -> Option<f64> {
        if r >= (n - 1) as f64 {
            return sketch.max();
        }
        if r <= 0.0 {
            return sketch.min();
        }
        // The sketch takes the floor of q * (n - 1): aim at the middle of
        // the rank so that rounding cannot land on the one below.
        sketch.quantile((r + 0.5) / (n - 1) as f64).ok().flatten()
    };
    let low = at(lo)?;
    let fraction = rank - lo;
    if fraction == 0.0 {
        return Some(low);
    }
    let high = at(lo + 1.0)?;
    Some(low + (high - low) * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_pass(xs: &[f64]) -> f64 {
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let ss: f64 = xs.iter().map(|x| (x - mean).powi(2)).sum();
        (ss / (xs.len() - 1) as f64).sqrt()
    }

    #[test]
    fn welford_keeps_precision_on_large_offsets() {
        let mut w = Welford::default();
        for x in [1e9 + 1.0, 1e9 + 2.0, 1e9 + 3.0, 1e9 + 4.0] {
            w.push(x);
        }
        let expected = (5.0f64 / 3.0).sqrt();
        assert!((w.sample_stddev().unwrap() - expected).abs() < 1e-12);
        assert!((two_pass(&[1.0, 2.0, 3.0, 4.0]) - expected).abs() < 1e-15);
    }

    #[test]
    fn welford_needs_two_values() {
        let mut w = Welford::default();
        assert_eq!(w.sample_stddev(), None);
        w.push(3.0);
        assert_eq!(w.sample_stddev(), None);
        w.push(3.0);
        assert_eq!(w.sample_stddev(), Some(0.0));
    }

    /// The deviation of whole numbers, from their exact sums.
    fn exact_stddev(xs: &[i64]) -> f64 {
        let n = xs.len() as i128;
        let sum: i128 = xs.iter().map(|&x| i128::from(x)).sum();
        let squares: i128 = xs.iter().map(|&x| i128::from(x) * i128::from(x)).sum();
        ((n * squares - sum * sum) as f64 / (n * (n - 1)) as f64).sqrt()
    }

    #[test]
    fn large_values_keep_their_deviation_to_the_last_digits() {
        // Durations near 2^52 that spread by about 4e11: a mean kept whole
        // rounds to a unit, which cost 1e-12 of the deviation.
        let xs: Vec<i64> = (0..60i64)
            .map(|i| 4_503_599_627_370_496 + (i * 7_919 % 61) * 13_000_000_000 + i * 977)
            .collect();
        let exact = exact_stddev(&xs);
        let mut one = Welford::default();
        xs.iter().for_each(|&x| one.push(x as f64));
        let got = one.sample_stddev().unwrap();
        assert!(
            (got - exact).abs() <= 1e-14 * exact,
            "{got} against {exact}"
        );
        let (mut a, mut b) = (Welford::default(), Welford::default());
        xs[..25].iter().for_each(|&x| a.push(x as f64));
        xs[25..].iter().for_each(|&x| b.push(x as f64));
        a.merge(&b);
        let merged = a.sample_stddev().unwrap();
        assert!(
            (merged - exact).abs() <= 1e-14 * exact,
            "{merged} against {exact}"
        );
        // Two values an odd distance apart, whose mean is a half that a
        // whole-number mean rounds away.
        let pair = [8_000_000_000_000_001, 8_000_544_684_172_124];
        let mut two = Welford::default();
        pair.iter().for_each(|&x| two.push(x as f64));
        let (got, exact) = (two.sample_stddev().unwrap(), exact_stddev(&pair));
        assert!(
            (got - exact).abs() <= 1e-14 * exact,
            "{got} against {exact}"
        );
    }

    #[test]
    fn running_states_survive_their_byte_form() {
        let mut r = Running {
            int_sum: 2 * i128::from(i64::MAX),
            ..Running::default()
        };
        [0.5, 1e300, -3.0].iter().for_each(|x| r.welford.push(*x));
        assert_eq!(Running::from_bytes(&r.to_bytes()), Some(r));
        assert_eq!(Running::from_bytes(&[1, 2, 3]), None);
    }

    #[test]
    fn merged_stats_match_one_pass() {
        let xs = [1e9 + 1.0, 1e9 + 2.0, 1e9 + 3.0, 1e9 + 4.0, 7.0];
        let mut whole = Stat::new(false, true);
        xs.iter().for_each(|x| whole.push_real(*x));
        let (mut a, mut b) = (Stat::new(false, true), Stat::new(false, true));
        xs[..2].iter().for_each(|x| a.push_real(*x));
        xs[2..].iter().for_each(|x| b.push_real(*x));
        a.merge(&b).unwrap();
        assert_eq!(a.count(), 5);
        let (m, w) = (a.welford, whole.welford);
        assert!((m.mean() - w.mean()).abs() <= 1e-6 * w.mean().abs());
        assert!((m.m2 - w.m2).abs() <= 1e-9 * w.m2);
        assert_eq!((a.min, a.max), (whole.min, whole.max));
        assert_eq!(a.sketch.unwrap().count(), 5);
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        // numpy.quantile([1, 2, 3, 4], [0, 0.25, 0.5, 0.95, 1]) =
        // [1, 1.75, 2.5, 3.85, 4]
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        let got: Vec<f64> = [0.0, 0.25, 0.5, 0.95, 1.0]
            .iter()
            .map(|&q| quantile(&mut v, q).unwrap())
            .collect();
        let want = [1.0, 1.75, 2.5, 3.85, 4.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
        assert_eq!(quantile(&mut [7.0], 0.3), Some(7.0));
        assert_eq!(quantile(&mut [], 0.5), None);
    }

    #[test]
    fn fresh_and_decoded_sketches_merge() {
        let mut a = new_sketch();
        a.add(3.0);
        let mut b = decode_sketch(&encode_sketch(&a), "t").unwrap();
        b.merge(&a).unwrap();
        assert_eq!(b.count(), 2);
        assert!(decode_sketch(b"not a sketch", "t").is_err());
    }

    #[test]
    fn sketch_quantiles_stay_within_one_percent() {
        let mut s = new_sketch();
        let values: Vec<f64> = (1..=1000).map(|i| (i * i) as f64).collect();
        values.iter().for_each(|v| s.add(*v));
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0] {
            let exact = quantile(&mut values.clone(), q).unwrap();
            let est = sketch_quantile(&s, q).unwrap();
            assert!(
                (est - exact).abs() <= 0.01 * exact,
                "q {q}: {est} vs {exact}"
            );
        }
    }
}
