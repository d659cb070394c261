//! `swarm_metrics.MetricsStorage`: the reference's class over the store.
//!
//! Every method reads its arguments while holding the GIL, then releases
//! it for the store's work, so that Python threads storing one task each
//! are committed together as Rust threads are.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use swarm_metrics::{
    now, AggregationType, Durability, EmptyBuckets, GroupBy, HealthOptions, Measure, MetricKind,
    MetricType, MetricsStorage as Store, Order, Price, RankBy, ReportOptions, RetentionPolicy,
    Rules,
};

use crate::convert::{self, answer, type_name};
use crate::errors::{invalid, store_error, Closed};
use crate::filters;
use crate::records::{self, EntityParts, TaskArgs};

/// The reference's default `limit` of the reads.
const DEFAULT_LIMIT: u64 = 1000;

/// A metrics store over one SQLite file (or a PostgreSQL server).
///
/// ``MetricsStorage(db_path=None)`` opens (or creates) the file, by default
/// ``.swarm/metrics.db`` under the current folder, creating its folder. A
/// ``postgres://`` URL opens the store on that server instead. Use it as a
/// context manager, or call ``close()``.
///
/// ``durability`` (files only): ``"normal"``, the default, makes a store
/// that returned survive the process being killed; ``"full"`` also makes
/// it survive the machine losing power, at the cost of a flush to disk per
/// commit.
///
/// One object is safe to share between threads; every call releases the
/// GIL while the store works. A store that returned has its data on disk:
/// it survives the process being killed.
///
/// Where this class differs from the reference module, it is because the
/// reference is wrong there: instants are kept in UTC to the microsecond
/// and come back as aware ``datetime`` objects (naive ones given in are
/// local time, as in the reference); two tasks with one ``task_id`` are
/// told apart to the microsecond; aggregates of an empty selection are
/// ``None``, not ``0.0``; ``stddev`` is the sample standard deviation,
/// computed without loss of precision.
#[pyclass(module = "swarm_metrics", frozen)]
pub struct MetricsStorage {
    store: RwLock<Option<Arc<Store>>>,
    location: String,
}

impl MetricsStorage {
    /// The open store, or `Closed`.
    fn store(&self) -> PyResult<Arc<Store>> {
        self.store
            .read()
            .map_err(|_| Closed::new_err("the store was poisoned by a panic"))?
            .clone()
            .ok_or_else(|| Closed::new_err(format!("{}: the store is closed", self.location)))
    }

    /// Rows of `kind` matching `filter`, newest first, at most `limit`
    /// (the reference's 1000 by default), as the reference's dicts.
    fn rows<'py>(
        &self,
        py: Python<'py>,
        kind: MetricKind,
        filter: swarm_metrics::Filter,
        limit: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let limit = convert::limit(limit, DEFAULT_LIMIT)?;
        match kind {
            MetricKind::Task => {
                let tasks = self.run(py, move |s| s.get_task_metrics(&filter, limit))?;
                records::task_list(py, &tasks).map(Bound::into_any)
            }
            MetricKind::Agent => {
                let rows = self.run(py, move |s| s.get_agent_metrics(&filter, limit))?;
                answer(py, &rows)
            }
            MetricKind::Swarm => {
                let rows = self.run(py, move |s| s.get_swarm_metrics(&filter, limit))?;
                answer(py, &rows)
            }
        }
    }

    /// Runs `work` on the store with the GIL released.
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        work: impl FnOnce(&Store) -> swarm_metrics::Result<T> + Send,
    ) -> PyResult<T> {
        let store = self.store()?;
        py.detach(move || work(&store)).map_err(store_error)
    }
}

#[pymethods]
impl MetricsStorage {
    #[new]
    #[pyo3(signature = (db_path=None, *, durability=None))]
    fn new(
        py: Python<'_>,
        db_path: Option<&Bound<'_, PyAny>>,
        durability: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let path: PathBuf = match db_path {
            Some(p) if !p.is_none() => p.extract().map_err(|_| {
                invalid(
                    "db_path",
                    format!("must be a str or a path, not {}", type_name(p)),
                )
            })?,
            _ => PathBuf::from(swarm_metrics::DEFAULT_PATH),
        };
        let mut builder = Store::builder(&path);
        match convert::optional_string("durability", durability)?.as_deref() {
            None => {}
            Some("normal") => builder = builder.durability(Durability::Normal),
            Some("full") => builder = builder.durability(Durability::Full),
            Some(other) => {
                return Err(invalid(
                    "durability",
                    format!("unknown value {other:?}; expected one of: normal, full"),
                ))
            }
        }
        let location = path.display().to_string();
        let store = py.detach(|| builder.open()).map_err(store_error)?;
        Ok(MetricsStorage {
            store: RwLock::new(Some(Arc::new(store))),
            location,
        })
    }

    /// The file's path, or the server's URL.
    #[getter]
    fn db_path(&self) -> &str {
        &self.location
    }

