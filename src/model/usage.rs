//! What a task's model calls used and cost: tokens by type, the model and
//! its provider, the bill; the rule that ties the breakdown to
//! `tokens_used`. Prices and the cost a price gives are in
//! [`crate::model::pricing`].
//!
//! **The token rule.** `tokens_used` is the task's total, and a breakdown,
//! when given, splits it: `tokens_used = input_tokens + output_tokens`.
//! Cache reads and writes are part of the input, as the OpenTelemetry
//! GenAI conventions count them (`gen_ai.usage.input_tokens` includes
//! cached tokens), so `cache_read_tokens + cache_write_tokens` may not
//! exceed `input_tokens`. Whatever part of the rule is missing is
//! completed from the rest (`tokens_used` 0 counts as not given): input
//! and output give the total; the total and one side give the other; one
//! side alone gives the total, the other side being 0. A record whose
//! parts contradict each other is refused whole, as are cache counts
//! without the input they are part of.
//!
//! **Cost.** A task's cost is kept as a whole number of micro-dollars, so
//! that sums are exact: its own `cost_usd` when given (the provider's bill
//! wins), rounded to the micro-dollar; else, when it names a model with a
//! price in force at its timestamp and has a breakdown, the price of each
//! token type times its count, rounded half up once per task. Otherwise it
//! has no cost, and answers count it as unpriced.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::checks::{validate_count, validate_id};

/// The largest cost a task may carry, in micro-dollars (a billion
/// dollars): far beyond any real bill, and small enough that the sum of
/// every task a store can hold fits an `i64` many times over per bucket.
pub const MAX_COST_MICROS: u64 = 1_000_000_000 * MICROS_PER_USD;

/// Micro-dollars in a dollar.
pub(crate) const MICROS_PER_USD: u64 = 1_000_000;

/// What a task's model calls used and cost; every field optional. See the
/// module documentation of `usage` for how the counts relate to
/// [`TaskMetric::tokens_used`](crate::TaskMetric::tokens_used).
///
/// Read back from a store, a task with a breakdown has all four counts
/// (the ones not given completed by the rule), and `cost_usd` is the
/// task's cost: its bill, or its price when it was stored or last
/// re-priced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Tokens sent to the model, cache reads and writes included.
    pub input_tokens: Option<u64>,
    /// Tokens the model produced.
    pub output_tokens: Option<u64>,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read_tokens: Option<u64>,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write_tokens: Option<u64>,
    /// The model that ran the task (as prices name it).
    pub model: Option<String>,
    /// The provider that served the model.
    pub provider: Option<String>,
    /// What the provider billed, in USD; wins over any price.
    pub cost_usd: Option<f64>,
}

impl Usage {
    /// No usage.
    pub fn new() -> Self {
        Usage::default()
    }

    /// Sets the input tokens (cache reads and writes included).
    pub fn input(mut self, tokens: u64) -> Self {
        self.input_tokens = Some(tokens);
        self
    }

    /// Sets the output tokens.
    pub fn output(mut self, tokens: u64) -> Self {
        self.output_tokens = Some(tokens);
        self
    }

    /// Sets the input tokens read from the prompt cache.
    pub fn cache_read(mut self, tokens: u64) -> Self {
        self.cache_read_tokens = Some(tokens);
        self
    }

    /// Sets the input tokens written to the prompt cache.
    pub fn cache_write(mut self, tokens: u64) -> Self {
        self.cache_write_tokens = Some(tokens);
        self
    }

    /// Sets the model.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Sets the provider.
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// Sets the billed cost in USD.
    pub fn cost(mut self, usd: f64) -> Self {
        self.cost_usd = Some(usd);
        self
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }

    /// The model whose price sets the cost of a task of this usage
    /// resolved to `tokens`: none when it is billed or has no breakdown.
    pub(crate) fn priced_model(&self, tokens: Tokens) -> Option<&str> {
        match (&self.cost_usd, tokens.split) {
            (None, Some(_)) => self.model.as_deref(),
            _ => None,
        }
    }

    /// The bill in micro-dollars, checked.
    pub(crate) fn billed_micros(&self) -> Result<Option<u64>> {
        let Some(usd) = self.cost_usd else {
            return Ok(None);
        };
        if !usd.is_finite() || usd < 0.0 {
            return Err(Error::invalid(
                "cost_usd",
                format!("must be a finite amount not below 0, not {usd}"),
            ));
        }
        let micros = (usd * MICROS_PER_USD as f64).round();
        if micros > MAX_COST_MICROS as f64 {
            return Err(Error::invalid(
                "cost_usd",
                format!(
                    "{usd} is more than the largest cost a task may carry ({} USD)",
                    MAX_COST_MICROS / MICROS_PER_USD
                ),
            ));
        }
        Ok(Some(micros as u64))
    }

