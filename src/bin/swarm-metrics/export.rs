//! `export`: JSON Lines (which `import` reads back exactly), CSV, or the
//! Prometheus text exposition format.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use swarm_metrics::{
    AgentMetric, Filter, MetricKind, MetricType, MetricsStorage, Stored, SwarmMetric, TaskMetric,
    TaskResult, TimeRange,
};

use crate::args::Format;
use crate::Failure;

/// Timestamps to the microsecond, always with six digits, so that an
/// export reads back to the same instant and prints the same again.
fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A task metric as a JSON Lines record.
fn task_record(t: &TaskMetric) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("kind".into(), json!("task"));
    m.insert("task_id".into(), json!(t.task_id));
    m.insert("agent_id".into(), json!(t.agent_id));
    if let Some(swarm) = &t.swarm_id {
        m.insert("swarm_id".into(), json!(swarm));
    }
    m.insert("duration_ms".into(), json!(t.duration_ms));
    m.insert("result".into(), json!(t.result));
    m.insert("tokens_used".into(), json!(t.tokens_used));
    m.insert("files_changed".into(), json!(t.files_changed));
    m.insert("timestamp".into(), json!(time(t.timestamp)));
    m
}

/// An agent or swarm metric as a JSON Lines record (its store-given id is
/// left out: a fresh store gives its own).
fn entity_record(
    kind: &str,
    id_field: &str,
    id: &str,
    metric_type: MetricType,
    value: f64,
    metadata: &Option<Value>,
    timestamp: DateTime<Utc>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("kind".into(), json!(kind));
    m.insert(id_field.into(), json!(id));
    m.insert("metric_type".into(), json!(metric_type));
    m.insert("value".into(), json!(value));
    if let Some(metadata) = metadata {
        m.insert("metadata".into(), metadata.clone());
    }
    m.insert("timestamp".into(), json!(time(timestamp)));
    m
}

fn agent_record(m: &Stored<AgentMetric>) -> Map<String, Value> {
    entity_record(
        "agent",
        "agent_id",
        &m.metric.agent_id,
        m.metric.metric_type,
        m.metric.value,
        &m.metric.metadata,
        m.metric.timestamp,
    )
}

fn swarm_record(m: &Stored<SwarmMetric>) -> Map<String, Value> {
    entity_record(
        "swarm",
        "swarm_id",
        &m.metric.swarm_id,
        m.metric.metric_type,
        m.metric.value,
        &m.metric.metadata,
        m.metric.timestamp,
    )
}

const CSV_COLUMNS: [&str; 12] = swarm_metrics::RECORD_FIELDS;

/// One CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(value: &Value) -> String {
    let text = match value {
        Value::Null => return String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// Writes records; a failed write stops the visit that writes them and is
/// handed out as the command's failure.
struct Sink<'a, W: Write> {
    out: &'a mut W,
}

impl<W: Write> Sink<'_, W> {
    fn line(&mut self, text: &str) -> ControlFlow<Failure> {
        match writeln!(self.out, "{text}") {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(Failure::from(e)),
        }
    }

    fn record(&mut self, format: Format, record: Map<String, Value>) -> ControlFlow<Failure> {
        match format {
            Format::Csv => {
                let fields: Vec<String> = CSV_COLUMNS
                    .iter()
                    .map(|c| csv_field(record.get(*c).unwrap_or(&Value::Null)))
                    .collect();
                self.line(&fields.join(","))
            }
            _ => self.line(&Value::Object(record).to_string()),
        }
    }
}

pub fn run(
    store: &MetricsStorage,
    out: &mut impl Write,
    kind: Option<MetricKind>,
    range: Option<TimeRange>,
    format: Format,
) -> Result<(), Failure> {
    let filter = Filter {
        time_range: range,
        ..Filter::default()
    };
    if format == Format::Prometheus {
        return prometheus(store, out, kind, &filter);
    }
    let mut sink = Sink { out };
    if format == Format::Csv {
        if let ControlFlow::Break(failure) = sink.line(&CSV_COLUMNS.join(",")) {
            return Err(failure);
        }
    }
    let wanted = |k: MetricKind| kind.is_none_or(|only| only == k);
    let mut stopped = None;
    if wanted(MetricKind::Task) {
        stopped = store.for_each_task_metric(&filter, |t| sink.record(format, task_record(&t)))?;
    }
    if wanted(MetricKind::Agent) && stopped.is_none() {
        stopped =
            store.for_each_agent_metric(&filter, |m| sink.record(format, agent_record(&m)))?;
    }
    if wanted(MetricKind::Swarm) && stopped.is_none() {
        stopped =
            store.for_each_swarm_metric(&filter, |m| sink.record(format, swarm_record(&m)))?;
    }
    stopped.map_or(Ok(()), Err)
}

