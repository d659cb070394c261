//! The values that arguments spell as text: times, spans, retention
//! policies and aggregations.

use chrono::{DateTime, Duration, Utc};

use crate::Failure;

pub fn parse_time(flag: &str, text: &str) -> Result<DateTime<Utc>, Failure> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Failure::Usage(format!(
                "{flag} {text:?} is not an RFC 3339 time such as 2025-06-01T12:00:00Z: {e}"
            ))
        })
}

/// A date (midnight UTC) or an RFC 3339 time.
pub fn parse_day_or_time(flag: &str, text: &str) -> Result<DateTime<Utc>, Failure> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        if let Some(midnight) = date.and_hms_opt(0, 0, 0) {
            return Ok(midnight.and_utc());
        }
    }
    parse_time(flag, text).map_err(|_| {
        Failure::Usage(format!(
            "{flag} {text:?} is neither a date such as 2026-01-01 nor an RFC 3339 time"
        ))
    })
}

/// Parses a tiered retention policy: `RAW,HOURLY,DAILY`.
pub fn parse_policy(text: &str) -> Result<swarm_metrics::RetentionPolicy, Failure> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    if parts.len() != 3 {
        return Err(Failure::Usage(format!(
            "--policy {text:?}: expected RAW,HOURLY,DAILY such as 7d,90d,2y (each may be forever)"
        )));
    }
    let horizon = |part: &str| -> Result<Option<Duration>, Failure> {
        if part == "forever" {
            Ok(None)
        } else {
            parse_span("--policy", part).map(Some)
        }
    };
    let policy = swarm_metrics::RetentionPolicy {
        raw: horizon(parts[0])?,
        hourly: horizon(parts[1])?,
        daily: horizon(parts[2])?,
        ..swarm_metrics::RetentionPolicy::default()
    };
    policy.validate()?;
    Ok(policy)
}

/// Parses spans such as `90s`, `30m`, `24h`, `7d`, `2w`, `1y`.
pub fn parse_span(flag: &str, text: &str) -> Result<Duration, Failure> {
    swarm_metrics::parse_span(text).map_err(|e| match e {
        swarm_metrics::Error::InvalidInput { reason, .. } => {
            Failure::Usage(format!("{flag} {reason}"))
        }
        other => Failure::from(other),
    })
}

/// An aggregation name: one of the reference's, or a percentile `pNN`.
pub enum Aggregation {
    Plain(swarm_metrics::AggregationType),
    Percentile { name: String, q: f64 },
}

pub fn parse_aggregation(text: &str) -> Result<Aggregation, Failure> {
    if let Some(digits) = text.strip_prefix('p') {
        let percent: f64 = digits.parse().map_err(|_| {
            Failure::Usage(format!(
                "--agg {text:?}: a percentile is p followed by a number, e.g. p95"
            ))
        })?;
        if !(0.0..=100.0).contains(&percent) {
            return Err(Failure::Usage(format!(
                "--agg {text:?}: a percentile lies between p0 and p100"
            )));
        }
        return Ok(Aggregation::Percentile {
            name: text.to_owned(),
            q: percent / 100.0,
        });
    }
    Ok(Aggregation::Plain(text.parse()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse() {
        assert_eq!(parse_span("--since", "24h").unwrap(), Duration::hours(24));
        assert_eq!(parse_span("--since", "30m").unwrap(), Duration::minutes(30));
        assert_eq!(parse_span("--since", "7d").unwrap(), Duration::days(7));
        for bad in ["", "h", "24", "24x", "-1h", "0h", "1.5h"] {
            assert!(parse_span("--since", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn policies_parse() {
        let p = parse_policy("7d,90d,2y").unwrap();
        assert_eq!(p.raw, Some(Duration::days(7)));
        assert_eq!(p.daily, Some(Duration::days(730)));
        assert_eq!(parse_policy("1d,forever,forever").unwrap().hourly, None);
        assert!(parse_policy("7d,90d").is_err());
        assert!(parse_policy("90d,7d,2y").is_err());
        assert!(parse_policy("forever,7d,2y").is_err());
    }

    #[test]
    fn aggregations_parse() {
        assert!(
            matches!(parse_aggregation("p95"), Ok(Aggregation::Percentile { q, .. }) if (q - 0.95).abs() < 1e-12)
        );
        assert!(matches!(
            parse_aggregation("avg"),
            Ok(Aggregation::Plain(_))
        ));
        assert!(parse_aggregation("p101").is_err());
        assert!(parse_aggregation("median").is_err());
    }
}
