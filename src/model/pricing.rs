//! Prices and the cost they give: a model's price per million tokens of
//! each type with the instant it takes effect, the rates the stores keep,
//! the book a write prices by, and the cost rule (see [`crate::model::usage`]
//! for the bill that wins over any price).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::usage::{Split, Tokens, Usage, MAX_COST_MICROS, MICROS_PER_USD};

/// The highest price accepted, in USD per million tokens.
const MAX_PRICE_USD: f64 = 1_000_000.0;

/// A model's price in USD per million tokens of each type; kept to a
/// millionth of a dollar per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Input tokens not read from or written to the cache.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Input tokens read from the cache.
    #[serde(default)]
    pub cache_read: f64,
    /// Input tokens written to the cache.
    #[serde(default)]
    pub cache_write: f64,
}

impl Price {
    /// The price as whole micro-dollars per million tokens, checked.
    pub(crate) fn rates(&self) -> Result<Rates> {
        let rate = |field: &'static str, usd: f64| -> Result<u64> {
            if !usd.is_finite() || !(0.0..=MAX_PRICE_USD).contains(&usd) {
                return Err(Error::invalid(
                    field,
                    format!(
                        "a price must lie between 0 and {MAX_PRICE_USD} USD per million \
                         tokens, not {usd}"
                    ),
                ));
            }
            Ok((usd * MICROS_PER_USD as f64).round() as u64)
        };
        Ok(Rates {
            input: rate("input", self.input)?,
            output: rate("output", self.output)?,
            cache_read: rate("cache_read", self.cache_read)?,
            cache_write: rate("cache_write", self.cache_write)?,
        })
    }
}

/// A price as stored: micro-dollars per million tokens (which is
/// pico-dollars per token) of each type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rates {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl Rates {
    /// The price these rates are, in USD per million tokens.
    pub(crate) fn price(self) -> Price {
        let usd = |r: u64| r as f64 / MICROS_PER_USD as f64;
        Price {
            input: usd(self.input),
            output: usd(self.output),
            cache_read: usd(self.cache_read),
            cache_write: usd(self.cache_write),
        }
    }

    /// The cost of `split` at these rates in micro-dollars, rounded half
    /// up; `None` past [`MAX_COST_MICROS`].
    pub(crate) fn cost(self, split: Split) -> Option<u64> {
        let uncached = split.input - split.cache_read - split.cache_write;
        let pico = u128::from(uncached) * u128::from(self.input)
            + u128::from(split.output) * u128::from(self.output)
            + u128::from(split.cache_read) * u128::from(self.cache_read)
            + u128::from(split.cache_write) * u128::from(self.cache_write);
        let micros = (pico + 500_000) / 1_000_000;
        u64::try_from(micros).ok().filter(|&m| m <= MAX_COST_MICROS)
    }
}

/// One model's price from an instant on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceEntry {
    /// The model.
    pub model: String,
    /// From when the price is in force (until the model's next one).
    pub from: DateTime<Utc>,
    /// The price.
    #[serde(flatten)]
    pub price: Price,
}

/// The prices of the models one write prices, each model's oldest first:
/// the one in force at an instant is the last that starts by then.
#[derive(Debug, Default)]
pub(crate) struct PriceBook {
    models: std::collections::HashMap<String, Vec<(i64, Rates)>>,
}

impl PriceBook {
    /// Whether `model`'s prices are loaded.
    pub(crate) fn knows(&self, model: &str) -> bool {
        self.models.contains_key(model)
    }

    /// Adds `model`'s prices, as `(from µs, rates)` oldest first.
    pub(crate) fn insert(&mut self, model: &str, prices: Vec<(i64, Rates)>) {
        self.models.insert(model.to_owned(), prices);
    }

    /// The rates in force for `model` at `at` (µs).
    pub(crate) fn rates_at(&self, model: &str, at: i64) -> Option<Rates> {
        let prices = self.models.get(model)?;
        let after = prices.partition_point(|&(from, _)| from <= at);
        after.checked_sub(1).map(|i| prices[i].1)
    }
}

