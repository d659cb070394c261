//! `alerts`: evaluating rules, listing the alerts' states and their
//! history. `eval` exits 3 when an alert fires, so that cron and CI can
//! act on it as it is.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use swarm_metrics::{
    now, AlertGroup, AlertInstance, AlertState, Filter, MetricsStorage, Rules, TimeRange,
    Transition,
};

use crate::args::{AlertsArgs, AlertsCommand, EvalArgs, HistoryArgs};
use crate::parse::{parse_span, parse_time};
use crate::print::table;
use crate::{open_existing, write_json, Context, Failure};

/// The exit code of an evaluation that found an alert firing.
const FIRING: u8 = 3;

/// Runs one `alerts` subcommand.
pub fn run(cx: &Context, args: AlertsArgs, out: &mut impl Write) -> Result<ExitCode, Failure> {
    match args.command {
        AlertsCommand::Eval(args) => eval(cx, args, out),
        AlertsCommand::History(args) => history(cx, args, out).map(|()| ExitCode::SUCCESS),
        AlertsCommand::List => list(cx, out).map(|()| ExitCode::SUCCESS),
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The alert's labels, as Alertmanager takes them: its name, severity
/// and group.
fn labels(rule: &str, severity: &str, group_by: AlertGroup, group: &Option<String>) -> Value {
    let mut labels = Map::new();
    labels.insert("alertname".into(), json!(rule));
    if !severity.is_empty() {
        labels.insert("severity".into(), json!(severity));
    }
    let name = match group_by {
        AlertGroup::Agent => Some("agent"),
        AlertGroup::Swarm => Some("swarm"),
        AlertGroup::None => None,
    };
    if let (Some(name), Some(group)) = (name, group) {
        labels.insert(name.into(), json!(group));
    }
    Value::Object(labels)
}

/// Whether this evaluation resolved the instance: it stopped firing.
fn resolved(instance: &AlertInstance) -> bool {
    instance
        .transition
        .as_ref()
        .is_some_and(|t| t.to == AlertState::Inactive && t.from.is_firing())
}

/// An alert instance in Alertmanager's shape, with its state and figures.
pub fn alert_json(instance: &AlertInstance) -> Value {
    let mut alert = alertmanager_json(instance);
    alert["state"] = json!(instance.standing.state.as_str());
    alert["figures"] = json!(instance.figures);
    alert
}

/// An alert as Alertmanager's API takes it: labels, annotations,
/// `startsAt`, and `endsAt` once resolved.
fn alertmanager_json(instance: &AlertInstance) -> Value {
    let mut alert = json!({
        "labels": labels(&instance.rule, &instance.severity, instance.group_by, &instance.group),
        "annotations": {"summary": instance.figures.describe()},
    });
    if let Some(start) = instance.standing.active_since {
        alert["startsAt"] = json!(time(start));
    }
    if resolved(instance) {
        if let Some(end) = instance.standing.cleared_at {
            alert["endsAt"] = json!(time(end));
        }
    }
    alert
}

/// How long a receiver may take to answer.
const RECEIVER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Posts `body` as JSON to `url`, http or https; a receiver that cannot
/// be reached or refuses is an error naming it. Over https the receiver's
/// certificate is checked against the system's trusted roots (so an
/// in-house CA installed there, or named by `SSL_CERT_FILE`, is trusted).
fn post(url: &str, body: &Value) -> Result<(), Failure> {
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(RECEIVER_TIMEOUT))
        .tls_config(tls)
        .build()
        .into();
    let text = serde_json::to_string(body).map_err(crate::json_error)?;
    agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(text)
        .map(|_| ())
        .map_err(|e| {
            Failure::Operational(format!(
                "posting alerts to {url} failed: {e} (the alerts' states are saved)"
            ))
        })
}

/// `alerts eval`.
fn eval(cx: &Context, args: EvalArgs, out: &mut impl Write) -> Result<ExitCode, Failure> {
    // The rules are checked before the store is touched.
    let rules = Rules::from_path(&args.rules)?;
    let at = match &args.at {
        Some(text) => parse_time("--at", text)?,
        None => now(),
    };
    let store = open_existing(&cx.db, cx.busy, true)?;
    let instances = store.evaluate_alerts(&rules, at)?;
    // Closing folds the WAL into the file: the states are in it.
    store.close()?;
    let shown: Vec<&AlertInstance> = instances
        .iter()
        .filter(|i| i.standing.state != AlertState::Inactive || resolved(i))
        .collect();
    let alerts: Vec<Value> = shown.iter().map(|i| alert_json(i)).collect();
    // The states are saved: a receiver that fails is reported after the
    // output, and loses nothing (the next evaluation posts again).
    let mut delivery = Ok(());
    if let Some(url) = &args.alertmanager {
        let firing_or_resolved: Vec<Value> = shown
            .iter()
            .filter(|i| i.standing.state.is_firing() || resolved(i))
            .map(|i| alertmanager_json(i))
            .collect();
        if !firing_or_resolved.is_empty() {
            let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
            delivery = post(&endpoint, &Value::Array(firing_or_resolved));
        }
    }
    if let (Ok(()), Some(url)) = (&delivery, &args.webhook) {
        delivery = post(url, &Value::Array(alerts.clone()));
    }
    if cx.json {
        write_json(out, &alerts)?;
    } else if shown.is_empty() {
        writeln!(out, "no alert is pending or firing ({} rules)", rules.len())?;
    } else {
        let rows: Vec<Vec<String>> = shown
            .iter()
            .map(|i| {
                vec![
                    i.rule.clone(),
                    i.group.clone().unwrap_or_else(|| "-".to_owned()),
                    if resolved(i) {
                        "resolved".to_owned()
                    } else {
                        i.standing.state.to_string()
                    },
                    i.standing.active_since.map_or("-".to_owned(), time),
                    i.figures.describe(),
                ]
            })
            .collect();
        table(out, &["rule", "group", "state", "since", "figures"], &rows)?;
    }
    out.flush()?;
    delivery?;
    let firing = instances.iter().any(|i| i.standing.state.is_firing());
    Ok(if firing {
        ExitCode::from(FIRING)
    } else {
        ExitCode::SUCCESS
    })
}

/// `alerts history`.
fn history(cx: &Context, args: HistoryArgs, out: &mut impl Write) -> Result<(), Failure> {
    let store = open_existing(&cx.db, cx.busy, false)?;
    history_of(&store, args, cx.json, out)
}

/// `alerts history` of an open store.
pub fn history_of(
    store: &MetricsStorage,
    args: HistoryArgs,
    json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let span = parse_span("--since", &args.since)?;
    let end = now();
    let filter = Filter::new().range(TimeRange::new(end - span, end)?);
    let mut transitions = store.alert_history(&filter)?;
    if let Some(rule) = &args.rule {
        transitions.retain(|t| &t.rule == rule);
    }
    if json {
        return write_json(out, &transitions);
    }
    let rows: Vec<Vec<String>> = transitions.iter().map(transition_row).collect();
    table(
        out,
        &["at", "rule", "group", "from", "to", "figures"],
        &rows,
    )
}

fn transition_row(t: &Transition) -> Vec<String> {
    vec![
        time(t.at),
        t.rule.clone(),
        t.group.clone().unwrap_or_else(|| "-".to_owned()),
        t.from.to_string(),
        t.to.to_string(),
        t.figures.describe(),
    ]
}

/// `alerts list`.
fn list(cx: &Context, out: &mut impl Write) -> Result<(), Failure> {
    let store = open_existing(&cx.db, cx.busy, false)?;
    list_of(&store, cx.json, out)
}

/// `alerts list` of an open store.
pub fn list_of(store: &MetricsStorage, json: bool, out: &mut impl Write) -> Result<(), Failure> {
    let states = store.alert_states()?;
    if json {
        return write_json(out, &states);
    }
    let rows: Vec<Vec<String>> = states
        .iter()
        .map(|i| {
            vec![
                i.rule.clone(),
                i.group.clone().unwrap_or_else(|| "-".to_owned()),
                i.standing.state.to_string(),
                i.standing.active_since.map_or("-".to_owned(), time),
                i.figures.describe(),
            ]
        })
        .collect();
    table(out, &["rule", "group", "state", "since", "figures"], &rows)
}
