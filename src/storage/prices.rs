//! Prices: what each model's tokens cost from a date on, kept in the
//! store so that history keeps the price of its day.

use chrono::{DateTime, Utc};

use crate::engine::on_engine;
use crate::error::{Error, Result};
use crate::model::filter::{from_micros, to_micros};
use crate::model::record::validate_id;
use crate::model::usage::{Price, PriceEntry};
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