    /// True once ``close()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.store.read().map_or(true, |s| s.is_none())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { " (closed)" } else { "" };
        format!("MetricsStorage({:?}){state}", self.location)
    }

    /// Closes the store: waits for stores in flight, checkpoints the file
    /// and releases it. Later calls raise ``Closed``; closing twice is
    /// harmless.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self
            .store
            .write()
            .map_err(|_| Closed::new_err("the store was poisoned by a panic"))?
            .take();
        let Some(store) = taken else {
            return Ok(());
        };
        // Calls still in flight on other threads hold the store; the last
        // of them releases it as it returns.
        match Arc::try_unwrap(store) {
            Ok(store) => py.detach(|| store.close()).map_err(store_error),
            Err(_) => Ok(()),
        }
    }

    /// Rebuilds the file to reclaim the space of deleted rows.
    fn vacuum(&self, py: Python<'_>) -> PyResult<()> {
        self.run(py, |s| s.vacuum()).map(|_| ())
    }

    // ------------------------------------------------------------ tasks

    /// Stores one task metric. ``result`` is a ``TaskResult`` or its
    /// string; ``timestamp`` defaults to now (a naive ``datetime`` is local
    /// time). Storing the same task (same ``task_id`` and ``timestamp``)
    /// twice keeps one row.
    ///
    /// Raises ``InvalidInput`` (nothing stored) for a field of the wrong
    /// type, an unknown result, a negative count or an empty id.
    ///
    /// What the task's model calls used and cost, all optional and keyword
    /// only: ``input_tokens`` (cache reads and writes included),
    /// ``output_tokens``, ``cache_read_tokens``, ``cache_write_tokens``,
    /// ``model``, ``provider``, ``cost_usd`` (the bill, which wins over any
    /// price). ``tokens_used`` is then ``input_tokens + output_tokens``
    /// (completed when left out; a contradiction raises ``InvalidInput``).
    /// ``trace_id`` and ``span_id`` (hex, both or neither) name the
    /// OpenTelemetry span the task was recorded from, as rows of tasks
    /// stored from spans carry them.
    #[pyo3(signature = (task_id, agent_id, duration_ms, result, tokens_used=None, files_changed=None, timestamp=None, *, swarm_id=None, input_tokens=None, output_tokens=None, cache_read_tokens=None, cache_write_tokens=None, model=None, provider=None, cost_usd=None, trace_id=None, span_id=None), text_signature = "($self, task_id, agent_id, duration_ms, result, tokens_used=0, files_changed=0, timestamp=None, *, swarm_id=None, input_tokens=None, output_tokens=None, cache_read_tokens=None, cache_write_tokens=None, model=None, provider=None, cost_usd=None, trace_id=None, span_id=None)")]
    #[allow(clippy::too_many_arguments)]
    fn store_task_metric(
        &self,
        py: Python<'_>,
        task_id: &Bound<'_, PyAny>,
        agent_id: &Bound<'_, PyAny>,
        duration_ms: &Bound<'_, PyAny>,
        result: &Bound<'_, PyAny>,
        tokens_used: Option<&Bound<'_, PyAny>>,
        files_changed: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        swarm_id: Option<&Bound<'_, PyAny>>,
        input_tokens: Option<&Bound<'_, PyAny>>,
        output_tokens: Option<&Bound<'_, PyAny>>,
        cache_read_tokens: Option<&Bound<'_, PyAny>>,
        cache_write_tokens: Option<&Bound<'_, PyAny>>,
        model: Option<&Bound<'_, PyAny>>,
        provider: Option<&Bound<'_, PyAny>>,
        cost_usd: Option<&Bound<'_, PyAny>>,
        trace_id: Option<&Bound<'_, PyAny>>,
        span_id: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let task = TaskArgs {
            task_id,
            agent_id,
            duration_ms,
            result,
            tokens_used,
            files_changed,
            timestamp,
            swarm_id,
            usage: [
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_write_tokens,
                model,
                provider,
                cost_usd,
            ],
            trace: [trace_id, span_id],
        }
        .task(now())?;
        self.run(py, move |s| s.store_task_metric(&task))
            .map(|_| ())
    }

    /// Stores many task metrics in one transaction: all or none. Each item
    /// is a dict with ``store_task_metric``'s argument names, or a tuple
    /// ``(task_id, agent_id, duration_ms, result[, tokens_used[,
    /// files_changed[, timestamp[, swarm_id]]]])``. Returns how many were
    /// new (a task already stored is kept once).
    fn store_task_metrics(&self, py: Python<'_>, metrics: &Bound<'_, PyAny>) -> PyResult<usize> {
        let at = now();
        let tasks = metrics
            .try_iter()
            .map_err(|_| {
                invalid(
                    "metrics",
                    format!(
                        "must be a list of dicts or tuples, not {}",
                        type_name(metrics)
                    ),
                )
            })?
            .enumerate()
            .map(|(i, item)| records::task_item(i, &item?, at))
            .collect::<PyResult<Vec<_>>>()?;
        self.run(py, move |s| s.store_task_metrics(&tasks))
    }

    /// Task metrics matching every argument given, newest first, at most
    /// ``limit``, as dicts with the reference's keys (and ``swarm_id``).
    /// ``time_range`` is a ``(start, end)`` pair of datetimes, both
    /// included, or a ``timedelta`` meaning the last span up to now.
    #[pyo3(signature = (task_id=None, agent_id=None, result=None, time_range=None, limit=None, *, swarm_id=None), text_signature = "($self, task_id=None, agent_id=None, result=None, time_range=None, limit=1000, *, swarm_id=None)")]
    #[allow(clippy::too_many_arguments)]
    fn get_task_metrics<'py>(
        &self,
        py: Python<'py>,
        task_id: Option<&Bound<'_, PyAny>>,
        agent_id: Option<&Bound<'_, PyAny>>,
        result: Option<&Bound<'_, PyAny>>,
        time_range: Option<&Bound<'_, PyAny>>,
        limit: Option<&Bound<'_, PyAny>>,
        swarm_id: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut filter = swarm_metrics::Filter::new();
        filter.task_id = convert::optional_string("task_id", task_id)?;
        filter.agent_id = convert::optional_string("agent_id", agent_id)?;
        filter.swarm_id = convert::optional_string("swarm_id", swarm_id)?;
        filter.result = convert::optional_enumerated("result", result)?;
        filter.time_range = convert::time_range(time_range)?;
        self.rows(py, MetricKind::Task, filter, limit)
    }

    // ---------------------------------------------------- agents, swarms

    /// Stores one agent metric and returns its id. ``metric_type`` is an
    /// agent ``MetricType`` or its string; ``metadata`` a JSON-compatible
    /// dict. The same metric stored again (same agent, type, timestamp and
    /// value: a retry) is kept once, and its id returned.
    #[pyo3(signature = (agent_id, metric_type, value, metadata=None, timestamp=None))]
    fn store_agent_metric(
        &self,
        py: Python<'_>,
        agent_id: &Bound<'_, PyAny>,
        metric_type: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<i64> {
        let metric = EntityParts::read(
            "agent_id",
            agent_id,
            metric_type,
            value,
            metadata,
            timestamp,
            now(),
        )?
        .agent();
        self.run(py, move |s| s.store_agent_metric(&metric))
    }

    /// Stores one swarm metric and returns its id.
    #[pyo3(signature = (swarm_id, metric_type, value, metadata=None, timestamp=None))]
    fn store_swarm_metric(
        &self,
        py: Python<'_>,
        swarm_id: &Bound<'_, PyAny>,
        metric_type: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<i64> {
        let metric = EntityParts::read(
            "swarm_id",
            swarm_id,
            metric_type,
            value,
            metadata,
            timestamp,
            now(),
        )?
        .swarm();
        self.run(py, move |s| s.store_swarm_metric(&metric))
    }

    /// Stores many agent metrics in one transaction (all or none) and
    /// returns their ids. Each item is a dict with ``store_agent_metric``'s
    /// argument names, or a tuple ``(agent_id, metric_type, value[,
    /// metadata[, timestamp]])``.
    fn store_agent_metrics(
        &self,
        py: Python<'_>,
        metrics: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<i64>> {
        let metrics = entity_items("agent_id", metrics)?
            .into_iter()
            .map(EntityParts::agent)
            .collect::<Vec<_>>();
        self.run(py, move |s| s.store_agent_metrics(&metrics))
    }

    /// Stores many swarm metrics in one transaction (all or none) and
    /// returns their ids.
    fn store_swarm_metrics(
        &self,
        py: Python<'_>,
        metrics: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<i64>> {
        let metrics = entity_items("swarm_id", metrics)?
            .into_iter()
            .map(EntityParts::swarm)
            .collect::<Vec<_>>();
        self.run(py, move |s| s.store_swarm_metrics(&metrics))
    }

    /// Agent metrics, newest first, as dicts with the reference's keys
    /// (``metric_id``, ``agent_id``, ``metric_type``, ``value``,
    /// ``metadata``, ``timestamp``).
    #[pyo3(signature = (agent_id=None, metric_type=None, time_range=None, limit=None), text_signature = "($self, agent_id=None, metric_type=None, time_range=None, limit=1000)")]
    fn get_agent_metrics<'py>(
        &self,
        py: Python<'py>,
        agent_id: Option<&Bound<'_, PyAny>>,
        metric_type: Option<&Bound<'_, PyAny>>,
        time_range: Option<&Bound<'_, PyAny>>,
        limit: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut filter = swarm_metrics::Filter::new();
        filter.agent_id = convert::optional_string("agent_id", agent_id)?;
        filter.metric_type =
            convert::optional_enumerated::<MetricType>("metric_type", metric_type)?;
        filter.time_range = convert::time_range(time_range)?;
        self.rows(py, MetricKind::Agent, filter, limit)
    }

    /// Swarm metrics, newest first, as dicts with the reference's keys.
    #[pyo3(signature = (swarm_id=None, metric_type=None, time_range=None, limit=None), text_signature = "($self, swarm_id=None, metric_type=None, time_range=None, limit=1000)")]
    fn get_swarm_metrics<'py>(
        &self,
        py: Python<'py>,
        swarm_id: Option<&Bound<'_, PyAny>>,
        metric_type: Option<&Bound<'_, PyAny>>,
        time_range: Option<&Bound<'_, PyAny>>,
        limit: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut filter = swarm_metrics::Filter::new();
        filter.swarm_id = convert::optional_string("swarm_id", swarm_id)?;
        filter.metric_type =
            convert::optional_enumerated::<MetricType>("metric_type", metric_type)?;
        filter.time_range = convert::time_range(time_range)?;
        self.rows(py, MetricKind::Swarm, filter, limit)
    }

    // ----------------------------------------------------------- generic

    /// Stores one metric given as a dict with the reference's field names;
    /// ``metric_type`` is the kind: ``"task"``, ``"agent"`` or ``"swarm"``.
    /// Returns the new id for agent and swarm metrics, ``None`` for tasks.
    #[pyo3(signature = (metric_type, data, timestamp=None))]
    fn store_metric(
        &self,
        py: Python<'_>,
        metric_type: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
        timestamp: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<i64>> {
        let kind: MetricKind = convert::enumerated("metric_type", metric_type)?;
        if data.cast::<PyDict>().is_err() {
            return Err(invalid(
                "data",
                format!("must be a dict, not {}", type_name(data)),
            ));
        }
        let mut data = convert::to_json("data", data)?;
        if let Some(at) = convert::optional_instant("timestamp", timestamp)? {
            if let Some(fields) = data.as_object_mut() {
                fields.insert(
                    "timestamp".to_owned(),
                    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                        .into(),
                );
            }
        }
        self.run(py, move |s| s.store_metric(kind, &data))
    }

    /// Metrics of one kind (``"task"``, ``"agent"`` or ``"swarm"``)
    /// matching ``filters`` (a dict of ``task_id``, ``agent_id``,
    /// ``swarm_id``, ``result``, ``metric_type``) and ``time_range``,
    /// newest first, at most ``limit``, as dicts with the reference's keys.
    #[pyo3(signature = (metric_type, filters=None, time_range=None, limit=None), text_signature = "($self, metric_type, filters=None, time_range=None, limit=1000)")]
    fn query_metrics<'py>(
        &self,
        py: Python<'py>,
        metric_type: &Bound<'_, PyAny>,
        filters: Option<&Bound<'_, PyAny>>,
        time_range: Option<&Bound<'_, PyAny>>,
        limit: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kind: MetricKind = convert::enumerated("metric_type", metric_type)?;
        let filter = filters::from_reference(filters, time_range)?;
        self.rows(py, kind, filter, limit)
    }

    /// Aggregates metrics of one kind (``"task"``, ``"agent"`` or
    /// ``"swarm"``): ``avg``, ``sum``, ``count``, ``min``, ``max`` or
    /// ``stddev``. For tasks, ``filters={"metric_type": "task_tokens"}``
    /// (or ``task_files``, ``task_cost`` in USD with ``unpriced`` counting
    /// the tasks without a cost) picks what is measured; durations by default.
    ///
    /// Returns a dict with ``metric_type``, ``aggregation``, ``count``,
    /// ``result`` (the aggregate) and the aggregate again under the
    /// aggregation's own name (``avg``, ``stddev`` …), as the reference
    /// does. The aggregate of an empty selection is ``None``, not ``0.0``;
    /// ``count`` is then 0.
    #[pyo3(signature = (metric_type, aggregation, time_range=None, filters=None))]
    fn aggregate_metrics<'py>(
        &self,
        py: Python<'py>,
        metric_type: &Bound<'_, PyAny>,
        aggregation: &Bound<'_, PyAny>,
        time_range: Option<&Bound<'_, PyAny>>,
        filters: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let kind: MetricKind = convert::enumerated("metric_type", metric_type)?;
        let aggregation: AggregationType = convert::enumerated("aggregation", aggregation)?;
        let filter = filters::from_reference(filters, time_range)?;
        let aggregate = self.run(py, move |s| s.aggregate_metrics(kind, aggregation, &filter))?;
        let out = PyDict::new(py);
        out.set_item("metric_type", kind.as_str())?;
        out.set_item("aggregation", aggregation.as_str())?;
        out.set_item("measure", aggregate.metric_type.map(MetricType::as_str))?;
        out.set_item("count", aggregate.count)?;
        if aggregation == AggregationType::Count {
            out.set_item("result", aggregate.count)?;
        } else {
            out.set_item("result", aggregate.value)?;
        }
        if aggregation != AggregationType::Count {
            out.set_item(aggregation.as_str(), aggregate.value)?;
        }
        // Costs say how many selected tasks had none.
        if let Some(unpriced) = aggregate.unpriced {
            out.set_item("unpriced", unpriced)?;
        }
        Ok(out)
    }

    // -------------------------------------------------------- maintenance

    /// Deletes metrics older than ``retention_days`` days (and rollups
    /// wholly older) and returns how many rows left each table:
    /// ``{"task_metrics": n, "agent_metrics": n, "swarm_metrics": n}``.
    #[pyo3(signature = (retention_days=None), text_signature = "($self, retention_days=30)")]
    fn cleanup_old_metrics<'py>(
        &self,
        py: Python<'py>,
        retention_days: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let days = u32::try_from(convert::count_or("retention_days", retention_days, 30)?)
            .map_err(|_| invalid("retention_days", "is too large"))?;
        let report = self.run(py, move |s| s.cleanup_old_metrics(days))?;
        // The reference's order; the rollups and alert history only when
        // something left them.
        let out = PyDict::new(py);
        out.set_item("task_metrics", report.task_metrics)?;
        out.set_item("agent_metrics", report.agent_metrics)?;
        out.set_item("swarm_metrics", report.swarm_metrics)?;
        if report.rollups > 0 {
            out.set_item("rollups", report.rollups)?;
        }
        if report.alert_transitions > 0 {
            out.set_item("alert_transitions", report.alert_transitions)?;
        }
        Ok(out)
    }

    /// Applies tiered retention: raw rows older than ``raw`` are folded
    /// into hourly rollups, hourly ones older than ``hourly`` into daily
    /// ones, daily ones older than ``daily`` deleted (horizons aligned
    /// down to whole hours for raw rows, to whole days for rollups). Each horizon is a
    /// ``timedelta``; ``None`` keeps the default (7, 90 and 730 days), and
    /// ``"forever"`` keeps that tier for ever. Counts, sums and success
    /// rates stay exact. Returns what was folded and deleted.
    #[pyo3(signature = (raw=None, hourly=None, daily=None))]
    fn apply_retention<'py>(
        &self,
        py: Python<'py>,
        raw: Option<&Bound<'_, PyAny>>,
        hourly: Option<&Bound<'_, PyAny>>,
        daily: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let defaults = RetentionPolicy::default();
        let horizon = |field, value: Option<&Bound<'_, PyAny>>, default| match value {
            None => Ok(default),
            Some(v) if v.is_none() => Ok(default),
            Some(v) if v.extract::<String>().is_ok_and(|s| s == "forever") => Ok(None),
            Some(v) => convert::span(field, v)
                .map_err(|_| {
                    invalid(
                        field,
                        format!(
                            "must be a timedelta, None or \"forever\", not {}",
                            type_name(v)
                        ),
                    )
                })
                .map(Some),
        };
        let policy = RetentionPolicy {
            raw: horizon("raw", raw, defaults.raw)?,
            hourly: horizon("hourly", hourly, defaults.hourly)?,
            daily: horizon("daily", daily, defaults.daily)?,
            ..defaults
        };
        let report = self.run(py, move |s| s.apply_retention(&policy))?;
        answer(py, &report)
    }

    /// Row counts, sizes and time spans of every table.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stats = self.run(py, |s| s.stats())?;
        answer(py, &stats)
    }

    /// The health check: ``status`` (``"ok"`` or not) and each check.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let store = self.store()?;
        let health = py.detach(move || store.health(&HealthOptions::new()));
        answer(py, &health)
    }

    /// The file's integrity check: an empty list when sound, else what is
    /// damaged.
    fn integrity_check(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.run(py, |s| s.integrity_check())
    }

    // ------------------------------------------------------------ answers

    /// The share of tasks that succeeded, with its confidence interval:
    /// ``{"rate", "success", "total", "failure", "timeout", "cancelled",
    /// "interval": {"lower", "upper", …}}``. Keyword filters: ``task_id``,
    /// ``agent_id``, ``swarm_id``, ``result``, ``time_range``.
    #[pyo3(signature = (**filters))]
    fn success_rate<'py>(
        &self,
        py: Python<'py>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filter = filters::from_kwargs(filters)?;
        let rate = self.run(py, move |s| s.success_rate(&filter))?;
        answer(py, &rate)
    }

    /// Sets ``model``'s price from ``valid_from`` (a ``datetime``; naive is
    /// local time) on, in USD per million tokens of each type: ``input``
    /// (not read from or written to a cache), ``output``, ``cache_read``,
    /// ``cache_write``. Tasks stored from then on are priced by it.
    #[pyo3(signature = (model, valid_from, input, output, cache_read=0.0, cache_write=0.0))]
    #[allow(clippy::too_many_arguments)]
    fn set_price(
        &self,
        py: Python<'_>,
        model: &Bound<'_, PyAny>,
        valid_from: &Bound<'_, PyAny>,
        input: &Bound<'_, PyAny>,
        output: &Bound<'_, PyAny>,
        cache_read: f64,
        cache_write: f64,
    ) -> PyResult<()> {
        let model = convert::string("model", model)?;
        let from = convert::instant("valid_from", valid_from)?;
        let price = Price {
            input: convert::real("input", input)?,
            output: convert::real("output", output)?,
            cache_read,
            cache_write,
        };
        self.run(py, move |s| s.set_price(&model, from, price))
    }

    /// Every price: ``[{"model", "from", "input", "output", "cache_read",
    /// "cache_write"}]`` by model and date.
    fn prices<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let prices = self.run(py, |s| s.prices())?;
        answer(py, &prices)
    }

    /// Prices again the tasks stored since ``since`` (a ``datetime``, or a
    /// ``timedelta`` back from now), bills kept; says how many tasks and
    /// rollups were already folded and keep their cost.
    fn recompute_costs<'py>(
        &self,
        py: Python<'py>,
        since: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let since = match convert::span("since", since) {
            Ok(back) => now() - back,
            Err(_) => convert::instant("since", since)?,
        };
        let report = self.run(py, move |s| s.recompute_costs(since))?;
        answer(py, &report)
    }

    /// What a success costs: the cost of all selected tasks (USD) divided
    /// by the successes, ``[{"id", "cost_usd", "successes",
    /// "cost_per_success_usd", "unpriced"}]``, whole (``by=None``) or per
    /// ``"agent"`` or ``"swarm"``.
    #[pyo3(signature = (by=None, **filters))]
    fn cost_per_success<'py>(
        &self,
        py: Python<'py>,
        by: Option<&Bound<'_, PyAny>>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let by: Option<GroupBy> = match by {
            Some(by) if !by.is_none() => Some(convert::option("by", by, GROUPINGS)?),
            _ => None,
        };
        let filter = filters::from_kwargs(filters)?;
        let lines = self.run(py, move |s| s.cost_per_success(by, &filter))?;
        answer(py, &lines)
    }

    /// Tokens by type of the selected tasks: ``{"tasks",
    /// "with_breakdown", "total", "input", "output", "cache_read",
    /// "cache_write", "unsplit"}``.
    #[pyo3(signature = (**filters))]
    fn tokens_by_type<'py>(
        &self,
        py: Python<'py>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filter = filters::from_kwargs(filters)?;
        let tokens = self.run(py, move |s| s.tokens_by_type(&filter))?;
        answer(py, &tokens)
    }

    /// Success rates per ``by`` (``"agent"``, ``"swarm"`` or
    /// ``"result"``), each with its interval.
    #[pyo3(signature = (by, **filters))]
    fn success_rate_by<'py>(
        &self,
        py: Python<'py>,
        by: &Bound<'_, PyAny>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let by: GroupBy = convert::option("by", by, GROUPINGS)?;
        let filter = filters::from_kwargs(filters)?;
        let rates = self.run(py, move |s| s.success_rate_by(by, &filter))?;
        answer(py, &rates)
    }

    /// The ``q`` quantile (``0.95`` for p95) of a kind's values: task
    /// durations unless ``metric_type`` says tokens or files.
    #[pyo3(signature = (q, kind=None, **filters), text_signature = "($self, q, kind='task', **filters)")]
    fn percentile<'py>(
        &self,
        py: Python<'py>,
        q: &Bound<'_, PyAny>,
        kind: Option<&Bound<'_, PyAny>>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = convert::real("q", q)?;
        let kind = convert::optional_enumerated("kind", kind)?.unwrap_or(MetricKind::Task);
        let filter = filters::from_kwargs(filters)?;
        let p = self.run(py, move |s| s.percentile(kind, q, &filter))?;
        answer(py, &p)
    }

    /// Several quantiles of one selection, read once.
    #[pyo3(signature = (qs, kind=None, **filters), text_signature = "($self, qs, kind='task', **filters)")]
    fn percentiles<'py>(
        &self,
        py: Python<'py>,
        qs: Vec<f64>,
        kind: Option<&Bound<'_, PyAny>>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kind = convert::optional_enumerated("kind", kind)?.unwrap_or(MetricKind::Task);
        let filter = filters::from_kwargs(filters)?;
        let ps = self.run(py, move |s| s.percentiles(kind, &qs, &filter))?;
        answer(py, &ps)
    }

    /// An aggregate per ``by`` (``"agent"``, ``"swarm"``, ``"result"`` or
    /// ``"metric_type"``).
    #[pyo3(signature = (kind, aggregation, by, **filters))]
    fn aggregate_by<'py>(
        &self,
        py: Python<'py>,
        kind: Option<&Bound<'_, PyAny>>,
        aggregation: &Bound<'_, PyAny>,
        by: &Bound<'_, PyAny>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kind = convert::optional_enumerated("kind", kind)?.unwrap_or(MetricKind::Task);
        let aggregation: AggregationType = convert::enumerated("aggregation", aggregation)?;
        let by: GroupBy = convert::option("by", by, GROUPINGS)?;
        let filter = filters::from_kwargs(filters)?;
        let groups = self.run(py, move |s| s.aggregate_by(kind, aggregation, by, &filter))?;
        answer(py, &groups)
    }

    /// The ``q`` quantile per ``by``.
    #[pyo3(signature = (q, by, kind=None, **filters), text_signature = "($self, q, by, kind='task', **filters)")]
    fn percentile_by<'py>(
        &self,
        py: Python<'py>,
        q: &Bound<'_, PyAny>,
        by: &Bound<'_, PyAny>,
        kind: Option<&Bound<'_, PyAny>>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = convert::real("q", q)?;
        let by: GroupBy = convert::option("by", by, GROUPINGS)?;
        let kind = convert::optional_enumerated("kind", kind)?.unwrap_or(MetricKind::Task);
        let filter = filters::from_kwargs(filters)?;
        let groups = self.run(py, move |s| s.percentile_by(kind, q, by, &filter))?;
        answer(py, &groups)
    }

    /// A time series: ``measure`` per bucket of ``width`` (a
    /// ``timedelta``). ``measure`` is an aggregation (``"avg"``, ``"sum"``
    /// …), ``"success_rate"``, or a quantile as a float (``0.95``) or as
    /// ``"p95"``. ``empty="zero"`` also lists buckets without metrics.
    #[pyo3(signature = (measure, width, kind=None, empty=None, **filters), text_signature = "($self, measure, width, kind='task', empty='skip', **filters)")]
    fn series<'py>(
        &self,
        py: Python<'py>,
        measure: &Bound<'_, PyAny>,
        width: &Bound<'_, PyAny>,
        kind: Option<&Bound<'_, PyAny>>,
        empty: Option<&Bound<'_, PyAny>>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let measure = series_measure(measure)?;
        let width = convert::span("width", width)?;
        let kind = convert::optional_enumerated("kind", kind)?.unwrap_or(MetricKind::Task);
        let empty: EmptyBuckets =
            convert::option_or("empty", empty, "skip, zero", EmptyBuckets::Skip)?;
        let filter = filters::from_kwargs(filters)?;
        let buckets = self.run(py, move |s| s.series(kind, measure, width, &filter, empty))?;
        answer(py, &buckets)
    }

    /// Agents ranked ``by`` ``"success_rate"`` (the lower bound of its
    /// interval, so that few tasks do not rank high by luck),
    /// ``"raw_success_rate"``, ``"throughput"``, ``"avg_duration"`` or
    /// ``"avg_tokens"``; best first unless ``order="worst_first"``; agents
    /// with fewer than ``min_tasks`` tasks left out.
    #[pyo3(signature = (by=None, n=None, order=None, min_tasks=None, **filters), text_signature = "($self, by='success_rate', n=10, order='best_first', min_tasks=1, **filters)")]
    fn rank_agents<'py>(
        &self,
        py: Python<'py>,
        by: Option<&Bound<'_, PyAny>>,
        n: Option<&Bound<'_, PyAny>>,
        order: Option<&Bound<'_, PyAny>>,
        min_tasks: Option<&Bound<'_, PyAny>>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let by = convert::option_or(
            "by",
            by,
            "success_rate, raw_success_rate, throughput, avg_duration, avg_tokens",
            RankBy::SuccessRate,
        )?;
        let n = convert::limit_named("n", n, 10)?;
        let order =
            convert::option_or("order", order, "best_first, worst_first", Order::BestFirst)?;
        let min_tasks = convert::count_or("min_tasks", min_tasks, 1)?;
        let filter = filters::from_kwargs(filters)?;
        let ranked = self.run(py, move |s| s.rank_agents(by, order, n, min_tasks, &filter))?;
        answer(py, &ranked)
    }

    /// The ``n`` slowest tasks, slowest first, as task dicts.
    #[pyo3(signature = (n=None, **filters), text_signature = "($self, n=10, **filters)")]
    fn slowest_tasks<'py>(
        &self,
        py: Python<'py>,
        n: Option<&Bound<'_, PyAny>>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let n = convert::limit_named("n", n, 10)?;
        let filter = filters::from_kwargs(filters)?;
        let tasks = self.run(py, move |s| s.slowest_tasks(n, &filter))?;
        records::task_list(py, &tasks)
    }

    /// One dict that sums the selection up: counts by result, the success
    /// rate with its interval, duration statistics and percentiles, tokens
    /// and files, and the time span.
    #[pyo3(signature = (**filters))]
    fn summary<'py>(
        &self,
        py: Python<'py>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filter = filters::from_kwargs(filters)?;
        let summary = self.run(py, move |s| s.summary(&filter))?;
        answer(py, &summary)
    }

    /// Tasks whose duration lies far outside their agent's usual ones
    /// (beyond the Tukey fences of the agent's durations).
    #[pyo3(signature = (**filters))]
    fn duration_outliers<'py>(
        &self,
        py: Python<'py>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filter = filters::from_kwargs(filters)?;
        let outliers = self.run(py, move |s| s.duration_outliers(&filter))?;
        answer(py, &outliers)
    }

    /// Compares two selections (each a dict of the keyword filters):
    /// success rates with a test of their difference, and durations.
    fn compare<'py>(
        &self,
        py: Python<'py>,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let a = filters::from_dict("a", a)?;
        let b = filters::from_dict("b", b)?;
        let comparison = self.run(py, move |s| s.compare(&a, &b))?;
        answer(py, &comparison)
    }

    /// Agents whose success rate or duration got significantly worse in
    /// the ``current`` window than in the ``baseline`` window (each a
    /// ``(start, end)`` pair or a ``timedelta``), at a false discovery rate
    /// of ``alpha``.
    #[pyo3(signature = (current, baseline, alpha=None, **filters), text_signature = "($self, current, baseline, alpha=0.05, **filters)")]
    fn regressions<'py>(
        &self,
        py: Python<'py>,
        current: &Bound<'_, PyAny>,
        baseline: &Bound<'_, PyAny>,
        alpha: Option<&Bound<'_, PyAny>>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let window = |field: &'static str, value: &Bound<'_, PyAny>| {
            convert::time_range(Some(value))?
                .ok_or_else(|| invalid(field, "must be a (start, end) pair or a timedelta"))
        };
        let current = window("current", current)?;
        let baseline = window("baseline", baseline)?;
        let alpha = match alpha {
            Some(a) if !a.is_none() => convert::real("alpha", a)?,
            _ => 0.05,
        };
        let within = filters::from_kwargs(filters)?;
        let found = self.run(py, move |s| {
            s.regressions_in(&within, current, baseline, alpha)
        })?;
        answer(py, &found)
    }

    /// The one-file HTML report of the selection (no network needed to
    /// view it). Returns the page; also writes it to ``path`` when given.
    #[pyo3(signature = (path=None, title=None, **filters))]
    fn report(
        &self,
        py: Python<'_>,
        path: Option<PathBuf>,
        title: Option<String>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<String> {
        let mut options = ReportOptions::new().filter(filters::from_kwargs(filters)?);
        if let Some(title) = title {
            options = options.title(title);
        }
        self.run(py, move |s| {
            let page = s.report(&options)?;
            if let Some(path) = &path {
                page.write_html(path)?;
            }
            Ok(page.to_html())
        })
    }

    // ------------------------------------------------------------- alerts

    /// Evaluates alert rules (TOML text, as ``swarm-metrics alerts``
    /// reads it) at ``at`` (default now), records the transitions, and
    /// returns every alert instance with its state.
    #[pyo3(signature = (rules, at=None))]
    fn evaluate_alerts<'py>(
        &self,
        py: Python<'py>,
        rules: &str,
        at: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rules = Rules::from_toml_str(rules).map_err(store_error)?;
        let at = convert::optional_instant("at", at)?.unwrap_or_else(now);
        let alerts = self.run(py, move |s| s.evaluate_alerts(&rules, at))?;
        answer(py, &alerts)
    }

    /// The alerts as last evaluated.
    fn alert_states<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let alerts = self.run(py, |s| s.alert_states())?;
        answer(py, &alerts)
    }

    /// The alerts' transitions, oldest first.
    #[pyo3(signature = (**filters))]
    fn alert_history<'py>(
        &self,
        py: Python<'py>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filter = filters::from_kwargs(filters)?;
        let history = self.run(py, move |s| s.alert_history(&filter))?;
        answer(py, &history)
    }
}

