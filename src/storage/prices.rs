//! Prices: what each model's tokens cost from a date on, kept in the
//! store so that history keeps the price of its day.

use chrono::{DateTime, Utc};

use crate::engine::on_engine;
use crate::error::{Error, Result};
use crate::model::filter::{from_micros, to_micros};
use crate::model::pricing::{Price, PriceEntry};
use crate::model::record::validate_id;
use crate::model::usage::RecomputeReport;
use crate::storage::MetricsStorage;

impl MetricsStorage {
    /// Sets `model`'s price from `from` on (until its next price), in USD
    /// per million tokens of each type; a price that starts at the same
    /// instant is replaced. Tasks stored from now on are priced by it;
    /// tasks already stored keep the cost they were stored with.
    ///
    /// ```
    /// use swarm_metrics::{MetricsStorage, Price};
    /// use chrono::{TimeZone, Utc};
    ///
    /// let store = MetricsStorage::temporary()?;
    /// let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    /// let price = Price { input: 2.5, output: 10.0, cache_read: 1.25, cache_write: 0.0 };
    /// store.set_price("gpt-4o", from, price)?;
    /// assert_eq!(store.prices()?[0].price, price);
    /// # Ok::<(), swarm_metrics::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty model or a price that is
    /// negative, not finite or above a million USD per million tokens
    /// (nothing is written); [`Error::ReadOnly`]; [`Error::Sqlite`] or
    /// a server error when the write fails.
    pub fn set_price(&self, model: &str, from: DateTime<Utc>, price: Price) -> Result<()> {
        validate_id("model", model)?;
        let rates = price.rates()?;
        if self.is_read_only() {
            return Err(Error::ReadOnly {
                path: self.path().to_path_buf(),
            });
        }
        on_engine!(self.engine(), set_price(model, to_micros(from), rates))
    }

    /// Sets several prices, as [`set_price`](Self::set_price) does each:
    /// all of them are checked before any is written.
    ///
    /// # Errors
    /// As [`set_price`](Self::set_price), naming the entry at fault.
    pub fn set_prices(&self, entries: &[PriceEntry]) -> Result<()> {
        for (i, entry) in entries.iter().enumerate() {
            validate_id("model", &entry.model)
                .and_then(|()| entry.price.rates())
                .map_err(|e| match e {
                    Error::InvalidInput { field, reason } => Error::InvalidInput {
                        field,
                        reason: format!(
                            "{reason} (price {i}, of {}; nothing was set)",
                            entry.model
                        ),
                    },
                    other => other,
                })?;
        }
        for entry in entries {
            self.set_price(&entry.model, entry.from, entry.price)?;
        }
        Ok(())
    }

    /// Prices again the tasks stored from `since` on, after a price was
    /// set or corrected: each raw task that names a model and has a
    /// breakdown gets the cost of the price in force at its timestamp (or
    /// none, when no price is); bills are kept. Tasks already folded into
    /// rollups keep the cost they were folded with: the report counts
    /// them and their rollups.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; [`Error::InvalidInput`] when a price makes a
    /// task cost more than [`MAX_COST_MICROS`](crate::MAX_COST_MICROS);
    /// [`Error::Sqlite`] or a server error when a write fails (the chunks
    /// written before stay re-priced; running it again is safe).
    pub fn recompute_costs(&self, since: DateTime<Utc>) -> Result<RecomputeReport> {
        if self.is_read_only() {
            return Err(Error::ReadOnly {
                path: self.path().to_path_buf(),
            });
        }
        on_engine!(self.engine(), reprice_since(to_micros(since)))
    }

    /// Every price, by model and start.
    ///
    /// # Errors
    /// [`Error::Sqlite`] when the read fails; [`Error::CorruptRow`] for a
    /// price row no version of this crate writes.
    pub fn prices(&self) -> Result<Vec<PriceEntry>> {
        on_engine!(self.engine(), prices())?
            .into_iter()
            .map(|(model, from, rates)| {
                Ok(PriceEntry {
                    from: from_micros(from).ok_or_else(|| Error::CorruptRow {
                        table: "prices",
                        reason: format!("valid_from {from} out of range"),
                    })?,
                    model,
                    price: rates.price(),
                })
            })
            .collect()
    }
}

/// Reads prices from TOML: one `[[price]]` table each, with `model`, `from`
/// (a date, midnight UTC, or an RFC 3339 instant; quoted or not), and the
/// USD per million tokens `input`, `output` and, when not 0, `cache_read`
/// and `cache_write`:
///
/// ```
/// let prices = swarm_metrics::parse_prices(r#"
///     [[price]]
///     model = "gpt-4o"
///     from = "2026-01-01"
///     input = 2.5
///     output = 10
///     cache_read = 1.25
/// "#)?;
/// assert_eq!(prices[0].price.output, 10.0);
/// # Ok::<(), swarm_metrics::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidInput`] naming the entry and field at fault: TOML that
/// does not parse, an unknown or missing field, a value of the wrong type.
pub fn parse_prices(text: &str) -> Result<Vec<PriceEntry>> {
    let bad = |field: &'static str, reason: String| Error::invalid(field, reason);
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad("prices", e.message().to_owned()))?;
    let mut entries = Vec::new();
    for (key, value) in &table {
        if key != "price" {
            return Err(bad(
                "prices",
                format!("unknown table {key:?}; expected [[price]]"),
            ));
        }
        let Some(list) = value.as_array() else {
            return Err(bad(
                "prices",
                "price must be an array of tables: [[price]]".into(),
            ));
        };
        for (i, item) in list.iter().enumerate() {
            let at = |reason: String| bad("prices", format!("price {i}: {reason}"));
            let Some(fields) = item.as_table() else {
                return Err(at("not a table".into()));
            };
            if let Some(unknown) = fields.keys().find(|k| {
                !matches!(
                    k.as_str(),
                    "model" | "from" | "input" | "output" | "cache_read" | "cache_write"
                )
            }) {
                return Err(at(format!("unknown field {unknown:?}")));
            }
            let number = |name: &str, required: bool| -> Result<f64> {
                match fields.get(name) {
                    Some(toml::Value::Float(x)) => Ok(*x),
                    Some(toml::Value::Integer(n)) => Ok(*n as f64),
                    Some(other) => Err(at(format!("{name} is not a number: {}", other.type_str()))),
                    None if required => Err(at(format!("{name} is missing"))),
                    None => Ok(0.0),
                }
            };
            let model = match fields.get("model") {
                Some(toml::Value::String(m)) => m.clone(),
                _ => return Err(at("model is missing or not a string".into())),
            };
            let from = match fields.get("from") {
                Some(toml::Value::String(s)) => s.clone(),
                Some(toml::Value::Datetime(d)) => d.to_string(),
                _ => return Err(at("from is missing: a date such as \"2026-01-01\"".into())),
            };
            let from = instant(&from).ok_or_else(|| {
                at(format!(
                    "from {from:?} is neither a date (2026-01-01) nor an RFC 3339 instant"
                ))
            })?;
            entries.push(PriceEntry {
                model,
                from,
                price: Price {
                    input: number("input", true)?,
                    output: number("output", true)?,
                    cache_read: number("cache_read", false)?,
                    cache_write: number("cache_write", false)?,
                },
            });
        }
    }
    Ok(entries)
}

/// A date (midnight UTC) or an RFC 3339 instant.
fn instant(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}
