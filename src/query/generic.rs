//! The reference's generic, JSON-shaped calls: `store_metric` and
//! `query_metrics`, with the reference's field names.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::filter::{Filter, TimeRange};
use crate::model::record::{
    json_type_name, AgentMetric, MetricKind, MetricType, SwarmMetric, TaskMetric, TaskResult,
};
use crate::storage::MetricsStorage;

pub use crate::model::batch::Parsed;

impl MetricsStorage {
    /// Stores one metric of `kind` given as a JSON object with the
    /// reference's field names:
    ///
    /// * task: `task_id`, `agent_id`, `duration_ms`, `result`, and optional
    ///   `swarm_id`, `tokens_used` (0), `files_changed` (0);
    /// * agent / swarm: `agent_id` / `swarm_id`, `metric_type`, `value`, and
    ///   optional `metadata` (a JSON object);
    /// * every kind: optional `timestamp` (RFC 3339; missing or null means
    ///   now) and optional `kind`, which must then name `kind`.
    ///
    /// Returns the new metric's id for agent and swarm metrics, `None` for
    /// task metrics (which are identified by `task_id` and `timestamp`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field that is missing, of the
    /// wrong type, out of range or unknown (nothing is written); otherwise
    /// as the typed store calls.
    pub fn store_metric(&self, kind: MetricKind, data: &Value) -> Result<Option<i64>> {
        match parse_metric(kind, data)? {
            Parsed::Task(task) => self.store_task_metric(&task).map(|_| None),
            Parsed::Agent(metric) => self.store_agent_metric(&metric).map(Some),
            Parsed::Swarm(metric) => self.store_swarm_metric(&metric).map(Some),
        }
    }

    /// Metrics of `kind` matching `filters` (a JSON object with any of
    /// `task_id`, `agent_id`, `swarm_id`, `result`, `metric_type`; or null)
    /// and `time_range`, newest first, at most `limit`, as JSON objects with
    /// the reference's field names.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an unknown or ill-typed filter, a filter
    /// that does not apply to `kind`, or a limit of 0; otherwise as
    /// [`get_task_metrics`](Self::get_task_metrics).
    pub fn query_metrics(
        &self,
        kind: MetricKind,
        filters: &Value,
        time_range: Option<TimeRange>,
        limit: usize,
    ) -> Result<Vec<Value>> {
        let mut filter = parse_filter(filters)?;
        filter.time_range = time_range;
        let to_json = |v: serde_json::Result<Value>| {
            v.map_err(|e| Error::invalid("metric", format!("cannot be shown as JSON: {e}")))
        };
        match kind {
            MetricKind::Task => self
                .get_task_metrics(&filter, limit)?
                .into_iter()
                .map(|m| to_json(serde_json::to_value(m)))
                .collect(),
            MetricKind::Agent => self
                .get_agent_metrics(&filter, limit)?
                .into_iter()
                .map(|m| to_json(serde_json::to_value(m)))
                .collect(),
            MetricKind::Swarm => self
                .get_swarm_metrics(&filter, limit)?
                .into_iter()
                .map(|m| to_json(serde_json::to_value(m)))
                .collect(),
        }
    }
}

/// Parses and checks one metric of `kind` from its JSON form (see
/// [`MetricsStorage::store_metric`] for the fields). The records' own
/// `Deserialize` reads the fields; a null field counts as missing.
///
/// # Errors
/// [`Error::InvalidInput`] naming the offending field.
pub fn parse_metric(kind: MetricKind, data: &Value) -> Result<Parsed> {
    let Value::Object(object) = data else {
        return Err(Error::invalid(
            "data",
            format!("must be a JSON object, not {}", json_type_name(data)),
        ));
    };
    let mut fields: Map<String, Value> = object
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    if let Some(named) = fields.remove("kind") {
        let named: MetricKind = deserialize(named)?;
        if named != kind {
            return Err(Error::invalid(
                "kind",
                format!("the record says {named} but is stored as {kind}"),
            ));
        }
    }
    let fields = Value::Object(fields);
    let parsed = match kind {
        MetricKind::Task => Parsed::Task(deserialize(fields)?),
        MetricKind::Agent => Parsed::Agent(deserialize(fields)?),
        MetricKind::Swarm => Parsed::Swarm(deserialize(fields)?),
    };
    parsed.validate()?;
    Ok(parsed)
}

