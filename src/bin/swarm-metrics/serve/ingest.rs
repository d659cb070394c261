//! `POST /ingest`: JSON Lines exactly as `import` reads them, stored all
//! or nothing, answered with `import --json`'s report.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use swarm_metrics::{MetricBatch, MetricsStorage, Parsed, StreamReport, TaskMetric};

use super::body::ApiError;
use crate::import::{parse_line, report_json};

/// Bad lines named in a refusal; the rest are counted.
const NAMED: usize = 20;

/// What a request that stores answers, and the `task` event it
/// announces when it stored new tasks.
pub struct Announced<T> {
    pub answer: T,
    pub event: Option<Value>,
}

/// Parses every line of `body`; stores them in one transaction when all
/// are good, and answers `import --json`'s report. A bad line refuses the
/// whole request (400, naming each bad line, nothing stored). Lines
/// already stored are counted as duplicates, so that sending the same body
/// again stores nothing new.
pub fn ingest(store: &MetricsStorage, body: &[u8]) -> Result<Announced<Value>, ApiError> {
    let mut batch = MetricBatch::default();
    let mut bad = Vec::new();
    for (number, line) in body.split(|&b| b == b'\n').enumerate() {
        let number = number + 1;
        let parsed = match std::str::from_utf8(line) {
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => parse_line(text.trim()),
            Err(e) => Err(format!("not valid UTF-8 (byte {})", e.valid_up_to())),
        };
        match parsed {
            Ok(Parsed::Task(t)) => batch.tasks.push(t),
            Ok(Parsed::Agent(m)) => batch.agents.push(m),
            Ok(Parsed::Swarm(m)) => batch.swarms.push(m),
            Err(reason) => bad.push(format!("line {number}: {reason}")),
        }
    }
    if !bad.is_empty() {
        let more = bad.len().saturating_sub(NAMED);
        let mut message = format!("{} bad line(s), nothing was stored: ", bad.len());
        message.push_str(&bad[..bad.len().min(NAMED)].join("; "));
        if more > 0 {
            message.push_str(&format!("; and {more} more"));
        }
        return Err(ApiError::bad_request(message));
    }
    let stored = store.store_batch(&batch)?;
    let mut report = StreamReport::default();
    report.add(&batch, &stored);
    let event = (stored.new_tasks > 0).then(|| task_event(&batch.tasks, stored.new_tasks));
    Ok(Announced {
        answer: report_json(&report, 0),
        event,
    })
}

/// A `task` event: how many tasks were new, and the batch's tasks counted
/// by agent and result.
pub fn task_event(tasks: &[TaskMetric], new: usize) -> Value {
    let mut by_agent: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    for t in tasks {
        *by_agent
            .entry(&t.agent_id)
            .or_default()
            .entry(t.result.to_string())
            .or_default() += 1;
    }
    json!({ "stored": new, "batch": tasks.len(), "by_agent": by_agent })
}