/// A Prometheus label value, escaped; carriage returns, which the text
/// format has no escape for, are left out.
fn label(value: &str) -> String {
    value
        .replace('\r', "")
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value as Prometheus writes it.
fn sample(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else {
        format!("{v}")
    }
}

#[derive(Default)]
struct TaskGroup {
    by_result: BTreeMap<TaskResult, u64>,
    durations: Vec<f64>,
    tokens: u64,
}

/// Per agent and swarm: tasks by result, duration quantiles and tokens, as
/// gauges of what the store holds over the filter's range (they fall when
/// cleanup or retention removes rows, so none is a counter); the latest
/// value of every agent and swarm metric (gauges).
fn prometheus(
    store: &MetricsStorage,
    out: &mut impl Write,
    kind: Option<MetricKind>,
    filter: &Filter,
) -> Result<(), Failure> {
    let wanted = |k: MetricKind| kind.is_none_or(|only| only == k);
    if wanted(MetricKind::Task) {
        let mut groups: BTreeMap<(String, String), TaskGroup> = BTreeMap::new();
        store.for_each_task_metric(filter, |t| {
            let g = groups
                .entry((t.agent_id.clone(), t.swarm_id.clone().unwrap_or_default()))
                .or_default();
            *g.by_result.entry(t.result).or_default() += 1;
            g.durations.push(t.duration_ms as f64);
            g.tokens = g.tokens.saturating_add(t.tokens_used);
            ControlFlow::<()>::Continue(())
        })?;
        let labels = |(agent, swarm): &(String, String)| {
            format!("agent=\"{}\",swarm=\"{}\"", label(agent), label(swarm))
        };
        writeln!(
            out,
            "# HELP swarm_tasks Tasks stored, by agent, swarm and result."
        )?;
        writeln!(out, "# TYPE swarm_tasks gauge")?;
        for (key, g) in &groups {
            for result in TaskResult::ALL {
                let n = g.by_result.get(result).copied().unwrap_or(0);
                writeln!(
                    out,
                    "swarm_tasks{{{},result=\"{result}\"}} {n}",
                    labels(key)
                )?;
            }
        }
        writeln!(
            out,
            "# HELP swarm_task_duration_milliseconds Task durations, by agent and swarm."
        )?;
        writeln!(out, "# TYPE swarm_task_duration_milliseconds gauge")?;
        for (key, g) in &mut groups {
            let l = labels(key);
            for q in [0.5, 0.9, 0.95, 0.99] {
                let v = swarm_metrics::quantile(&mut g.durations, q).unwrap_or(f64::NAN);
                writeln!(
                    out,
                    "swarm_task_duration_milliseconds{{{l},quantile=\"{q}\"}} {}",
                    sample(v)
                )?;
            }
        }
        writeln!(
            out,
            "# HELP swarm_tokens_used Tokens used by the tasks stored, by agent and swarm."
        )?;
        writeln!(out, "# TYPE swarm_tokens_used gauge")?;
        for (key, g) in &groups {
            writeln!(out, "swarm_tokens_used{{{}}} {}", labels(key), g.tokens)?;
        }
    }
    for (kind, entity) in [(MetricKind::Agent, "agent"), (MetricKind::Swarm, "swarm")] {
        if !wanted(kind) {
            continue;
        }
        let mut latest = BTreeMap::new();
        let mut note =
            |id: &str, metric_type, value| latest.insert((id.to_owned(), metric_type), value);
        match kind {
            MetricKind::Agent => store.for_each_agent_metric(filter, |m| {
                note(&m.metric.agent_id, m.metric.metric_type, m.metric.value);
                ControlFlow::<()>::Continue(())
            })?,
            _ => store.for_each_swarm_metric(filter, |m| {
                note(&m.metric.swarm_id, m.metric.metric_type, m.metric.value);
                ControlFlow::<()>::Continue(())
            })?,
        };
        gauges(out, entity, &latest)?;
    }
    Ok(())
}

/// The latest value of each agent or swarm metric (`entity` is "agent" or
/// "swarm"), as the gauge family `swarm_{entity}_metric`.
fn gauges(
    out: &mut impl Write,
    entity: &str,
    latest: &BTreeMap<(String, MetricType), f64>,
) -> Result<(), Failure> {
    let family = format!("swarm_{entity}_metric");
    writeln!(
        out,
        "# HELP {family} The latest value of each {entity} metric."
    )?;
    writeln!(out, "# TYPE {family} gauge")?;
    for ((id, ty), v) in latest {
        writeln!(
            out,
            "{family}{{{entity}=\"{}\",metric_type=\"{ty}\"}} {}",
            label(id),
            sample(*v)
        )?;
    }
    Ok(())
}