/// Parses one line of JSON Lines as `import` and `POST /ingest` read
/// them: a JSON object naming its `kind` (`task`, `agent` or `swarm`) and
/// the fields [`parse_metric`] takes.
///
/// Most lines are read straight into their record; a line that is not
/// (a null field, a duplicate key, a bad value) goes through
/// [`parse_metric`], so that the answer and the error are the same as
/// `parse_metric`'s either way.
///
/// # Errors
/// [`Error::InvalidInput`]: field `record` when the line is not JSON,
/// `kind` when the kind is missing or unknown, otherwise as
/// [`parse_metric`].
pub fn parse_record(line: &str) -> Result<Parsed> {
    /// A record read with its kind as the tag.
    #[derive(Deserialize)]
    #[serde(tag = "kind", rename_all = "lowercase")]
    enum Tagged {
        Task(TaskMetric),
        Agent(AgentMetric),
        Swarm(SwarmMetric),
    }
    if let Ok(tagged) = serde_json::from_str::<Tagged>(line) {
        let parsed = match tagged {
            Tagged::Task(t) => Parsed::Task(t),
            Tagged::Agent(m) => Parsed::Agent(m),
            Tagged::Swarm(m) => Parsed::Swarm(m),
        };
        if parsed.validate().is_ok() {
            return Ok(parsed);
        }
    }
    let value: Value = serde_json::from_str(line)
        .map_err(|e| Error::invalid("record", format!("not JSON: {e}")))?;
    let kind = value
        .get("kind")
        .ok_or_else(|| Error::invalid("kind", "missing (task, agent or swarm)"))?
        .as_str()
        .ok_or_else(|| Error::invalid("kind", "must be a string: task, agent or swarm"))?
        .parse::<MetricKind>()?;
    parse_metric(kind, &value)
}

/// The filters of the reference's `query_metrics`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterFields {
    task_id: Option<String>,
    agent_id: Option<String>,
    swarm_id: Option<String>,
    result: Option<TaskResult>,
    metric_type: Option<MetricType>,
}

/// Builds a [`Filter`] from the reference's `filters` dict.
///
/// # Errors
/// [`Error::InvalidInput`] for an unknown key or a value of the wrong type.
pub fn parse_filter(filters: &Value) -> Result<Filter> {
    if !matches!(filters, Value::Null | Value::Object(_)) {
        return Err(Error::invalid(
            "filters",
            format!(
                "must be a JSON object or null, not {}",
                json_type_name(filters)
            ),
        ));
    }
    let fields: Option<FilterFields> = deserialize(filters.clone())?;
    Ok(fields.map_or_else(Filter::new, |f| {
        let filter = Filter {
            task_id: f.task_id,
            agent_id: f.agent_id,
            swarm_id: f.swarm_id,
            result: f.result,
            ..Filter::new()
        };
        // The reference names what task aggregates measure with a task
        // metric type.
        match f.metric_type {
            Some(metric_type) => filter.metric_type_or_column(metric_type),
            None => filter,
        }
    }))
}

/// Every field of a generic record, in the order of the command line's
/// CSV export: `kind` and `timestamp`, then the task fields, then those
/// of agent and swarm metrics.
pub const RECORD_FIELDS: [&str; 21] = [
    "kind",
    "timestamp",
    "task_id",
    "agent_id",
    "swarm_id",
    "duration_ms",
    "result",
    "tokens_used",
    "files_changed",
    "metric_type",
    "value",
    "metadata",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "model",
    "provider",
    "cost_usd",
    "trace_id",
    "span_id",
];

