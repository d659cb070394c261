//! Metrics in and out: task, agent and swarm records from keyword
//! arguments, dicts and tuples, and stored rows as the reference's dicts.

use chrono::{DateTime, Utc};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use swarm_metrics::{
    AgentMetric, MetricType, SwarmMetric, TaskMetric, TaskResult, TraceIds, Usage,
};

use crate::convert::{self, type_name};
use crate::errors::{invalid, store_error};

/// The fields of a task: a tuple gives the first [`TUPLE_FIELDS`] in this
/// order; a dict may name any.
pub const TASK_FIELDS: [&str; 17] = [
    "task_id",
    "agent_id",
    "duration_ms",
    "result",
    "tokens_used",
    "files_changed",
    "timestamp",
    "swarm_id",
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

/// How many fields a tuple may give.
const TUPLE_FIELDS: usize = 8;

/// How many fields an agent or swarm metric has: its id, `metric_type`,
/// `value`, `metadata` and `timestamp`, in tuple order.
const ENTITY_FIELDS: usize = 5;

/// The arguments of one task, as `store_task_metric` takes them.
pub struct TaskArgs<'a, 'py> {
    pub task_id: &'a Bound<'py, PyAny>,
    pub agent_id: &'a Bound<'py, PyAny>,
    pub duration_ms: &'a Bound<'py, PyAny>,
    pub result: &'a Bound<'py, PyAny>,
    pub tokens_used: Option<&'a Bound<'py, PyAny>>,
    pub files_changed: Option<&'a Bound<'py, PyAny>>,
    pub timestamp: Option<&'a Bound<'py, PyAny>>,
    pub swarm_id: Option<&'a Bound<'py, PyAny>>,
    /// `input_tokens` … `cost_usd`, in [`TASK_FIELDS`] order.
    pub usage: [Option<&'a Bound<'py, PyAny>>; 7],
    /// `trace_id` and `span_id`: the OpenTelemetry span, in hex.
    pub trace: [Option<&'a Bound<'py, PyAny>>; 2],
}

impl TaskArgs<'_, '_> {
    /// The task these arguments describe; stamped `now` when no timestamp
    /// is given.
    pub fn task(&self, now: DateTime<Utc>) -> PyResult<TaskMetric> {
        let count_or_zero = |field, value: Option<&Bound<'_, PyAny>>| match value {
            Some(v) if !v.is_none() => convert::count(field, v),
            _ => Ok(0),
        };
        let mut task = TaskMetric::new(
            convert::string("task_id", self.task_id)?,
            convert::string("agent_id", self.agent_id)?,
            convert::count("duration_ms", self.duration_ms)?,
            convert::enumerated::<TaskResult>("result", self.result)?,
        )
        .tokens(count_or_zero("tokens_used", self.tokens_used)?)
        .files(count_or_zero("files_changed", self.files_changed)?)
        .at(convert::optional_instant("timestamp", self.timestamp)?.unwrap_or(now));
        task.swarm_id = convert::optional_string("swarm_id", self.swarm_id)?;
        let [input, output, cache_read, cache_write, model, provider, cost] = self.usage;
        let count = |field, value: Option<&Bound<'_, PyAny>>| match value {
            Some(v) if !v.is_none() => convert::count(field, v).map(Some),
            _ => Ok(None),
        };
        task.usage = Usage {
            input_tokens: count("input_tokens", input)?,
            output_tokens: count("output_tokens", output)?,
            cache_read_tokens: count("cache_read_tokens", cache_read)?,
            cache_write_tokens: count("cache_write_tokens", cache_write)?,
            model: convert::optional_string("model", model)?,
            provider: convert::optional_string("provider", provider)?,
            cost_usd: match cost {
                Some(v) if !v.is_none() => Some(convert::real("cost_usd", v)?),
                _ => None,
            },
        };
        let [trace_id, span_id] = self.trace;
        task.trace = match (
            convert::optional_string("trace_id", trace_id)?,
            convert::optional_string("span_id", span_id)?,
        ) {
            (Some(trace), Some(span)) => {
                Some(TraceIds::from_hex(&trace, &span).map_err(store_error)?)
            }
            (None, None) => None,
            (Some(_), None) => return Err(invalid("span_id", "a trace_id needs its span_id")),
            (None, Some(_)) => return Err(invalid("trace_id", "a span_id needs its trace_id")),
        };
        Ok(task)
    }
}

