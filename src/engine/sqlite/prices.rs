//! Prices in the file: written by the writer (which forgets the prices it
//! remembers for pricing stores), read by it to price tasks, and listed.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension};

use crate::engine::sqlite::usage::UsageCell;
use crate::engine::sqlite::{each_row, FileStore};
use crate::error::{Error, Result};
use crate::model::pricing::{Cost, PriceBook, Rates};
use crate::model::usage::RecomputeReport;
use crate::rollup::tiers::{DAY_US, HOUR_US};

/// Task rows one writer job re-prices at most: what a store queued
/// meanwhile waits for.
const REPRICE_CHUNK: i64 = 5_000;

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
/// Loads `model`'s prices into the writer's `book`, once while the book
/// is kept (the writer forgets it when another connection writes).
pub(crate) fn load_prices(conn: &Connection, book: &mut PriceBook, model: &str) -> Result<()> {
    if book.knows(model) {
        return Ok(());
    }
    let prices = read_prices(conn, model)?;
    book.insert(model, prices);
    Ok(())
}

/// Writes `model`'s price from `from` (µs), replacing the one that started
/// then; the writer's `book` forgets every price.
fn write_price(
    conn: &Connection,
    book: &mut PriceBook,
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
    *book = PriceBook::default();
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

/// Re-prices up to [`REPRICE_CHUNK`] task rows after `(timestamp, seq)`
/// `after`; returns what it did and the key of the last row it read, if
/// any.
fn reprice_chunk(
    conn: &Connection,
    book: &mut PriceBook,
    after: (i64, i64),
) -> Result<(RecomputeReport, Option<(i64, i64)>)> {
    let operation = "re-price tasks";
    let mut rows: Vec<(i64, i64, i64, Vec<u8>)> = Vec::new();
    each_row(
        conn,
        "SELECT timestamp, seq, tokens_used, usage FROM task_metrics \
         WHERE (timestamp, seq) > (?1, ?2) AND usage IS NOT NULL \
         ORDER BY timestamp, seq LIMIT ?3",
        vec![after.0.into(), after.1.into(), REPRICE_CHUNK.into()],
        operation,
        |row| {
            let get = |i| row.get::<_, i64>(i).map_err(Error::sqlite(operation));
            let blob: Vec<u8> = row.get(3).map_err(Error::sqlite(operation))?;
            rows.push((get(0)?, get(1)?, get(2)?, blob));
            Ok(())
        },
    )?;
    let last = rows.last().map(|r| (r.0, r.1));
    let mut report = RecomputeReport::default();
    let mut models: HashMap<u64, Option<String>> = HashMap::new();
    for (timestamp, seq, tokens_used, blob) in rows {
        let cell = UsageCell::decode(&blob, u64::try_from(tokens_used).unwrap_or(0))?;
        if cell.cost.is_some_and(|c| c.billed) {
            report.billed += 1;
            continue;
        }
        let Some(split) = cell.split.filter(|_| cell.model != 0) else {
            continue;
        };
        let model = match models.entry(cell.model) {
            Entry::Occupied(known) => known.get().clone(),
            Entry::Vacant(slot) => {
                let name: Option<String> = conn
                    .prepare_cached("SELECT model FROM models WHERE id = ?1")
                    .and_then(|mut s| {
                        s.query_row([i64::try_from(cell.model).unwrap_or(-1)], |r| r.get(0))
                            .optional()
                    })
                    .map_err(Error::sqlite(operation))?;
                slot.insert(name.filter(|m| !m.is_empty())).clone()
            }
        };
        let Some(model) = model else {
            continue;
        };
        load_prices(conn, book, &model)?;
        let cost = match book.rates_at(&model, timestamp) {
            Some(rates) => Some(Cost {
                micros: rates.cost(split).ok_or_else(|| {
                    Error::invalid(
                        "price",
                        format!("the price of {model} makes a task cost more than a task may"),
                    )
                })?,
                billed: false,
            }),
            None => None,
        };
        report.repriced += 1;
        report.now_unpriced += u64::from(cost.is_none());
        if cost != cell.cost {
            let blob = UsageCell { cost, ..cell }.encode();
            conn.prepare_cached(
                "UPDATE task_metrics SET usage = ?1 WHERE timestamp = ?2 AND seq = ?3",
            )
            .and_then(|mut s| s.execute(params![blob, timestamp, seq]))
            .map_err(Error::sqlite(operation))?;
        }
    }
    Ok((report, last))
}

impl FileStore {
    /// Prices again the raw task rows from `since` (µs) on, in chunks, and
    /// counts the tasks and rollups of the range already folded.
    pub(crate) fn reprice_since(&self, since: i64) -> Result<RecomputeReport> {
        let mut report = RecomputeReport::default();
        let mut after = (since, -1);
        loop {
            let (chunk, last) = self
                .writer()?
                .run(move |conn, cache| reprice_chunk(conn, &mut cache.prices, after))?;
            report.repriced += chunk.repriced;
            report.now_unpriced += chunk.now_unpriced;
            report.billed += chunk.billed;
            match last {
                Some(last) => after = last,
                None => break,
            }
        }
        let (tasks, rollups) = self.snapshot(|snapshot| {
            let mut found = (0, 0);
            snapshot.each(
                "SELECT coalesce(sum(success + failure + timeout + cancelled), 0), count(*) \
                 FROM task_summaries \
                 WHERE bucket + CASE level WHEN 1 THEN ?2 ELSE ?3 END > ?1",
                vec![
                    SqlValue::Integer(since),
                    SqlValue::Integer(HOUR_US),
                    SqlValue::Integer(DAY_US),
                ],
                "count folded tasks",
                |row| {
                    let get = |i| {
                        row.get::<_, i64>(i)
                            .map_err(Error::sqlite("count folded tasks"))
                    };
                    found = (get(0)?, get(1)?);
                    Ok(())
                },
            )?;
            Ok(found)
        })?;
        report.folded_tasks = u64::try_from(tasks).unwrap_or(0);
        report.folded_rollups = u64::try_from(rollups).unwrap_or(0);
        Ok(report)
    }

    /// Sets `model`'s price from `from` (µs), replacing one that started
    /// at the same instant.
    pub(crate) fn set_price(&self, model: &str, from: i64, rates: Rates) -> Result<()> {
        let model = model.to_owned();
        self.writer()?
            .run(move |conn, cache| write_price(conn, &mut cache.prices, &model, from, rates))
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