/// Deserializes `value`, turning serde's error into an input error that
/// names the field (or `data` for the record as a whole).
fn deserialize<T: serde::de::DeserializeOwned>(value: Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // A missing field is reported on the record, with its name in the
        // message: "missing field `task_id`".
        let named = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .unwrap_or(&path);
        let field = RECORD_FIELDS
            .iter()
            .find(|f| **f == named)
            .copied()
            .unwrap_or("data");
        let reason = match inner.strip_prefix("missing field ") {
            Some(_) => "is missing".to_owned(),
            None => inner,
        };
        Error::invalid(field, reason)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::record::{SwarmMetric, TaskMetric};
    use serde_json::json;

    #[test]
    fn task_fields_parse_with_defaults() {
        let parsed = parse_metric(
            MetricKind::Task,
            &json!({"task_id": "t1", "agent_id": "a1", "duration_ms": 1500,
                    "result": "success", "timestamp": "2025-01-02T03:04:05.123456Z"}),
        )
        .unwrap();
        let Parsed::Task(task) = parsed else {
            panic!("not a task")
        };
        assert_eq!(task.tokens_used, 0);
        assert_eq!(task.swarm_id, None);
        assert_eq!(
            task.timestamp.to_rfc3339(),
            "2025-01-02T03:04:05.123456+00:00"
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (
                json!({"agent_id": "a", "duration_ms": 1, "result": "success"}),
                "task_id",
            ),
            (
                json!({"task_id": "t", "agent_id": "a", "duration_ms": -1, "result": "success"}),
                "duration_ms",
            ),
            (
                json!({"task_id": "t", "agent_id": "a", "duration_ms": 1.5, "result": "success"}),
                "duration_ms",
            ),
            (
                json!({"task_id": "t", "agent_id": "a", "duration_ms": 1, "result": "ok"}),
                "result",
            ),
            (
                json!({"task_id": 5, "agent_id": "a", "duration_ms": 1, "result": "success"}),
                "task_id",
            ),
            (
                json!({"task_id": "t", "agent_id": "a", "duration_ms": 1, "result": "success", "timestamp": "yesterday"}),
                "timestamp",
            ),
            (
                json!({"task_id": "t", "agent_id": "a", "duration_ms": 1, "result": "success", "colour": 1}),
                "data",
            ),
            (
                json!({"task_id": "t", "agent_id": "a", "duration_ms": 1, "result": "success", "kind": "agent"}),
                "kind",
            ),
            (json!([1]), "data"),
        ];
        for (data, field) in cases {
            match parse_metric(MetricKind::Task, &data) {
                Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field, "{data}"),
                other => panic!("{data}: expected an error on {field}, got {other:?}"),
            }
        }
        let err = parse_metric(
            MetricKind::Agent,
            &json!({"agent_id": "a", "metric_type": "agent_throughput", "value": 1, "metadata": "x"}),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "metadata",
                ..
            }
        ));
    }

    #[test]
    fn a_missing_timestamp_means_now_in_both_readings() {
        let data = json!({"task_id": "t", "agent_id": "a", "duration_ms": 1, "result": "success"});
        let before = crate::now();
        let derived: TaskMetric = serde_json::from_value(data.clone()).unwrap();
        let Parsed::Task(parsed) = parse_metric(MetricKind::Task, &data).unwrap() else {
            panic!("not a task")
        };
        let after = crate::now();
        for t in [derived.timestamp, parsed.timestamp] {
            assert!(before <= t && t <= after, "{t}");
        }
        // A null timestamp is missing too in the generic calls.
        let null = json!({"agent_id": "a", "metric_type": "agent_throughput", "value": 1, "timestamp": null});
        assert!(parse_metric(MetricKind::Agent, &null).is_ok());
        // Unknown fields are refused by the derived reading as well.
        let extra =
            json!({"swarm_id": "s", "metric_type": "swarm_health", "value": 1, "colour": 2});
        assert!(serde_json::from_value::<SwarmMetric>(extra).is_err());
    }

    #[test]
    fn filters_parse_strictly() {
        let f = parse_filter(&json!({"agent_id": "a", "result": "timeout"})).unwrap();
        assert_eq!(f.agent_id.as_deref(), Some("a"));
        assert_eq!(f.result, Some(TaskResult::Timeout));
        assert_eq!(parse_filter(&Value::Null).unwrap(), Filter::new());
        assert!(parse_filter(&json!({"agent": "a"})).is_err());
        assert!(parse_filter(&json!("a")).is_err());
    }
}
