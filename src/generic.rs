//! The reference's generic, JSON-shaped calls: `store_metric` and
//! `query_metrics`, with the reference's field names.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::query::{Filter, TimeRange};
use crate::record::{
    json_type_name, now, AgentMetric, MetricKind, MetricType, SwarmMetric, TaskMetric, TaskResult,
};
use crate::storage::MetricsStorage;

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

/// A metric parsed from its JSON form.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A task metric.
    Task(TaskMetric),
    /// An agent metric.
    Agent(AgentMetric),
    /// A swarm metric.
    Swarm(SwarmMetric),
}

/// Parses and checks one metric of `kind` from its JSON form (see
/// [`MetricsStorage::store_metric`] for the fields).
///
/// # Errors
/// [`Error::InvalidInput`] naming the offending field.
pub fn parse_metric(kind: MetricKind, data: &Value) -> Result<Parsed> {
    let object = data.as_object().ok_or_else(|| {
        Error::invalid(
            "data",
            format!("must be a JSON object, not {}", json_type_name(data)),
        )
    })?;
    let mut fields = Fields {
        object,
        used: vec!["kind", "timestamp"],
    };
    if let Some(k) = object.get("kind") {
        let named: MetricKind = k
            .as_str()
            .ok_or_else(|| Error::invalid("kind", "must be a string"))?
            .parse()?;
        if named != kind {
            return Err(Error::invalid(
                "kind",
                format!("the record says {named} but is stored as {kind}"),
            ));
        }
    }
    let timestamp = fields.timestamp()?;
    let parsed = match kind {
        MetricKind::Task => {
            let task = TaskMetric {
                task_id: fields.string("task_id")?,
                agent_id: fields.string("agent_id")?,
                swarm_id: fields.optional_string("swarm_id")?,
                duration_ms: fields.count("duration_ms", None)?,
                result: fields.string("result")?.parse::<TaskResult>()?,
                tokens_used: fields.count("tokens_used", Some(0))?,
                files_changed: fields.count("files_changed", Some(0))?,
                timestamp,
            };
            task.validate()?;
            Parsed::Task(task)
        }
        MetricKind::Agent => {
            let metric = AgentMetric {
                agent_id: fields.string("agent_id")?,
                metric_type: fields.string("metric_type")?.parse::<MetricType>()?,
                value: fields.number("value")?,
                metadata: fields.metadata()?,
                timestamp,
            };
            metric.entity()?;
            Parsed::Agent(metric)
        }
        MetricKind::Swarm => {
            let metric = SwarmMetric {
                swarm_id: fields.string("swarm_id")?,
                metric_type: fields.string("metric_type")?.parse::<MetricType>()?,
                value: fields.number("value")?,
                metadata: fields.metadata()?,
                timestamp,
            };
            metric.entity()?;
            Parsed::Swarm(metric)
        }
    };
    fields.reject_unknown()?;
    Ok(parsed)
}

/// Builds a [`Filter`] from the reference's `filters` dict.
///
/// # Errors
/// [`Error::InvalidInput`] for an unknown key or a value of the wrong type.
pub fn parse_filter(filters: &Value) -> Result<Filter> {
    let object = match filters {
        Value::Null => return Ok(Filter::new()),
        Value::Object(object) => object,
        other => {
            return Err(Error::invalid(
                "filters",
                format!(
                    "must be a JSON object or null, not {}",
                    json_type_name(other)
                ),
            ))
        }
    };
    let mut fields = Fields {
        object,
        used: Vec::new(),
    };
    let filter = Filter {
        task_id: fields.optional_string("task_id")?,
        agent_id: fields.optional_string("agent_id")?,
        swarm_id: fields.optional_string("swarm_id")?,
        result: fields
            .optional_string("result")?
            .map(|s| s.parse::<TaskResult>())
            .transpose()?,
        metric_type: fields
            .optional_string("metric_type")?
            .map(|s| s.parse::<MetricType>())
            .transpose()?,
        time_range: None,
    };
    fields.reject_unknown()?;
    Ok(filter)
}

/// Field access on a JSON object that remembers which fields were read,
/// so that unknown ones can be reported.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    used: Vec<&'static str>,
}

impl Fields<'_> {
    fn get(&mut self, field: &'static str) -> Option<&Value> {
        self.used.push(field);
        self.object.get(field).filter(|v| !v.is_null())
    }

    fn string(&mut self, field: &'static str) -> Result<String> {
        self.optional_string(field)?
            .ok_or_else(|| Error::invalid(field, "is missing"))
    }

    fn optional_string(&mut self, field: &'static str) -> Result<Option<String>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(Error::invalid(
                field,
                format!("must be a string, not {}", json_type_name(other)),
            )),
        }
    }

    fn count(&mut self, field: &'static str, default: Option<u64>) -> Result<u64> {
        match self.get(field) {
            None => default.ok_or_else(|| Error::invalid(field, "is missing")),
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
                Error::invalid(
                    field,
                    format!("must be a whole number from 0 to {}, got {n}", i64::MAX),
                )
            }),
            Some(other) => Err(Error::invalid(
                field,
                format!("must be a number, not {}", json_type_name(other)),
            )),
        }
    }

    fn number(&mut self, field: &'static str) -> Result<f64> {
        match self.get(field) {
            None => Err(Error::invalid(field, "is missing")),
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| Error::invalid(field, format!("{n} is not a finite number"))),
            Some(other) => Err(Error::invalid(
                field,
                format!("must be a number, not {}", json_type_name(other)),
            )),
        }
    }

    fn metadata(&mut self) -> Result<Option<Value>> {
        Ok(self.get("metadata").cloned())
    }

    fn timestamp(&mut self) -> Result<DateTime<Utc>> {
        match self.get("timestamp") {
            None => Ok(now()),
            Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc).trunc_subsecs(6))
                .map_err(|e| Error::invalid("timestamp", format!("{s:?} is not RFC 3339: {e}"))),
            Some(other) => Err(Error::invalid(
                "timestamp",
                format!("must be an RFC 3339 string, not {}", json_type_name(other)),
            )),
        }
    }

    fn reject_unknown(&self) -> Result<()> {
        match self
            .object
            .keys()
            .find(|k| !self.used.contains(&k.as_str()))
        {
            Some(unknown) => Err(Error::invalid(
                "data",
                format!(
                    "unknown field {unknown:?}; expected one of: {}",
                    self.used.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn filters_parse_strictly() {
        let f = parse_filter(&json!({"agent_id": "a", "result": "timeout"})).unwrap();
        assert_eq!(f.agent_id.as_deref(), Some("a"));
        assert_eq!(f.result, Some(TaskResult::Timeout));
        assert_eq!(parse_filter(&Value::Null).unwrap(), Filter::new());
        assert!(parse_filter(&json!({"agent": "a"})).is_err());
        assert!(parse_filter(&json!("a")).is_err());
    }
}
