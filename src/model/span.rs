//! Spans of data time as people write them: `90s`, `30m`, `24h`, `7d`,
//! `2w`, `1y` (365 days).

use chrono::Duration;

use crate::error::{Error, Result};

/// Parses a span such as `90s`, `30m`, `24h`, `7d`, `2w` or `1y` (365
/// days): a positive whole number and one unit.
///
/// ```
/// use swarm_metrics::{chrono::Duration, parse_span};
/// assert_eq!(parse_span("90m")?, Duration::minutes(90));
/// assert!(parse_span("1.5h").is_err());
/// # Ok::<(), swarm_metrics::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidInput`] naming `span` for anything else.
pub fn parse_span(text: &str) -> Result<Duration> {
    span_of(text).map_err(|reason| Error::invalid("span", reason))
}

/// [`parse_span`], with the reason for a refusal as text.
pub(crate) fn span_of(text: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("{text:?} is not a span such as 90s, 30m, 24h, 7d, 2w or 1y");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let span = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        "w" => Duration::try_weeks(n),
        "y" => n.checked_mul(365).and_then(Duration::try_days),
        _ => None,
    };
    span.filter(|s| *s > Duration::zero()).ok_or_else(bad)
}
