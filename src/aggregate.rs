//! Aggregates and success rates.

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::query::Filter;
use crate::record::{AggregationType, MetricKind, MetricType, TaskResult};
use crate::rollup::{rollup_result_counts, rollup_stat, rollup_where, sketch_quantile, Stat};
use crate::storage::MetricsStorage;

/// The result of [`MetricsStorage::aggregate_metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// How the values were combined.
    pub aggregation: AggregationType,
    /// What was aggregated: for task metrics the column (`task_duration`,
    /// `task_tokens` or `task_files`); for agent and swarm metrics the
    /// metric type filtered on, if any.
    pub metric_type: Option<MetricType>,
    /// How many values the selection held.
    pub count: u64,
    /// The aggregate; `None` when the selection is empty (and, for
    /// `stddev`, when it holds a single value).
    pub value: Option<f64>,
}

/// The result of [`MetricsStorage::percentile`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentile {
    /// The quantile asked for, in `[0, 1]` (0.95 for p95).
    pub q: f64,
    /// What was measured, as in [`Aggregate::metric_type`].
    pub metric_type: Option<MetricType>,
    /// How many values the selection held.
    pub count: u64,
    /// The quantile; `None` when the selection is empty.
    pub value: Option<f64>,
    /// True when part of the selection was read from rollups, whose
    /// sketches answer within 1% of the exact quantile.
    #[serde(default)]
    pub approximate: bool,
}

/// The outcome counts of a set of tasks and the share that succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct SuccessRate {
    /// `success / total`, in `[0, 1]`; `None` when there were no tasks.
    pub rate: Option<f64>,
    /// Tasks that succeeded.
    pub success: u64,
    /// Tasks that failed.
    pub failure: u64,
    /// Tasks that timed out.
    pub timeout: u64,
    /// Tasks that were cancelled.
    pub cancelled: u64,
    /// All tasks.
    pub total: u64,
}

impl SuccessRate {
    /// Adds `n` tasks with `result` and updates the rate.
    pub fn add(&mut self, result: TaskResult, n: u64) {
        match result {
            TaskResult::Success => self.success += n,
            TaskResult::Failure => self.failure += n,
            TaskResult::Timeout => self.timeout += n,
            TaskResult::Cancelled => self.cancelled += n,
        }
        self.total += n;
        self.rate = (self.total > 0).then(|| self.success as f64 / self.total as f64);
    }
}

impl MetricsStorage {
    /// Combines the values of the metrics of `kind` that match `filter`.
    ///
    /// Task metrics aggregate `duration_ms` unless `filter.metric_type`
    /// names another column (`task_tokens`, `task_files`); agent and swarm
    /// metrics aggregate `value`, of the metric type in the filter if any.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a filter field that does not apply to
    /// `kind`, or `task_result` (not numeric: see
    /// [`success_rate`](Self::success_rate)); [`Error::Sqlite`] or
    /// [`Error::Pool`] when the read fails.
    pub fn aggregate_metrics(
        &self,
        kind: MetricKind,
        aggregation: AggregationType,
        filter: &Filter,
    ) -> Result<Aggregate> {
        filter.validate(kind, true)?;
        let (column, metric_type) = aggregated_column(kind, filter.metric_type)?;
        if self.has_rollups(kind)? && rollup_where(filter, kind).is_some() {
            return self.aggregate_with_rollups(kind, aggregation, column, metric_type, filter);
        }
        let run = |function: &str| -> Result<(u64, Option<f64>)> {
            let (sql, params) = aggregate_sql(kind, function, filter)?;
            let rows = self.read_rows(&sql, params, "aggregate metrics", |row| {
                let count: i64 = row.get(0).map_err(Error::sqlite("aggregate metrics"))?;
                let value: Option<f64> = row.get(1).map_err(Error::sqlite("aggregate metrics"))?;
                Ok((u64::try_from(count).unwrap_or(0), value))
            })?;
            Ok(rows.into_iter().next().unwrap_or((0, None)))
        };
        let function = sql_function(aggregation);
        let (count, value) = match run(function) {
            // sum() of integers fails rather than overflow; total() sums
            // in floating point instead.
            Err(Error::Sqlite { source, .. })
                if aggregation == AggregationType::Sum
                    && source.to_string().contains("integer overflow") =>
            {
                run("total")?
            }
            other => other?,
        };
        Ok(Aggregate {
            aggregation,
            metric_type,
            count,
            value: if count == 0 { None } else { value },
        })
    }

