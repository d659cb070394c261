//! Prices on the server: set, and listed. Tasks are priced as they are
//! written, by the statement that writes them (see `write.rs`).

use super::{Columns, PgStore};
use crate::error::{Error, Result};
use crate::model::usage::Rates;

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
        rows.iter()
            .map(|row| {
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
            })
            .collect()
    }
}