/// A task from one item of a batch: a dict with `store_task_metric`'s
/// argument names (and `swarm_id`), or a tuple in the order of
/// [`TASK_FIELDS`].
pub fn task_item(
    index: usize,
    item: &Bound<'_, PyAny>,
    now: DateTime<Utc>,
) -> PyResult<TaskMetric> {
    let py = item.py();
    let in_item = |e: PyErr| in_batch(py, index, e);
    let mut fields: [Option<Bound<'_, PyAny>>; TASK_FIELDS.len()] = Default::default();
    if let Ok(dict) = item.cast::<PyDict>() {
        convert::refuse_unknown_keys("metric", dict, &TASK_FIELDS, "field").map_err(in_item)?;
        for (field, name) in fields.iter_mut().zip(task_field_names(py)) {
            *field = dict.get_item(name.bind(py))?;
        }
    } else if let Ok(tuple) = item.cast::<PyTuple>() {
        let n = tuple.len();
        if !(4..=TUPLE_FIELDS).contains(&n) {
            return Err(in_item(invalid(
                "task",
                format!(
                    "a tuple holds 4 to {TUPLE_FIELDS} fields ({}), not {n}; a dict \
                     also takes {}",
                    TASK_FIELDS[..TUPLE_FIELDS].join(", "),
                    TASK_FIELDS[TUPLE_FIELDS..].join(", ")
                ),
            )));
        }
        for (i, field) in fields.iter_mut().enumerate().take(n) {
            *field = Some(tuple.get_item(i)?);
        }
    } else {
        return Err(in_item(invalid(
            "task",
            format!("must be a dict or a tuple, not {}", type_name(item)),
        )));
    }
    task_of(&fields, now).map_err(in_item)
}

/// A task from its fields in the order of [`TASK_FIELDS`]; the first four
/// are required.
fn task_of(fields: &[Option<Bound<'_, PyAny>>], now: DateTime<Utc>) -> PyResult<TaskMetric> {
    let required = |i: usize| {
        fields[i]
            .as_ref()
            .ok_or_else(|| invalid(TASK_FIELDS[i], "missing"))
    };
    TaskArgs {
        task_id: required(0)?,
        agent_id: required(1)?,
        duration_ms: required(2)?,
        result: required(3)?,
        tokens_used: fields[4].as_ref(),
        files_changed: fields[5].as_ref(),
        timestamp: fields[6].as_ref(),
        swarm_id: fields[7].as_ref(),
        usage: std::array::from_fn(|i| fields[8 + i].as_ref()),
        trace: [fields[15].as_ref(), fields[16].as_ref()],
    }
    .task(now)
}

/// [`TASK_FIELDS`] as Python strings, made once: every dict of a batch is
/// read with them.
fn task_field_names(py: Python<'_>) -> &'static [Py<PyString>] {
    static NAMES: PyOnceLock<Vec<Py<PyString>>> = PyOnceLock::new();
    NAMES.get_or_init(py, || {
        TASK_FIELDS
            .iter()
            .map(|name| PyString::intern(py, name).unbind())
            .collect()
    })
}

/// The parts of an agent or swarm metric.
pub struct EntityParts {
    pub id: String,
    pub metric_type: MetricType,
    pub value: f64,
    pub metadata: Option<serde_json::Value>,
    pub timestamp: DateTime<Utc>,
}

impl EntityParts {
    /// Reads the parts from arguments; `id_field` is `agent_id` or
    /// `swarm_id`.
    pub fn read(
        id_field: &'static str,
        id: &Bound<'_, PyAny>,
        metric_type: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        now: DateTime<Utc>,
    ) -> PyResult<Self> {
        Ok(EntityParts {
            id: convert::string(id_field, id)?,
            metric_type: convert::enumerated("metric_type", metric_type)?,
            value: convert::real("value", value)?,
            metadata: match metadata {
                Some(m) if !m.is_none() => Some(convert::to_json("metadata", m)?),
                _ => None,
            },
            timestamp: convert::optional_instant("timestamp", timestamp)?.unwrap_or(now),
        })
    }

    /// Reads one item of a batch: a dict with the argument names, or a
    /// tuple `(id, metric_type, value[, metadata[, timestamp]])`.
    pub fn item(
        id_field: &'static str,
        index: usize,
        item: &Bound<'_, PyAny>,
        now: DateTime<Utc>,
    ) -> PyResult<Self> {
        let py = item.py();
        let in_item = |e: PyErr| in_batch(py, index, e);
        let names = [id_field, "metric_type", "value", "metadata", "timestamp"];
        let mut fields: [Option<Bound<'_, PyAny>>; ENTITY_FIELDS] = Default::default();
        if let Ok(dict) = item.cast::<PyDict>() {
            convert::refuse_unknown_keys("metric", dict, &names, "field").map_err(in_item)?;
            for (field, name) in fields.iter_mut().zip(names) {
                *field = dict.get_item(name)?;
            }
        } else if let Ok(tuple) = item.cast::<PyTuple>() {
            let n = tuple.len();
            if !(3..=ENTITY_FIELDS).contains(&n) {
                return Err(in_item(invalid(
                    "metric",
                    format!(
                        "a tuple holds 3 to 5 fields ({}), not {n}",
                        names.join(", ")
                    ),
                )));
            }
            for (i, field) in fields.iter_mut().enumerate().take(n) {
                *field = Some(tuple.get_item(i)?);
            }
        } else {
            return Err(in_item(invalid(
                "metric",
                format!("must be a dict or a tuple, not {}", type_name(item)),
            )));
        }
        let required = |i: usize| {
            fields[i]
                .as_ref()
                .ok_or_else(|| invalid(names[i], "missing"))
        };
        let parts = (|| {
            Self::read(
                id_field,
                required(0)?,
                required(1)?,
                required(2)?,
                fields[3].as_ref(),
                fields[4].as_ref(),
                now,
            )
        })();
        parts.map_err(in_item)
    }

    /// As an agent metric.
    pub fn agent(self) -> AgentMetric {
        let mut m = AgentMetric::new(self.id, self.metric_type, self.value).at(self.timestamp);
        m.metadata = self.metadata;
        m
    }

    /// As a swarm metric.
    pub fn swarm(self) -> SwarmMetric {
        let mut m = SwarmMetric::new(self.id, self.metric_type, self.value).at(self.timestamp);
        m.metadata = self.metadata;
        m
    }
}

/// Says which item of a batch an error is about, as the store says it,
/// keeping the error's class.
fn in_batch(py: Python<'_>, index: usize, error: PyErr) -> PyErr {
    let message = error.value(py).to_string();
    let class = error.get_type(py);
    match class.call1((format!(
        "{message} (record {index} of the batch; nothing was stored)"
    ),))
    {
        Ok(instance) => PyErr::from_value(instance),
        Err(_) => error,
    }
}

/// A stored task as the reference's dict (with `swarm_id` beside its
/// keys), its timestamp an aware `datetime` in UTC.
pub fn task_dict<'py>(py: Python<'py>, task: &TaskMetric) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item(intern!(py, "task_id"), &task.task_id)?;
    dict.set_item(intern!(py, "agent_id"), &task.agent_id)?;
    dict.set_item(intern!(py, "swarm_id"), &task.swarm_id)?;
    dict.set_item(intern!(py, "duration_ms"), task.duration_ms)?;
    dict.set_item(intern!(py, "result"), task.result.as_str())?;
    dict.set_item(intern!(py, "tokens_used"), task.tokens_used)?;
    dict.set_item(intern!(py, "files_changed"), task.files_changed)?;
    dict.set_item(intern!(py, "timestamp"), task.timestamp)?;
    // Usage only where there is some, so that other tasks keep the
    // reference's keys alone.
    let u = &task.usage;
    let counts = [
        (intern!(py, "input_tokens"), u.input_tokens),
        (intern!(py, "output_tokens"), u.output_tokens),
        (intern!(py, "cache_read_tokens"), u.cache_read_tokens),
        (intern!(py, "cache_write_tokens"), u.cache_write_tokens),
    ];
    for (key, value) in counts {
        if let Some(value) = value {
            dict.set_item(key, value)?;
        }
    }
    if let Some(model) = &u.model {
        dict.set_item(intern!(py, "model"), model)?;
    }
    if let Some(provider) = &u.provider {
        dict.set_item(intern!(py, "provider"), provider)?;
    }
    if let Some(cost) = u.cost_usd {
        dict.set_item(intern!(py, "cost_usd"), cost)?;
    }
    // The OpenTelemetry span of a task stored from one (OTLP ingest).
    if let Some(trace) = task.trace {
        dict.set_item(intern!(py, "trace_id"), trace.trace_hex())?;
        dict.set_item(intern!(py, "span_id"), trace.span_hex())?;
    }
    Ok(dict)
}

/// Stored tasks as a list of the reference's dicts.
pub fn task_list<'py>(py: Python<'py>, tasks: &[TaskMetric]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for task in tasks {
        list.append(task_dict(py, task)?)?;
    }
    Ok(list)
}
