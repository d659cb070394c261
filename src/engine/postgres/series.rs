//! Time series on PostgreSQL: buckets aligned to multiples of the width
//! since 1970, as on SQLite (`floor(t / width) * width`, also before
//! 1970), each with the answer of the single-number call.

use std::collections::BTreeMap;

use postgres::types::Type;
use sketches_ddsketch::DDSketch;

use super::filter::Where;
use super::read::{aggregate_columns, aggregate_of, rates_by_key};
use super::rollups::{stat_columns, stat_of};
use super::Columns;
use super::PgStore;
use crate::error::Result;
use crate::model::answer::{
    aggregated_column, finish, quantiles_of, Aggregate, Percentile, SuccessRate,
};
use crate::model::filter::Filter;
use crate::model::record::{AggregationType, MetricKind};
use crate::rollup::rolled::RollupRead;
use crate::stats::running::Stat;

/// The SQL of a row's bucket start, with the width in parameter `$w`.
fn bucket_sql(w: usize) -> String {
    format!("(m.timestamp - (((m.timestamp % ${w}) + ${w}) % ${w}))")
}

impl PgStore {
    /// `aggregation` per bucket of `width` µs, buckets with values only.
    pub fn aggregate_series(
        &self,
        kind: MetricKind,
        aggregation: AggregationType,
        width: i64,
        filter: &Filter,
    ) -> Result<Vec<(i64, Aggregate)>> {
        let (column, metric_type) = aggregated_column(kind, filter)?;
        let w = Where::of(kind, filter);
        let bucket = bucket_sql(w.params.len() + 1);
        let mut params = w.params();
        params.push((&width, Type::INT8));
        self.with_rollups(kind, filter, |client, rollups| {
            if rollups {
                let sql = format!(
                    "SELECT {bucket} AS bucket, {} FROM {} m WHERE {} GROUP BY bucket",
                    stat_columns(column),
                    kind.table(),
                    w.clause
                );
                let mut stats: BTreeMap<i64, Stat> = BTreeMap::new();
                for row in client
                    .query_typed(&sql, &params)
                    .map_err(self.error("aggregate series"))?
                {
                    stats.insert(row.column(0)?, stat_of(&row, 1, kind)?);
                }
                let read = RollupRead::column(kind, filter, None, column, false);
                for (start, rolled) in self.merge_rollups_by_time(client, &read, width)? {
                    stats
                        .entry(start)
                        .or_insert_with(|| Stat::new(kind == MetricKind::Task, false))
                        .merge(&rolled.stat)?;
                }
                return Ok(stats
                    .into_iter()
                    .map(|(start, stat)| (start, finish(&stat, aggregation, metric_type)))
                    .collect());
            }
            let sql = format!(
                "SELECT {bucket} AS bucket, {} FROM {} m WHERE {} GROUP BY bucket",
                aggregate_columns(column, aggregation),
                kind.table(),
                w.clause
            );
            client
                .query_typed(&sql, &params)
                .map_err(self.error("aggregate series"))?
                .iter()
                .map(|row| {
                    Ok((
                        row.column(0)?,
                        aggregate_of(row, 1, kind, aggregation, metric_type)?,
                    ))
                })
                .collect()
        })
    }

    /// The `q` quantile per bucket.
    pub fn percentile_series(
        &self,
        kind: MetricKind,
        q: f64,
        width: i64,
        filter: &Filter,
    ) -> Result<Vec<(i64, Percentile)>> {
        let (column, metric_type) = aggregated_column(kind, filter)?;
        let w = Where::of(kind, filter);
        let n = w.params.len();
        let bucket = bucket_sql(n + 1);
        let sql = format!(
            "SELECT {bucket} AS bucket, count(m.{column}), \
                    percentile_cont(${}::float8) WITHIN GROUP (ORDER BY m.{column}::float8) \
             FROM {} m WHERE {} GROUP BY bucket",
            n + 2,
            kind.table(),
            w.clause
        );
        let mut params = w.params();
        params.push((&width, Type::INT8));
        params.push((&q, Type::FLOAT8));
        self.with_rollups(kind, filter, |client, rollups| {
            if rollups {
                let sql = format!(
                    "SELECT {bucket} AS bucket, m.{column}::float8 FROM {} m WHERE {}",
                    kind.table(),
                    w.clause
                );
                let mut buckets: BTreeMap<i64, (Vec<f64>, Option<DDSketch>)> = BTreeMap::new();
                for row in client
                    .query_typed(&sql, &params[..n + 1])
                    .map_err(self.error("percentile series"))?
                {
                    buckets
                        .entry(row.column(0)?)
                        .or_default()
                        .0
                        .extend(row.column::<Option<f64>>(1)?);
                }
                let read = RollupRead::column(kind, filter, None, column, true);
                for (start, rolled) in self.merge_rollups_by_time(client, &read, width)? {
                    let (values, sketch) = buckets.entry(start).or_default();
                    values.extend(rolled.values);
                    *sketch = rolled.sketch;
                }
                return Ok(buckets
                    .into_iter()
                    .map(|(start, (values, sketch))| {
                        let mut values = values;
                        let p = quantiles_of(&mut values, sketch, &[q], metric_type).remove(0);
                        (start, p)
                    })
                    .collect());
            }
            client
                .query_typed(&sql, &params)
                .map_err(self.error("percentile series"))?
                .iter()
                .map(|row| {
                    let percentile = Percentile {
                        q,
                        metric_type,
                        count: u64::try_from(row.column::<i64>(1)?).unwrap_or(0),
                        value: row.column(2)?,
                        approximate: false,
                        unpriced: None,
                    };
                    Ok((row.column(0)?, percentile))
                })
                .collect()
        })
    }

    /// The success rate of tasks per bucket.
    pub fn success_rate_series(
        &self,
        width: i64,
        filter: &Filter,
    ) -> Result<Vec<(i64, SuccessRate)>> {
        let w = Where::of(MetricKind::Task, filter);
        let bucket = bucket_sql(w.params.len() + 1);
        let sql = format!(
            "SELECT {bucket} AS bucket, m.result, count(*) FROM task_metrics m WHERE {} \
             GROUP BY bucket, m.result ORDER BY bucket",
            w.clause
        );
        let mut params = w.params();
        params.push((&width, Type::INT8));
        self.with_rollups(MetricKind::Task, filter, |client, rollups| {
            let rows = client
                .query_typed(&sql, &params)
                .map_err(self.error("success rate series"))?;
            let rates = rates_by_key(&rows, |row| row.column::<i64>(0))?;
            if !rollups {
                return Ok(rates);
            }
            let mut rates: BTreeMap<i64, SuccessRate> = rates.into_iter().collect();
            let read = RollupRead::counts(MetricKind::Task, filter, None);
            for (start, rolled) in self.merge_rollups_by_time(client, &read, width)? {
                let rate = rates.entry(start).or_default();
                for (result, n) in rolled.result_counts() {
                    rate.add(result, n);
                }
            }
            Ok(rates.into_iter().collect())
        })
    }
}