/// The groupings, for messages.
const GROUPINGS: &str = "agent, swarm, result, metric_type, model";

/// What a series measures, from `"avg"` (any aggregation),
/// `"success_rate"`, a quantile as a float, or `"p95"`.
fn series_measure(value: &Bound<'_, PyAny>) -> PyResult<Measure> {
    const KNOWN: &str =
        "avg, sum, count, min, max, stddev, success_rate, a quantile such as 0.95 or \"p95\"";
    if value.is_instance_of::<pyo3::types::PyFloat>() {
        return convert::real("measure", value).map(Measure::Percentile);
    }
    let text = convert::string("measure", value)
        .map_err(|_| invalid("measure", format!("must be one of: {KNOWN}")))?;
    if text == "success_rate" {
        return Ok(Measure::SuccessRate);
    }
    if let Ok(aggregation) = text.parse::<AggregationType>() {
        return Ok(Measure::Aggregate(aggregation));
    }
    if let Some(q) = text
        .strip_prefix('p')
        .and_then(|digits| digits.parse::<f64>().ok())
    {
        return Ok(Measure::Percentile(q / 100.0));
    }
    Err(invalid(
        "measure",
        format!("unknown value {text:?}; expected one of: {KNOWN}"),
    ))
}

/// The agent or swarm metrics of a batch.
fn entity_items(id_field: &'static str, metrics: &Bound<'_, PyAny>) -> PyResult<Vec<EntityParts>> {
    let at = now();
    metrics
        .try_iter()
        .map_err(|_| {
            invalid(
                "metrics",
                format!(
                    "must be a list of dicts or tuples, not {}",
                    type_name(metrics)
                ),
            )
        })?
        .enumerate()
        .map(|(i, item)| EntityParts::item(id_field, i, &item?, at))
        .collect()
}