    /// Checks every field against the task's `tokens_used` and resolves
    /// the counts by the token rule: the total to store, and the
    /// breakdown if there is one.
    pub(crate) fn resolve(&self, tokens_used: u64) -> Result<Tokens> {
        for (field, value) in [
            ("input_tokens", self.input_tokens),
            ("output_tokens", self.output_tokens),
            ("cache_read_tokens", self.cache_read_tokens),
            ("cache_write_tokens", self.cache_write_tokens),
        ] {
            if let Some(n) = value {
                validate_count(field, n)?;
            }
        }
        if let Some(model) = &self.model {
            validate_id("model", model)?;
        }
        if let Some(provider) = &self.provider {
            validate_id("provider", provider)?;
        }
        self.billed_micros()?;
        let cache_read = self.cache_read_tokens.unwrap_or(0);
        let cache_write = self.cache_write_tokens.unwrap_or(0);
        let given = (tokens_used != 0).then_some(tokens_used);
        let (input, output) = match (self.input_tokens, self.output_tokens, given) {
            (None, None, _) => {
                if self.cache_read_tokens.is_some() || self.cache_write_tokens.is_some() {
                    return Err(Error::invalid(
                        "input_tokens",
                        "is needed with cache_read_tokens or cache_write_tokens: cached \
                         tokens are part of the input",
                    ));
                }
                return Ok(Tokens {
                    total: tokens_used,
                    split: None,
                });
            }
            (Some(input), Some(output), total) => {
                let sum = input
                    .checked_add(output)
                    .filter(|&s| i64::try_from(s).is_ok());
                match (sum, total) {
                    (None, _) => {
                        return Err(Error::invalid(
                            "output_tokens",
                            format!(
                                "input_tokens {input} + output_tokens {output} is larger than \
                                 the largest storable value {}",
                                i64::MAX
                            ),
                        ))
                    }
                    (Some(sum), Some(total)) if sum != total => {
                        return Err(Error::invalid(
                            "tokens_used",
                            format!(
                                "{total} is not input_tokens + output_tokens \
                                 ({input} + {output} = {sum})"
                            ),
                        ))
                    }
                    _ => (input, output),
                }
            }
            (Some(input), None, None) => (input, 0),
            (None, Some(output), None) => (0, output),
            (Some(input), None, Some(total)) => {
                let output = total.checked_sub(input).ok_or_else(|| {
                    Error::invalid(
                        "input_tokens",
                        format!("{input} is more than tokens_used {total}"),
                    )
                })?;
                (input, output)
            }
            (None, Some(output), Some(total)) => {
                let input = total.checked_sub(output).ok_or_else(|| {
                    Error::invalid(
                        "output_tokens",
                        format!("{output} is more than tokens_used {total}"),
                    )
                })?;
                (input, output)
            }
        };
        if cache_read.saturating_add(cache_write) > input {
            return Err(Error::invalid(
                "cache_read_tokens",
                format!(
                    "cache_read_tokens {cache_read} + cache_write_tokens {cache_write} is more \
                     than input_tokens {input}: cached tokens are part of the input"
                ),
            ));
        }
        Ok(Tokens {
            total: input + output,
            split: Some(Split {
                input,
                output,
                cache_read,
                cache_write,
            }),
        })
    }
}

/// A task's token counts, resolved by the token rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tokens {
    /// `tokens_used` as stored.
    pub total: u64,
    /// The breakdown, when the record gave one.
    pub split: Option<Split>,
}

/// A task's tokens by type; cache reads and writes are part of `input`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Input tokens, cached ones included.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write: u64,
}

impl Split {
    /// The breakdown a stored row holds: its total and input (output is
    /// the rest) and its cached tokens; `None` when they break the token
    /// rule, which only a damaged row does.
    pub(crate) fn stored(
        tokens_used: u64,
        input: u64,
        cache_read: u64,
        cache_write: u64,
    ) -> Option<Split> {
        let output = tokens_used.checked_sub(input)?;
        (cache_read.checked_add(cache_write)? <= input).then_some(Split {
            input,
            output,
            cache_read,
            cache_write,
        })
    }

    /// The usage fields this breakdown reads back as.
    pub(crate) fn fill(self, usage: &mut Usage) {
        usage.input_tokens = Some(self.input);
        usage.output_tokens = Some(self.output);
        usage.cache_read_tokens = Some(self.cache_read);
        usage.cache_write_tokens = Some(self.cache_write);
    }
}