    /// `aggregate_metrics` over raw rows and the rollups the filter
    /// covers: counts, sums, extremes and Welford states merge exactly.
    fn aggregate_with_rollups(
        &self,
        kind: MetricKind,
        aggregation: AggregationType,
        column: &str,
        metric_type: Option<MetricType>,
        filter: &Filter,
    ) -> Result<Aggregate> {
        let int = kind == MetricKind::Task;
        let (from, params) = filter.sql_from(kind);
        let sql = format!("SELECT {} FROM {from}", raw_stat_columns(column, int));
        let mut stat = Stat::new(int, false);
        self.read_each(&sql, params, "aggregate metrics", |row| {
            stat = raw_stat(row, 0, int)?;
            Ok(())
        })?;
        let prefix = rollup_prefix(column);
        stat.merge(&rollup_stat(self, kind, prefix, int, filter, false)?)?;
        Ok(finish(&stat, aggregation, metric_type))
    }

    /// The `q` quantile (0.5 for the median, 0.95 for p95) of the values
    /// [`aggregate_metrics`](Self::aggregate_metrics) would combine, exact
    /// on the raw data.
    ///
    /// Uses numpy's default definition: with the `n` values sorted, the
    /// quantile lies at rank `q * (n - 1)`, interpolated linearly between
    /// the two closest ranks.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `q` outside `[0, 1]` (or NaN), and as
    /// [`aggregate_metrics`](Self::aggregate_metrics).
    pub fn percentile(&self, kind: MetricKind, q: f64, filter: &Filter) -> Result<Percentile> {
        Ok(self.percentiles(kind, &[q], filter)?[0])
    }

    /// Several quantiles of the same selection, read once; see
    /// [`percentile`](Self::percentile).
    ///
    /// # Errors
    /// As [`percentile`](Self::percentile); also for an empty `qs`.
    pub fn percentiles(
        &self,
        kind: MetricKind,
        qs: &[f64],
        filter: &Filter,
    ) -> Result<Vec<Percentile>> {
        if qs.is_empty() {
            return Err(Error::invalid("q", "at least one quantile is needed"));
        }
        for &q in qs {
            if !(0.0..=1.0).contains(&q) {
                return Err(Error::invalid("q", format!("must lie in [0, 1], got {q}")));
            }
        }
        filter.validate(kind, true)?;
        let (column, metric_type) = aggregated_column(kind, filter.metric_type)?;
        let (sql, params) = percentile_sql(kind, filter)?;
        let mut values = self.read_rows(&sql, params, "compute percentile", |row| {
            match row
                .get_ref(0)
                .map_err(Error::sqlite("compute percentile"))?
            {
                rusqlite::types::ValueRef::Integer(i) => Ok(i as f64),
                rusqlite::types::ValueRef::Real(x) => Ok(x),
                other => Err(Error::CorruptRow {
                    table: kind.table(),
                    reason: format!("{column} holds {:?}", other.data_type()),
                }),
            }
        })?;
        if self.has_rollups(kind)? && rollup_where(filter, kind).is_some() {
            let rolled = rollup_stat(
                self,
                kind,
                rollup_prefix(column),
                kind == MetricKind::Task,
                filter,
                true,
            )?;
            if rolled.count > 0 {
                let mut sketch = rolled.sketch.ok_or_else(|| Error::CorruptRow {
                    table: "rollups",
                    reason: "rollup without a sketch".to_owned(),
                })?;
                for v in &values {
                    sketch.add(*v);
                }
                let count = sketch.count() as u64;
                return Ok(qs
                    .iter()
                    .map(|&q| Percentile {
                        q,
                        metric_type,
                        count,
                        value: sketch_quantile(&sketch, q),
                        approximate: true,
                    })
                    .collect());
            }
        }
        Ok(qs
            .iter()
            .map(|&q| Percentile {
                q,
                metric_type,
                count: values.len() as u64,
                value: quantile(&mut values, q),
                approximate: false,
            })
            .collect())
    }

