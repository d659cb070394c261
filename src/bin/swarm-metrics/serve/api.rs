//! `GET /api/v1/<question>`: the command line's questions, their flags
//! as query parameters, their `--json` as the answer.
//!
//! The parameters are turned into the command line's arguments and parsed
//! by the command line's own parser, so that the API takes exactly what
//! the CLI takes and refuses it with the same message: `?agent=a&since=24h
//! &by=swarm` is `--agent=a --since=24h --by=swarm`. A flag without a
//! value (`--exact`) is `?exact` or `?exact=true`; `?exact=false` leaves it
//! out.

use clap::Parser;
use swarm_metrics::MetricsStorage;

use super::body::ApiError;
use crate::args::{AlertsArgs, AlertsCommand, Cli, Command, PricesArgs, PricesCommand};
use crate::{alerts, cost, maintain, questions, Failure};

/// The query parameter that may carry the bearer token; never an
/// argument.
pub const TOKEN_PARAMETER: &str = "access_token";

/// The command-line words of each question the API answers.
fn words(question: &str) -> Option<&'static [&'static str]> {
    Some(match question {
        "success-rate" => &["success-rate"],
        "aggregate" | "percentile" => &["aggregate"],
        "series" => &["series"],
        "top" => &["top"],
        "slowest" => &["slowest"],
        "outliers" => &["outliers"],
        "summary" => &["summary"],
        "compare" => &["compare"],
        "regressions" => &["regressions"],
        "query" => &["query"],
        "stats" => &["stats"],
        "alerts" => &["alerts", "list"],
        "alert-history" => &["alerts", "history"],
        "cost-per-success" => &["cost-per-success"],
        "tokens" => &["tokens"],
        "prices" => &["prices", "list"],
        _ => return None,
    })
}

/// Parses `params` as the arguments of `words` (`serve`'s own commands,
/// such as `report` and `health`, come this way too).
pub fn command(words: &[&str], params: &[(String, String)]) -> Result<Command, ApiError> {
    let mut argv: Vec<String> = vec!["swarm-metrics".into(), "--json".into()];
    argv.extend(words.iter().map(|w| (*w).to_owned()));
    for (name, value) in params {
        if name == TOKEN_PARAMETER {
            continue;
        }
        let flag = name.replace('_', "-");
        if flag.is_empty()
            || flag.starts_with('-')
            || matches!(flag.as_str(), "db" | "json" | "busy-timeout" | "html")
        {
            return Err(ApiError::bad_request(format!(
                "{name:?} is not a parameter of this endpoint"
            )));
        }
        match value.as_str() {
            "" | "true" => argv.push(format!("--{flag}")),
            "false" => {}
            // `--flag=value`, so that a value starting with '-' is a
            // value, never another flag.
            value => argv.push(format!("--{flag}={value}")),
        }
    }
    Cli::try_parse_from(argv)
        .map(|cli| cli.command)
        .map_err(|e| ApiError::bad_request(e.render().to_string().trim_end()))
}

/// The command a question and its parameters ask for: 404 for a question
/// there is not, 400 for a bad parameter.
pub fn question(name: &str, params: Vec<(String, String)>) -> Result<Command, ApiError> {
    let words = words(name).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            format!(
                "no question {name:?}: ask success-rate, aggregate, percentile, series, top, \
                 slowest, outliers, summary, compare, regressions, query, stats, alerts, \
                 alert-history, cost-per-success, tokens or prices"
            ),
        )
    })?;
    let params = if name == "percentile" {
        percentile(params)?
    } else {
        params
    };
    command(words, &params)
}

/// `percentile?p=95` is `aggregate --agg p95`.
fn percentile(params: Vec<(String, String)>) -> Result<Vec<(String, String)>, ApiError> {
    if params.iter().any(|(name, _)| name == "agg") {
        return Err(ApiError::bad_request(
            "percentile takes p (such as p=95), not agg",
        ));
    }
    let mut found = false;
    let params = params
        .into_iter()
        .map(|(name, value)| {
            if name == "p" {
                found = true;
                ("agg".to_owned(), format!("p{value}"))
            } else {
                (name, value)
            }
        })
        .collect();
    if !found {
        return Err(ApiError::bad_request(
            "percentile needs p, the percentile (such as p=95)",
        ));
    }
    Ok(params)
}

/// The `--json` answer of a question, as bytes.
pub fn answer(store: &MetricsStorage, command: Command) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    match command {
        Command::Question(question) => questions::answer(store, question, true, &mut out)?,
        Command::Stats => maintain::stats_of(store, true, &mut out)?,
        Command::Alerts(AlertsArgs {
            command: AlertsCommand::List,
        }) => alerts::list_of(store, true, &mut out)?,
        Command::Alerts(AlertsArgs {
            command: AlertsCommand::History(args),
        }) => alerts::history_of(store, args, true, &mut out)?,
        Command::Prices(PricesArgs {
            command: PricesCommand::List,
        }) => cost::list(store, true, &mut out)?,
        _ => return Err(Failure::Usage("not a question".to_owned())),
    }
    Ok(out)
}
