//! The answers [`MetricsStorage`](crate::MetricsStorage) gives, each
//! validated here and then asked of its engine: rows read back ([`read`]),
//! aggregates, percentiles and success rates ([`aggregate`]), analytics
//! ([`analytics`]), comparisons and regressions ([`compare`]), the
//! reference's JSON-shaped calls ([`generic`]), and tallies of the raw
//! tasks ([`tally`]).

pub(crate) mod aggregate;
pub(crate) mod alerting;
pub(crate) mod analytics;
pub(crate) mod compare;
pub(crate) mod cost;
pub(crate) mod generic;
pub(crate) mod read;
pub(crate) mod tally;