    /// The share of successful tasks among the tasks matching `filter`
    /// (typically an agent or a swarm and a time range), with the counts
    /// behind it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a filter field that does not apply to
    /// task metrics; [`Error::Sqlite`] or [`Error::Pool`] when the read
    /// fails.
    pub fn success_rate(&self, filter: &Filter) -> Result<SuccessRate> {
        filter.validate(MetricKind::Task, false)?;
        let (sql, params) = success_rate_sql(filter);
        let rows = self.read_rows(&sql, params, "compute success rate", |row| {
            TaskResult::ALL
                .iter()
                .enumerate()
                .map(|(i, result)| {
                    let n: i64 = row.get(i).map_err(Error::sqlite("compute success rate"))?;
                    Ok((*result, u64::try_from(n).unwrap_or(0)))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let mut rate = SuccessRate::default();
        for (result, n) in rows.into_iter().flatten() {
            rate.add(result, n);
        }
        if self.has_rollups(MetricKind::Task)? {
            for (code, n) in rollup_result_counts(self, filter)? {
                let result = TaskResult::from_code(code).ok_or_else(|| Error::CorruptRow {
                    table: "task_rollups",
                    reason: format!("unknown result code {code}"),
                })?;
                rate.add(result, n);
            }
        }
        Ok(rate)
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

/// The SQL aggregate function computing `aggregation`.
pub(crate) fn sql_function(aggregation: AggregationType) -> &'static str {
    match aggregation {
        AggregationType::Avg => "avg",
        AggregationType::Sum => "sum",
        AggregationType::Count => "count",
        AggregationType::Min => "min",
        AggregationType::Max => "max",
        AggregationType::Stddev => STDDEV_FUNCTION,
    }
}

/// The query behind `aggregate_metrics`: the count and `function` of the
/// aggregated column over the rows matching `filter`.
pub(crate) fn aggregate_sql(
    kind: MetricKind,
    function: &str,
    filter: &Filter,
) -> Result<(String, Vec<SqlValue>)> {
    let (column, _) = aggregated_column(kind, filter.metric_type)?;
    let (from, params) = filter.sql_from(kind);
    let sql = format!("SELECT count(m.{column}), {function}(m.{column}) FROM {from}");
    Ok((sql, params))
}

/// The query behind `percentile`: the values to rank.
pub(crate) fn percentile_sql(kind: MetricKind, filter: &Filter) -> Result<(String, Vec<SqlValue>)> {
    let (column, _) = aggregated_column(kind, filter.metric_type)?;
    let (from, params) = filter.sql_from(kind);
    let sql = format!("SELECT m.{column} FROM {from}");
    Ok((sql, params))
}

/// The query behind `success_rate`: the task counts of each result, in
/// code order, read in one pass (a `GROUP BY` would sort).
pub(crate) fn success_rate_sql(filter: &Filter) -> (String, Vec<SqlValue>) {
    let (from, params) = filter.sql_from(MetricKind::Task);
    let counts: Vec<String> = TaskResult::ALL
        .iter()
        .map(|r| format!("count(*) FILTER (WHERE m.result = {})", r.code()))
        .collect();
    let sql = format!("SELECT {} FROM {from}", counts.join(", "));
    (sql, params)
}

/// The select list reading a raw column's stat (see [`raw_stat`]).
pub(crate) fn raw_stat_columns(column: &str, int: bool) -> String {
    let sum = if int { "sum" } else { "total" };
    format!(
        "count(m.{column}), {sum}(m.{column}), min(m.{column}), max(m.{column}), \
         {WELFORD_FUNCTION}(m.{column})"
    )
}

/// The stat read by [`raw_stat_columns`], from column `at` on.
pub(crate) fn raw_stat(row: &rusqlite::Row<'_>, at: usize, int: bool) -> Result<Stat> {
    let get_err = || Error::sqlite("aggregate metrics");
    let mut stat = Stat::new(int, false);
    let bytes: Vec<u8> = row.get(at + 4).map_err(get_err())?;
    let welford = Welford::from_bytes(&bytes).unwrap_or_default();
    stat.count = welford.n;
    if stat.count == 0 {
        return Ok(stat);
    }
    stat.mean = welford.mean;
    stat.m2 = welford.m2;
    if int {
        stat.sum_int = i128::from(row.get::<_, i64>(at + 1).map_err(get_err())?);
        stat.min_int = row.get(at + 2).map_err(get_err())?;
        stat.max_int = row.get(at + 3).map_err(get_err())?;
    } else {
        stat.sum_real = row.get(at + 1).map_err(get_err())?;
        stat.min = row.get(at + 2).map_err(get_err())?;
        stat.max = row.get(at + 3).map_err(get_err())?;
    }
    Ok(stat)
}

/// `aggregation` of a merged stat.
pub(crate) fn finish(
    stat: &Stat,
    aggregation: AggregationType,
    metric_type: Option<MetricType>,
) -> Aggregate {
    let value = (stat.count > 0)
        .then(|| match aggregation {
            AggregationType::Avg => Some(stat.sum() / stat.count as f64),
            AggregationType::Sum => Some(stat.sum()),
            AggregationType::Count => Some(stat.count as f64),
            AggregationType::Min => Some(stat.extreme(false)),
            AggregationType::Max => Some(stat.extreme(true)),
            AggregationType::Stddev => {
                (stat.count >= 2).then(|| (stat.m2 / (stat.count - 1) as f64).sqrt())
            }
        })
        .flatten();
    Aggregate {
        aggregation,
        metric_type,
        count: stat.count,
        value,
    }
}

/// The rollup column prefix of a raw column.
pub(crate) fn rollup_prefix(column: &str) -> &'static str {
    match column {
        "duration_ms" => "duration",
        "tokens_used" => "tokens",
        "files_changed" => "files",
        _ => "value",
    }
}

/// The column aggregated for `kind`, and the metric type the result names.
pub(crate) fn aggregated_column(
    kind: MetricKind,
    metric_type: Option<MetricType>,
) -> Result<(&'static str, Option<MetricType>)> {
    if kind != MetricKind::Task {
        return Ok(("value", metric_type));
    }
    match metric_type.unwrap_or(MetricType::TaskDuration) {
        MetricType::TaskDuration => Ok(("duration_ms", Some(MetricType::TaskDuration))),
        MetricType::TaskTokens => Ok(("tokens_used", Some(MetricType::TaskTokens))),
        MetricType::TaskFiles => Ok(("files_changed", Some(MetricType::TaskFiles))),
        other => Err(Error::invalid(
            "metric_type",
            format!(
                "{other} cannot be aggregated; use task_duration, task_tokens or task_files \
                 (success rates come from success_rate)"
            ),
        )),
    }
}

/// The SQL name of the sample standard deviation aggregate.
const STDDEV_FUNCTION: &str = "swarm_stddev_samp";

/// Registers the SQL functions the queries use on one connection.
pub(crate) fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_aggregate_function(STDDEV_FUNCTION, 1, flags, SampleStddev)?;
    conn.create_aggregate_function(WELFORD_FUNCTION, 1, flags, WelfordState)
}

/// The SQL name of the aggregate returning a Welford state (for merging
/// raw rows with rollups).
const WELFORD_FUNCTION: &str = "swarm_welford";

struct WelfordState;

impl rusqlite::functions::Aggregate<Welford, Vec<u8>> for WelfordState {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<Welford> {
        Ok(Welford::default())
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut Welford) -> rusqlite::Result<()> {
        SampleStddev.step(ctx, acc)
    }

    fn finalize(&self, _: &mut Context<'_>, acc: Option<Welford>) -> rusqlite::Result<Vec<u8>> {
        Ok(acc.unwrap_or_default().to_bytes())
    }
}

/// Running mean and sum of squared deviations (Welford): stable where the
/// textbook `sqrt((Σx² - (Σx)²/n) / (n-1))` cancels to nothing, e.g. for
/// 1e9+1 … 1e9+4.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Welford {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Welford {
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// The state as 24 bytes: count, mean, M2 (little-endian).
    pub fn to_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        out.extend(self.n.to_le_bytes());
        out.extend(self.mean.to_le_bytes());
        out.extend(self.m2.to_le_bytes());
        out
    }

    /// The inverse of [`Welford::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let part = |i: usize| -> Option<[u8; 8]> { bytes.get(i * 8..i * 8 + 8)?.try_into().ok() };
        Some(Welford {
            n: u64::from_le_bytes(part(0)?),
            mean: f64::from_le_bytes(part(1)?),
            m2: f64::from_le_bytes(part(2)?),
        })
    }

    /// The sample standard deviation; `None` below two values.
    pub fn sample_stddev(&self) -> Option<f64> {
        (self.n >= 2).then(|| (self.m2 / (self.n - 1) as f64).sqrt())
    }
}

struct SampleStddev;

impl rusqlite::functions::Aggregate<Welford, Option<f64>> for SampleStddev {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<Welford> {
        Ok(Welford::default())
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut Welford) -> rusqlite::Result<()> {
        match ctx.get_raw(0) {
            rusqlite::types::ValueRef::Integer(i) => acc.push(i as f64),
            rusqlite::types::ValueRef::Real(x) => acc.push(x),
            _ => {}
        }
        Ok(())
    }

    fn finalize(&self, _: &mut Context<'_>, acc: Option<Welford>) -> rusqlite::Result<Option<f64>> {
        Ok(acc.and_then(|a| a.sample_stddev()))
    }
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
    fn success_rate_counts_add_up() {
        let mut r = SuccessRate::default();
        assert_eq!(r.rate, None);
        r.add(TaskResult::Success, 3);
        r.add(TaskResult::Timeout, 1);
        assert_eq!((r.total, r.success, r.timeout), (4, 3, 1));
        assert_eq!(r.rate, Some(0.75));
    }
}
