//! Prices on the server: set, and listed. Tasks are priced as they are
//! written, by the statement that writes them (see `write.rs`).

use super::write::price_of_row;
use super::{Columns, PgStore};
use crate::error::{Error, Result};
use crate::model::pricing::Rates;
use crate::model::usage::RecomputeReport;
use crate::rollup::tiers::{DAY_US, HOUR_US};

impl PgStore {
    /// Sets `model`'s price from `from` (µs), replacing one that started
    /// at the same instant.
    pub(crate) fn set_price(&self, model: &str, from: i64, rates: Rates) -> Result<()> {
        let rate = |r: u64| i64::try_from(r).unwrap_or(i64::MAX);
        self.conn()?
            .execute(
                "INSERT INTO prices (model, valid_from, input, output, cache_read, cache_write) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (model, valid_from) DO UPDATE SET input = excluded.input, \
                 output = excluded.output, cache_read = excluded.cache_read, \
                 cache_write = excluded.cache_write",
                &[
                    &model,
                    &from,
                    &rate(rates.input),
                    &rate(rates.output),
                    &rate(rates.cache_read),
                    &rate(rates.cache_write),
                ],
            )
            .map_err(self.error("set price"))?;
        Ok(())
    }

    /// Prices again the raw task rows from `since` (µs) on, in one
    /// statement, and counts the tasks and rollups of the range already
    /// folded.
    pub(crate) fn reprice_since(&self, since: i64) -> Result<RecomputeReport> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(self.error("re-price tasks"))?;
        let repriced = tx
            .query_one(
                concat!(
                    "WITH u AS (UPDATE task_metrics AS i SET cost_micros = ",
                    price_of_row!(),
                    " WHERE i.timestamp >= $1 AND NOT i.cost_billed AND i.model IS NOT NULL \
                      AND i.input_tokens IS NOT NULL RETURNING i.cost_micros) \
                     SELECT count(*), count(*) FILTER (WHERE cost_micros IS NULL) FROM u"
                ),
                &[&since],
            )
            .map_err(self.error("re-price tasks"))?;
        let billed = tx
            .query_one(
                "SELECT count(*) FROM task_metrics WHERE timestamp >= $1 AND cost_billed",
                &[&since],
            )
            .map_err(self.error("re-price tasks"))?;
        let folded = tx
            .query_one(
                "SELECT coalesce(sum(success + failure + timeout + cancelled), 0)::bigint, \
                        count(*) FROM task_summaries \
                 WHERE bucket + CASE level WHEN 1 THEN $2::bigint ELSE $3::bigint END > $1",
                &[&since, &HOUR_US, &DAY_US],
            )
            .map_err(self.error("count folded tasks"))?;
        tx.commit().map_err(self.error("re-price tasks"))?;
        let n = |row: &postgres::Row, i: usize| -> Result<u64> {
            Ok(u64::try_from(row.column::<i64>(i)?).unwrap_or(0))
        };
        Ok(RecomputeReport {
            repriced: n(&repriced, 0)?,
            now_unpriced: n(&repriced, 1)?,
            billed: n(&billed, 0)?,
            folded_tasks: n(&folded, 0)?,
            folded_rollups: n(&folded, 1)?,
        })
    }

    /// Every price, by model and start.
    pub(crate) fn prices(&self) -> Result<Vec<(String, i64, Rates)>> {
        let rows = self
            .read_conn()?
            .query(
                "SELECT model, valid_from, input, output, cache_read, cache_write FROM prices \
                 ORDER BY model, valid_from",
                &[],
            )
            .map_err(self.error("read prices"))?;
        rows.iter().map(price_row).collect()
    }
}

/// A row of `model, valid_from, input, output, cache_read, cache_write`
/// from the `prices` table.
pub(super) fn price_row(row: &postgres::Row) -> Result<(String, i64, Rates)> {
    let rate = |i| -> Result<u64> {
        let v: i64 = row.column(i)?;
        u64::try_from(v).map_err(|_| Error::CorruptRow {
            table: "prices",
            reason: format!("a negative rate {v}"),
        })
    };
    Ok((
        row.column(0)?,
        row.column(1)?,
        Rates {
            input: rate(2)?,
            output: rate(3)?,
            cache_read: rate(4)?,
            cache_write: rate(5)?,
        },
    ))
}
