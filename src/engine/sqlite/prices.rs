//! Prices in the file: written by the writer (which forgets the prices it
//! remembers for pricing stores), read by it to price tasks, and listed.

use rusqlite::{params, Connection};

use crate::engine::sqlite::rows::Cache;
use crate::engine::sqlite::FileStore;
use crate::error::{Error, Result};
use crate::model::usage::{PriceBook, Rates};

/// `model`'s prices, oldest first.
pub(crate) fn read_prices(conn: &Connection, model: &str) -> Result<Vec<(i64, Rates)>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT model, valid_from, input, output, cache_read, cache_write FROM prices \
             WHERE model = ?1 ORDER BY valid_from",
        )
        .map_err(Error::sqlite("read prices"))?;
    let mut rows = stmt.query([model]).map_err(Error::sqlite("read prices"))?;
    let mut prices = Vec::new();
    while let Some(row) = rows.next().map_err(Error::sqlite("read prices"))? {
        let (_, from, rates) = price_row(row)?;
        prices.push((from, rates));
    }
    Ok(prices)
}
/// Writes `model`'s price from `from` (µs), replacing the one that started
/// then; the writer's book forgets the model's prices.
pub(crate) fn write_price(
    conn: &Connection,
    cache: &mut Cache,
    model: &str,
    from: i64,
    rates: Rates,
) -> Result<()> {
    let rate = |r: u64| i64::try_from(r).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO prices (model, valid_from, input, output, cache_read, cache_write) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (model, valid_from) DO UPDATE SET input = excluded.input, \
         output = excluded.output, cache_read = excluded.cache_read, \
         cache_write = excluded.cache_write",
    )
    .and_then(|mut s| {
        s.execute(params![
            model,
            from,
            rate(rates.input),
            rate(rates.output),
            rate(rates.cache_read),
            rate(rates.cache_write)
        ])
    })
    .map_err(Error::sqlite("set price"))?;
    cache.prices = PriceBook::default();
    Ok(())
}

/// A price row: model, valid_from, then the four rates.
fn price_row(r: &rusqlite::Row<'_>) -> Result<(String, i64, Rates)> {
    let corrupt = |e: rusqlite::Error| Error::CorruptRow {
        table: "prices",
        reason: e.to_string(),
    };
    let rate = |i| -> Result<u64> {
        let v: i64 = r.get(i).map_err(corrupt)?;
        u64::try_from(v).map_err(|_| Error::CorruptRow {
            table: "prices",
            reason: format!("a negative rate {v}"),
        })
    };
    Ok((
        r.get(0).map_err(corrupt)?,
        r.get(1).map_err(corrupt)?,
        Rates {
            input: rate(2)?,
            output: rate(3)?,
            cache_read: rate(4)?,
            cache_write: rate(5)?,
        },
    ))
}

impl FileStore {
    /// Sets `model`'s price from `from` (µs), replacing one that started
    /// at the same instant.
    pub(crate) fn set_price(&self, model: &str, from: i64, rates: Rates) -> Result<()> {
        let model = model.to_owned();
        self.writer()?
            .run(move |conn, cache| write_price(conn, cache, &model, from, rates))
    }

    /// Every price, by model and start.
    pub(crate) fn prices(&self) -> Result<Vec<(String, i64, Rates)>> {
        self.snapshot(|snapshot| {
            snapshot.rows(
                "SELECT model, valid_from, input, output, cache_read, cache_write FROM prices \
                 ORDER BY model, valid_from",
                Vec::new(),
                "read prices",
                price_row,
            )
        })
    }
}
