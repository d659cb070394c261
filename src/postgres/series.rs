//! Time series on PostgreSQL: buckets aligned to multiples of the width
//! since 1970, as on SQLite (`floor(t / width) * width`, also before
//! 1970), each with the answer of the single-number call.

use super::read::{aggregate_columns, aggregate_of, rates_by_key, table_of, Where};
use super::PgStore;
use crate::answer::{aggregated_column, Aggregate, Percentile, SuccessRate};
use crate::error::Result;
use crate::query::Filter;
use crate::record::{AggregationType, MetricKind};

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
        let sql = format!(
            "SELECT {bucket} AS bucket, {} FROM {} m WHERE {} GROUP BY bucket",
            aggregate_columns(column, aggregation),
            table_of(kind),
            w.clause
        );
        let mut params = w.params();
        params.push(&width);
        self.read_conn()?
            .query(&sql, &params)
            .map_err(self.error("aggregate series"))?
            .iter()
            .map(|row| {
                Ok((
                    row.get(0),
                    aggregate_of(row, 1, kind, aggregation, metric_type)?,
                ))
            })
            .collect()
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
            table_of(kind),
            w.clause
        );
        let mut params = w.params();
        params.push(&width);
        params.push(&q);
        Ok(self
            .read_conn()?
            .query(&sql, &params)
            .map_err(self.error("percentile series"))?
            .iter()
            .map(|row| {
                let percentile = Percentile {
                    q,
                    metric_type,
                    count: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                    value: row.get(2),
                    approximate: false,
                };
                (row.get(0), percentile)
            })
            .collect())
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
        params.push(&width);
        let rows = self
            .read_conn()?
            .query(&sql, &params)
            .map_err(self.error("success rate series"))?;
        rates_by_key(&rows, |row| Ok(row.get::<_, i64>(0)))
    }
}
