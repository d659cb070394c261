//! `export`: JSON Lines (which `import` reads back exactly), CSV, or the
//! Prometheus text exposition format.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use swarm_metrics::{
    AgentMetric, Filter, MetricKind, MetricType, MetricsStorage, Stored, SwarmMetric, TaskMetric,
    TaskResult, TimeRange, RECORD_FIELDS,
};

use crate::args::Format;
use crate::Failure;

/// Timestamps to the microsecond, always with six digits, so that an
/// export reads back to the same instant and prints the same again.
fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// One exported metric: the fields `import` reads, named as the
/// reference names them, in the order of [`RECORD_FIELDS`] (the CSV
/// columns). Fields a kind does not have are left out of JSON Lines and
/// empty in CSV. A stored agent or swarm metric's id is left out: a fresh
/// store gives its own.
#[derive(Debug, Default, Serialize)]
struct Record<'a> {
    kind: &'static str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    swarm_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<TaskResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens_used: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files_changed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric_type: Option<MetricType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_write_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'a str>,
    /// The task's cost: on import, a bill, so that a copy keeps the cost
    /// each task had.
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_usd: Option<f64>,
    /// The OpenTelemetry trace and span the task was recorded from.
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    span_id: Option<String>,
}

impl<'a> Record<'a> {
    fn task(t: &'a TaskMetric) -> Self {
        Record {
            kind: "task",
            timestamp: time(t.timestamp),
            task_id: Some(&t.task_id),
            agent_id: Some(&t.agent_id),
            swarm_id: t.swarm_id.as_deref(),
            duration_ms: Some(t.duration_ms),
            result: Some(t.result),
            tokens_used: Some(t.tokens_used),
            files_changed: Some(t.files_changed),
            input_tokens: t.usage.input_tokens,
            output_tokens: t.usage.output_tokens,
            cache_read_tokens: t.usage.cache_read_tokens,
            cache_write_tokens: t.usage.cache_write_tokens,
            model: t.usage.model.as_deref(),
            provider: t.usage.provider.as_deref(),
            cost_usd: t.usage.cost_usd,
            trace_id: t.trace.map(|ids| ids.trace_hex()),
            span_id: t.trace.map(|ids| ids.span_hex()),
            ..Record::default()
        }
    }

    fn agent(m: &'a Stored<AgentMetric>) -> Self {
        let m = &m.metric;
        Record {
            agent_id: Some(&m.agent_id),
            ..Record::entity("agent", m.metric_type, m.value, &m.metadata, m.timestamp)
        }
    }

    fn swarm(m: &'a Stored<SwarmMetric>) -> Self {
        let m = &m.metric;
        Record {
            swarm_id: Some(&m.swarm_id),
            ..Record::entity("swarm", m.metric_type, m.value, &m.metadata, m.timestamp)
        }
    }

    fn entity(
        kind: &'static str,
        metric_type: MetricType,
        value: f64,
        metadata: &'a Option<Value>,
        timestamp: DateTime<Utc>,
    ) -> Self {
        Record {
            kind,
            timestamp: time(timestamp),
            metric_type: Some(metric_type),
            value: Some(value),
            metadata: metadata.as_ref(),
            ..Record::default()
        }
    }
}