/// A task's cost as stored: micro-dollars, and whether it is the bill the
/// task came with (a bill is never re-priced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cost {
    pub micros: u64,
    pub billed: bool,
}

/// The cost of a task with `usage` resolved to `tokens`, stamped `at` (µs),
/// by the prices in `book`; `None` when it has none.
///
/// # Errors
/// [`Error::InvalidInput`] when its price makes a cost above
/// [`MAX_COST_MICROS`].
pub(crate) fn cost_of(
    usage: &Usage,
    tokens: Tokens,
    at: i64,
    book: &PriceBook,
) -> Result<Option<Cost>> {
    if let Some(micros) = usage.billed_micros()? {
        return Ok(Some(Cost {
            micros,
            billed: true,
        }));
    }
    let (Some(model), Some(split)) = (usage.priced_model(tokens), tokens.split) else {
        return Ok(None);
    };
    let Some(rates) = book.rates_at(model, at) else {
        return Ok(None);
    };
    match rates.cost(split) {
        Some(micros) => Ok(Some(Cost {
            micros,
            billed: false,
        })),
        None => Err(Error::invalid(
            "input_tokens",
            format!(
                "at the price of {model} these tokens cost more than the largest cost a task \
                 may carry ({} USD)",
                MAX_COST_MICROS / MICROS_PER_USD
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_price_costs_each_token_type_rounded_once() {
        let rates = Price {
            input: 3.0,
            output: 15.0,
            cache_read: 0.3,
            cache_write: 3.75,
        }
        .rates()
        .unwrap();
        // 1,000 uncached input at 3 µ$, 500 output at 15, 2,000 cache reads
        // at 0.3, 100 cache writes at 3.75.
        let s = Split {
            input: 3_100,
            output: 500,
            cache_read: 2_000,
            cache_write: 100,
        };
        assert_eq!(rates.cost(s), Some(3_000 + 7_500 + 600 + 375));
        // Half a micro-dollar rounds up, less rounds down.
        let half = Price {
            input: 0.5,
            ..Price::default()
        }
        .rates()
        .unwrap();
        assert_eq!(
            half.cost(Split {
                input: 1,
                output: 0,
                cache_read: 0,
                cache_write: 0
            }),
            Some(1)
        );
        let less = Price {
            input: 0.499_999,
            ..Price::default()
        }
        .rates()
        .unwrap();
        assert_eq!(
            less.cost(Split {
                input: 1,
                output: 0,
                cache_read: 0,
                cache_write: 0
            }),
            Some(0)
        );
        assert!(Price {
            input: -1.0,
            ..Price::default()
        }
        .rates()
        .is_err());
        assert!(Price {
            output: f64::INFINITY,
            ..Price::default()
        }
        .rates()
        .is_err());
    }

    #[test]
    fn the_price_in_force_is_the_last_that_started() {
        let rates = |n| Rates {
            input: n,
            output: 0,
            cache_read: 0,
            cache_write: 0,
        };
        let mut book = PriceBook::default();
        book.insert("m", vec![(100, rates(1)), (200, rates(2))]);
        assert_eq!(book.rates_at("m", 99), None);
        assert_eq!(book.rates_at("m", 100), Some(rates(1)));
        assert_eq!(book.rates_at("m", 199), Some(rates(1)));
        assert_eq!(book.rates_at("m", 200), Some(rates(2)));
        assert_eq!(book.rates_at("other", 200), None);
        let usage = Usage::new().model("m").input(1_000_000);
        let tokens = usage.resolve(0).unwrap();
        assert_eq!(
            cost_of(&usage, tokens, 150, &book).unwrap(),
            Some(Cost {
                micros: 1,
                billed: false
            })
        );
        assert_eq!(cost_of(&usage, tokens, 50, &book).unwrap(), None);
        let billed = usage.clone().cost(0.25);
        assert_eq!(
            cost_of(&billed, tokens, 50, &book).unwrap(),
            Some(Cost {
                micros: 250_000,
                billed: true
            })
        );
    }
}