/// The tokens of a selection of tasks by type, from
/// [`MetricsStorage::tokens_by_type`](crate::MetricsStorage::tokens_by_type).
/// Sums are exact up to 2^53 tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokensByType {
    /// Tasks selected.
    pub tasks: u64,
    /// Of them, the tasks with a breakdown.
    pub with_breakdown: u64,
    /// `tokens_used` of every selected task.
    pub total: u64,
    /// Input tokens of the tasks with a breakdown, cached ones included.
    pub input: u64,
    /// Output tokens of the tasks with a breakdown.
    pub output: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write: u64,
    /// Tokens of the tasks without a breakdown: `total - input - output`.
    pub unsplit: u64,
}

/// What one agent, swarm or model spends per successful task, from
/// [`MetricsStorage::cost_per_success`](crate::MetricsStorage::cost_per_success).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CostPerSuccess {
    /// The agent, swarm or model; `None` for the whole selection, for
    /// tasks without a swarm, or for tasks whose model is not known.
    pub id: Option<String>,
    /// The cost of every selected task that has one, successful or not,
    /// in USD.
    pub cost_usd: f64,
    /// The tasks that succeeded.
    pub successes: u64,
    /// `cost_usd / successes`; `None` without a success.
    pub cost_per_success_usd: Option<f64>,
    /// The selected tasks without a cost, left out of `cost_usd`.
    pub unpriced: u64,
}

/// What [`MetricsStorage::recompute_costs`](crate::MetricsStorage::recompute_costs) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecomputeReport {
    /// Raw tasks priced again (they name a model and have a breakdown).
    pub repriced: u64,
    /// Of them, the ones without a price in force at their timestamp.
    pub now_unpriced: u64,
    /// Raw tasks that keep their bill.
    pub billed: u64,
    /// Tasks of the range already folded into rollups, which keep the
    /// cost they were folded with.
    pub folded_tasks: u64,
    /// The rollups holding them.
    pub folded_rollups: u64,
}

/// Micro-dollars as USD.
pub(crate) fn usd(micros: u64) -> f64 {
    micros as f64 / MICROS_PER_USD as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: u64, output: u64, cache_read: u64, cache_write: u64) -> Option<Split> {
        Some(Split {
            input,
            output,
            cache_read,
            cache_write,
        })
    }

    #[test]
    fn the_token_rule_completes_what_is_missing() {
        let u = Usage::new().input(100).output(20);
        assert_eq!(u.resolve(0).unwrap().total, 120);
        assert_eq!(u.resolve(120).unwrap().split, split(100, 20, 0, 0));
        assert_eq!(
            Usage::new().input(100).resolve(130).unwrap().split,
            split(100, 30, 0, 0)
        );
        assert_eq!(
            Usage::new().output(30).resolve(130).unwrap().split,
            split(100, 30, 0, 0)
        );
        assert_eq!(
            Usage::new().input(100).resolve(0).unwrap().split,
            split(100, 0, 0, 0)
        );
        assert_eq!(Usage::new().output(7).resolve(0).unwrap().total, 7);
        let cached = Usage::new()
            .input(100)
            .output(5)
            .cache_read(60)
            .cache_write(40);
        assert_eq!(cached.resolve(0).unwrap().split, split(100, 5, 60, 40));
        let none = Usage::new().model("m").resolve(55).unwrap();
        assert_eq!((none.total, none.split), (55, None));
    }

    #[test]
    fn contradictory_counts_are_refused() {
        let field = |u: Usage, total: u64| match u.resolve(total) {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(Usage::new().input(100).output(20), 121),
            "tokens_used"
        );
        assert_eq!(field(Usage::new().input(100), 99), "input_tokens");
        assert_eq!(field(Usage::new().output(100), 99), "output_tokens");
        assert_eq!(
            field(Usage::new().input(10).cache_read(8).cache_write(3), 0),
            "cache_read_tokens"
        );
        assert_eq!(field(Usage::new().cache_read(8), 0), "input_tokens");
        assert_eq!(field(Usage::new().input(u64::MAX), 0), "input_tokens");
        assert_eq!(
            field(Usage::new().input(i64::MAX as u64).output(1), 0),
            "output_tokens"
        );
        assert_eq!(field(Usage::new().model(" "), 0), "model");
        assert_eq!(field(Usage::new().cost(-0.01), 0), "cost_usd");
        assert_eq!(field(Usage::new().cost(f64::NAN), 0), "cost_usd");
        assert_eq!(field(Usage::new().cost(2e9), 0), "cost_usd");
    }
}