/// The CSV cell of a field as serialized: strings as they are, other
/// values (numbers, metadata) as JSON, an absent field empty.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Where records go: JSON Lines written straight out, or CSV rows through
/// a writer that quotes them. A failed write stops the visit that writes
/// them and is handed out as the command's failure.
enum Sink<'a, W: Write> {
    Jsonl(&'a mut W),
    Csv(Box<csv::Writer<&'a mut W>>),
}

impl<W: Write> Sink<'_, W> {
    fn record(&mut self, record: &Record<'_>) -> ControlFlow<Failure> {
        match self.write(record) {
            Ok(()) => ControlFlow::Continue(()),
            Err(failure) => ControlFlow::Break(failure),
        }
    }

    fn write(&mut self, record: &Record<'_>) -> Result<(), Failure> {
        match self {
            Sink::Jsonl(out) => {
                serde_json::to_writer(&mut **out, record).map_err(crate::json_error)?;
                writeln!(out)?;
            }
            Sink::Csv(writer) => {
                let fields = serde_json::to_value(record).map_err(crate::json_error)?;
                let row = RECORD_FIELDS.iter().map(|name| cell(fields.get(*name)));
                writer.write_record(row).map_err(csv_error)?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(), Failure> {
        match self {
            Sink::Jsonl(_) => Ok(()),
            Sink::Csv(mut writer) => writer.flush().map_err(Failure::from),
        }
    }
}

/// A CSV write's failure: the output's own error when there is one.
fn csv_error(e: csv::Error) -> Failure {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => Failure::from(e),
        other => Failure::Operational(format!("cannot write CSV: {other:?}")),
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
    let mut sink = match format {
        Format::Csv => {
            let mut writer = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(out);
            writer.write_record(RECORD_FIELDS).map_err(csv_error)?;
            Sink::Csv(Box::new(writer))
        }
        _ => Sink::Jsonl(out),
    };
    let wanted = |k: MetricKind| kind.is_none_or(|only| only == k);
    let mut stopped = None;
    if wanted(MetricKind::Task) {
        stopped = store.for_each_task_metric(&filter, |t| sink.record(&Record::task(&t)))?;
    }
    if wanted(MetricKind::Agent) && stopped.is_none() {
        stopped = store.for_each_agent_metric(&filter, |m| sink.record(&Record::agent(&m)))?;
    }
    if wanted(MetricKind::Swarm) && stopped.is_none() {
        stopped = store.for_each_swarm_metric(&filter, |m| sink.record(&Record::swarm(&m)))?;
    }
    if let Some(failure) = stopped {
        return Err(failure);
    }
    sink.finish()
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

/// The tasks of one agent in one swarm, over its models and results.
#[derive(Default)]
struct TaskGroup {
    by_result: BTreeMap<TaskResult, u64>,
    durations: Vec<f64>,
    tokens: u128,
}

/// The cost of an agent's tasks in one swarm on one model: micro-dollars,
/// summed exactly, and the tasks without a cost.
#[derive(Default)]
struct CostGroup {
    micros: u128,
    unpriced: u64,
}

/// Per agent and swarm: tasks by result, duration quantiles and tokens, as
/// gauges of what the store holds over the filter's range (they fall when
/// cleanup or retention removes rows, so none is a counter); the latest
/// value of every agent and swarm metric (gauges).
pub fn prometheus(
    store: &MetricsStorage,
    out: &mut impl Write,
    kind: Option<MetricKind>,
    filter: &Filter,
) -> Result<(), Failure> {
    let wanted = |k: MetricKind| kind.is_none_or(|only| only == k);
    if wanted(MetricKind::Task) {
        let mut groups: BTreeMap<(String, String), TaskGroup> = BTreeMap::new();
        let mut costs: BTreeMap<(String, String, String), CostGroup> = BTreeMap::new();
        for t in store.task_tallies(filter)? {
            let swarm = t.swarm_id.unwrap_or_default();
            let g = groups
                .entry((t.agent_id.clone(), swarm.clone()))
                .or_default();
            *g.by_result.entry(t.result).or_default() += t.tasks;
            g.durations.extend(t.durations_ms.iter().map(|&d| d as f64));
            g.tokens += t.tokens_used;
            let model = t.model.unwrap_or_default();
            let c = costs.entry((t.agent_id, swarm, model)).or_default();
            c.micros += t.cost_micros;
            c.unpriced += t.unpriced;
        }
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
        let cost_labels = |(agent, swarm, model): &(String, String, String)| {
            format!(
                "agent=\"{}\",swarm=\"{}\",model=\"{}\"",
                label(agent),
                label(swarm),
                label(model)
            )
        };
        writeln!(
            out,
            "# HELP swarm_cost_usd What the tasks stored cost, by agent, swarm and model \
             (tasks without a cost are counted in swarm_tasks_unpriced)."
        )?;
        writeln!(out, "# TYPE swarm_cost_usd gauge")?;
        for (key, c) in &costs {
            let usd = c.micros as f64 / 1e6;
            writeln!(
                out,
                "swarm_cost_usd{{{}}} {}",
                cost_labels(key),
                sample(usd)
            )?;
        }
        writeln!(
            out,
            "# HELP swarm_tasks_unpriced Tasks stored without a cost, by agent, swarm and model."
        )?;
        writeln!(out, "# TYPE swarm_tasks_unpriced gauge")?;
        for (key, c) in &costs {
            writeln!(
                out,
                "swarm_tasks_unpriced{{{}}} {}",
                cost_labels(key),
                c.unpriced
            )?;
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
