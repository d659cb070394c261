"""The reference module's API, call by call, against a plain model of the
same records: argument names, defaults, enums and return shapes."""

import inspect
import math
import os
import time
from datetime import datetime, timedelta, timezone

import pytest

import swarm_metrics
from swarm_metrics import (
    AggregationType,
    MetricsStorage,
    MetricType,
    TaskResult,
)

from model import RESULTS, Entity, Model, aggregate, random_tasks, utc_now

TASK_KEYS = {
    "task_id",
    "agent_id",
    "swarm_id",
    "duration_ms",
    "result",
    "tokens_used",
    "files_changed",
    "timestamp",
}
ENTITY_KEYS = {"metric_id", "metric_type", "value", "metadata", "timestamp"}


def store_tasks_one_by_one(store, tasks):
    for t in tasks:
        store.store_task_metric(
            t.task_id,
            t.agent_id,
            t.duration_ms,
            t.result,
            tokens_used=t.tokens_used,
            files_changed=t.files_changed,
            timestamp=t.timestamp,
            swarm_id=t.swarm_id,
        )


@pytest.fixture
def loaded(store):
    """A store and a model holding the same 240 tasks over ten days."""
    now = utc_now()
    model = Model(tasks=random_tasks(7, 240, now))
    store_tasks_one_by_one(store, model.tasks)
    return store, model, now


def test_signatures_keep_the_reference_names_and_defaults():
    def params(name):
        return list(inspect.signature(getattr(MetricsStorage, name)).parameters.items())

    def shown(name):
        return [(k, p.default) for k, p in params(name) if k != "self"]

    assert shown("store_task_metric")[:7] == [
        ("task_id", inspect.Parameter.empty),
        ("agent_id", inspect.Parameter.empty),
        ("duration_ms", inspect.Parameter.empty),
        ("result", inspect.Parameter.empty),
        ("tokens_used", 0),
        ("files_changed", 0),
        ("timestamp", None),
    ]
    assert shown("get_task_metrics")[:5] == [
        ("task_id", None),
        ("agent_id", None),
        ("result", None),
        ("time_range", None),
        ("limit", 1000),
    ]
    for kind in ("agent", "swarm"):
        assert [k for k, _ in shown(f"store_{kind}_metric")] == [
            f"{kind}_id", "metric_type", "value", "metadata", "timestamp"
        ]
        assert shown(f"get_{kind}_metrics") == [
            (f"{kind}_id", None), ("metric_type", None), ("time_range", None), ("limit", 1000)
        ]
    assert [k for k, _ in shown("store_metric")] == ["metric_type", "data", "timestamp"]
    assert shown("query_metrics")[1:] == [("filters", None), ("time_range", None), ("limit", 1000)]
    assert shown("aggregate_metrics")[2:] == [("time_range", None), ("filters", None)]
    assert shown("cleanup_old_metrics") == [("retention_days", 30)]
    assert inspect.signature(MetricsStorage).parameters["db_path"].default is None


def test_enums_are_str_enums_equal_to_their_values():
    assert TaskResult.SUCCESS == "success" and isinstance(TaskResult.TIMEOUT, str)
    assert [m.value for m in TaskResult] == RESULTS
    assert MetricType.AGENT_SUCCESS_RATE == "agent_success_rate"
    assert len(MetricType) == 12
    assert [a.value for a in AggregationType] == ["avg", "sum", "count", "min", "max", "stddev"]
    assert TaskResult("failure") is TaskResult.FAILURE


def test_get_task_metrics_matches_the_model_for_every_filter(loaded):
    store, model, now = loaded
    window = (now - timedelta(days=3), now - timedelta(days=1))
    cases = [
        {},
        {"agent_id": "agent-b"},
        {"result": TaskResult.FAILURE},
        {"result": "timeout", "agent_id": "agent-c"},
        {"task_id": "task-00017"},
        {"time_range": window},
        {"agent_id": "agent-a", "time_range": window},
        {"agent_id": "nobody"},
    ]
    for case in cases:
        for limit in (1000, 7):
            got = store.get_task_metrics(**case, limit=limit)
            want = model.newest_first(model.select_tasks(**case), limit)
            assert [r["task_id"] for r in got] == [t.task_id for t in want], case
            assert got == [t.as_dict() for t in want], case
    assert set(store.get_task_metrics(limit=1)[0]) == TASK_KEYS


def test_default_limit_is_1000(store):
    now = utc_now()
    tasks = random_tasks(3, 1100, now, span=timedelta(hours=5))
    store.store_task_metrics([t.as_dict() for t in tasks])
    assert len(store.get_task_metrics()) == 1000
    assert len(store.query_metrics("task")) == 1000
    assert len(store.get_task_metrics(limit=2000)) == 1100


def test_timestamps_come_back_aware_and_exact_to_the_microsecond(store):
    at = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    store.store_task_metric("t", "a", 10, "success", timestamp=at)
    (row,) = store.get_task_metrics()
    assert row["timestamp"] == at
    assert row["timestamp"].tzinfo == timezone.utc


def test_naive_datetimes_are_local_time(store, monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        naive = datetime(2026, 7, 1, 12, 0, 0)
        store.store_task_metric("t", "a", 10, "success", timestamp=naive)
        (row,) = store.get_task_metrics()
        # 12:00 in New York in July is 16:00 UTC.
        assert row["timestamp"] == datetime(2026, 7, 1, 16, 0, tzinfo=timezone.utc)
        inside = (datetime(2026, 7, 1, 11, 59), datetime(2026, 7, 1, 12, 1))
        outside = (datetime(2026, 7, 1, 15, 59), datetime(2026, 7, 1, 16, 1))
        assert len(store.get_task_metrics(time_range=inside)) == 1
        assert store.get_task_metrics(time_range=outside) == []
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_agent_and_swarm_metrics_round_trip_with_ids_and_metadata(store):
    now = utc_now()
    model = Model()
    specs = [
        ("agent", "agent-1", MetricType.AGENT_SUCCESS_RATE, 0.95, {"total_tasks": 100}),
        ("agent", "agent-1", "agent_error_count", 5, {"error_types": {"timeout": 3}}),
        ("agent", "agent-2", MetricType.AGENT_THROUGHPUT, 12.5, None),
        ("swarm", "swarm-p", MetricType.SWARM_HEALTH, 0.98, {"active_agents": 10}),
        ("swarm", "swarm-p", "swarm_latency", 250.0, {"nested": [1, 2.5, "x", None, True]}),
        ("swarm", "swarm-q", MetricType.SWARM_RESOURCE, 0.0, None),
    ]
    for i, (kind, id, mt, value, meta) in enumerate(specs):
        at = now - timedelta(minutes=60 - i)
        store_call = getattr(store, f"store_{kind}_metric")
        metric_id = store_call(id, mt, value, metadata=meta, timestamp=at)
        assert isinstance(metric_id, int)
        model.entities.append(Entity(kind, id, str(mt.value if hasattr(mt, "value") else mt),
                                     float(value), meta, at, metric_id))
    for kind in ("agent", "swarm"):
        get = getattr(store, f"get_{kind}_metrics")
        ids = {e.id for e in model.entities if e.kind == kind}
        types = {e.metric_type for e in model.entities if e.kind == kind}
        for id in [None, *ids]:
            for mt in [None, *types]:
                got = get(**{f"{kind}_id": id, "metric_type": mt})
                want = sorted(model.select_entities(kind, id, mt), key=lambda e: e.timestamp,
                              reverse=True)
                assert [
                    (r["metric_id"], r[f"{kind}_id"], r["metric_type"], r["value"],
                     r["metadata"], r["timestamp"])
                    for r in got
                ] == [
                    (e.metric_id, e.id, e.metric_type, e.value, e.metadata, e.timestamp)
                    for e in want
                ]
                assert all(set(r) == ENTITY_KEYS | {f"{kind}_id"} for r in got)
    for kind in ("agent", "swarm"):
        ids = [e.metric_id for e in model.entities if e.kind == kind]
        assert len(set(ids)) == len(ids)


def test_store_metric_and_query_metrics_speak_the_reference_dicts(store):
    now = utc_now()
    assert store.store_metric(
        "task",
        {"task_id": "t1", "agent_id": "a", "duration_ms": 5, "result": TaskResult.SUCCESS},
        timestamp=now - timedelta(seconds=5),
    ) is None
    store.store_metric("task", {"task_id": "t2", "agent_id": "b", "duration_ms": 7,
                                "result": "failure", "timestamp": now})
    agent_id = store.store_metric("agent", {"agent_id": "a", "metric_type": "agent_duration",
                                            "value": 1.5, "metadata": {"k": "v"}})
    swarm_id = store.store_metric("swarm", {"swarm_id": "s", "metric_type": "swarm_health",
                                            "value": 0.5})
    assert isinstance(agent_id, int) and isinstance(swarm_id, int)

    tasks = store.query_metrics("task")
    assert [t["task_id"] for t in tasks] == ["t2", "t1"]
    assert tasks[0]["timestamp"] == now.replace(microsecond=now.microsecond)
    assert [t["task_id"] for t in store.query_metrics("task", filters={"agent_id": "a"})] == ["t1"]
    assert [t["task_id"] for t in store.query_metrics(
        "task", filters={"result": TaskResult.FAILURE})] == ["t2"]
    window = (now - timedelta(seconds=6), now - timedelta(seconds=4))
    assert [t["task_id"] for t in store.query_metrics("task", time_range=window)] == ["t1"]
    (agent,) = store.query_metrics("agent", filters={"agent_id": "a"})
    assert (agent["metric_id"], agent["value"], agent["metadata"]) == (agent_id, 1.5, {"k": "v"})
    (swarm,) = store.query_metrics("swarm", filters={"metric_type": MetricType.SWARM_HEALTH})
    assert swarm["metric_id"] == swarm_id
    assert store.query_metrics("task", limit=1)[0]["task_id"] == "t2"


@pytest.mark.parametrize("aggregation", list(AggregationType))
def test_aggregates_match_the_model(loaded, aggregation):
    store, model, now = loaded
    window = (now - timedelta(days=4), now)
    cases = [
        (None, None, "duration_ms"),
        (window, {"agent_id": "agent-a"}, "duration_ms"),
        (None, {"result": "success"}, "duration_ms"),
        (window, {"metric_type": MetricType.TASK_TOKENS}, "tokens_used"),
        (None, {"metric_type": "task_files", "swarm_id": "swarm-x"}, "files_changed"),
        (None, {"agent_id": "nobody"}, "duration_ms"),
    ]
    for time_range, filters, column in cases:
        got = store.aggregate_metrics("task", aggregation, time_range=time_range, filters=filters)
        plain = {k: v for k, v in (filters or {}).items() if k != "metric_type"}
        selected = model.select_tasks(time_range=time_range, **plain)
        values = [getattr(t, column) for t in selected]
        want = aggregate(values, aggregation.value)
        assert got["count"] == len(values)
        assert got["aggregation"] == aggregation.value
        if want is None:
            assert got["result"] is None
        else:
            assert math.isclose(got["result"], want, rel_tol=1e-12), (aggregation, filters)
        if aggregation is not AggregationType.COUNT:
            assert got[aggregation.value] == got["result"]


def test_aggregates_of_agent_and_swarm_values(store):
    values = [0.5, 0.75, 0.25, 1.0]
    for i, v in enumerate(values):
        store.store_agent_metric("a", "agent_success_rate", v)
        store.store_swarm_metric("s", "swarm_latency", v * 100)
    got = store.aggregate_metrics("agent", "avg", filters={"metric_type": "agent_success_rate"})
    assert got["result"] == pytest.approx(sum(values) / 4)
    got = store.aggregate_metrics("swarm", AggregationType.MAX, filters={"swarm_id": "s"})
    assert got["result"] == 100.0 and got["count"] == 4


def test_cleanup_old_metrics_counts_per_table_and_keeps_the_rest(store):
    now = utc_now()
    old, recent = now - timedelta(days=40), now - timedelta(days=2)
    for i in range(5):
        store.store_task_metric(f"old-{i}", "a", 10, "success", timestamp=old + timedelta(seconds=i))
    for i in range(3):
        store.store_task_metric(f"new-{i}", "a", 10, "success", timestamp=recent)
    store.store_agent_metric("a", "agent_duration", 1.0, timestamp=old)
    store.store_agent_metric("a", "agent_duration", 1.0, timestamp=recent)
    store.store_swarm_metric("s", "swarm_health", 1.0, timestamp=old)
    store.store_swarm_metric("s", "swarm_health", 2.0, timestamp=old)
    assert store.cleanup_old_metrics() == {
        "task_metrics": 5, "agent_metrics": 1, "swarm_metrics": 2
    }
    assert sorted(t["task_id"] for t in store.get_task_metrics()) == [f"new-{i}" for i in range(3)]
    assert store.cleanup_old_metrics(retention_days=1) == {
        "task_metrics": 3, "agent_metrics": 1, "swarm_metrics": 0
    }
    assert store.get_task_metrics() == []


def test_vacuum_and_close_and_context_manager(location):
    with MetricsStorage(location) as s:
        s.store_task_metric("t", "a", 1, "success")
        assert s.vacuum() is None
    assert s.closed
    with pytest.raises(swarm_metrics.Closed, match="closed"):
        s.get_task_metrics()
    s.close()  # twice is harmless
    with MetricsStorage(location) as again:
        assert [t["task_id"] for t in again.get_task_metrics()] == ["t"]


def test_default_location_is_dot_swarm_metrics_db(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with MetricsStorage() as s:
        s.store_task_metric("t", "a", 1, "success")
        assert s.db_path == ".swarm/metrics.db"
    assert (tmp_path / ".swarm" / "metrics.db").exists()
    with MetricsStorage(db_path=tmp_path / ".swarm" / "metrics.db") as s:
        assert len(s.get_task_metrics()) == 1


BAD_TASKS = [
    (dict(duration_ms=-1), swarm_metrics.InvalidInput, "duration_ms: must not be negative"),
    (dict(duration_ms="12"), swarm_metrics.InvalidInput, "duration_ms: must be an int, not str"),
    (dict(duration_ms=1.5), swarm_metrics.InvalidInput, "duration_ms: must be an int"),
    (dict(duration_ms=True), swarm_metrics.InvalidInput, "duration_ms: must be an int, not bool"),
    (dict(result="succeeded"), swarm_metrics.InvalidInput, 'unknown value "succeeded"'),
    (dict(result=1), swarm_metrics.InvalidInput, "result: must be a str"),
    (dict(task_id=""), swarm_metrics.InvalidInput, "task_id"),
    (dict(agent_id=None), swarm_metrics.InvalidInput, "agent_id: must be a str, not NoneType"),
    (dict(tokens_used=-5), swarm_metrics.InvalidInput, "tokens_used: must not be negative"),
    (dict(files_changed=2**70), swarm_metrics.InvalidInput, "files_changed: is too large"),
    (dict(timestamp="2026-01-01"), swarm_metrics.InvalidInput, "timestamp: must be a datetime"),
]


@pytest.mark.parametrize("change,error,message", BAD_TASKS)
def test_bad_task_input_raises_and_stores_nothing(store, change, error, message):
    args = dict(task_id="t", agent_id="a", duration_ms=10, result="success")
    args.update(change)
    with pytest.raises(error, match=message) as raised:
        store.store_task_metric(**args)
    assert isinstance(raised.value, swarm_metrics.Error)
    assert isinstance(raised.value, ValueError)
    assert store.get_task_metrics() == []


def test_bad_agent_input_and_filters_raise_named_errors(store):
    with pytest.raises(swarm_metrics.InvalidInput, match="metric_type"):
        store.store_agent_metric("a", "swarm_health", 1.0)
    with pytest.raises(swarm_metrics.InvalidInput, match="value"):
        store.store_agent_metric("a", "agent_duration", float("nan"))
    with pytest.raises(swarm_metrics.InvalidInput, match="metadata: holds a set"):
        store.store_agent_metric("a", "agent_duration", 1.0, metadata={"x": {1, 2}})
    with pytest.raises(swarm_metrics.InvalidInput, match="metadata"):
        store.store_agent_metric("a", "agent_duration", 1.0, metadata=[1, 2])
    with pytest.raises(swarm_metrics.InvalidInput, match="filters"):
        store.query_metrics("task", filters={"colour": "red"})
    with pytest.raises(swarm_metrics.InvalidInput, match="filters: unknown key 'time_range'"):
        store.aggregate_metrics("task", "avg", filters={"time_range": None})
    with pytest.raises(swarm_metrics.InvalidInput, match="kind"):
        store.query_metrics("tasks")
    with pytest.raises(swarm_metrics.InvalidInput, match="aggregation"):
        store.aggregate_metrics("task", "median")
    with pytest.raises(swarm_metrics.InvalidInput, match="time_range"):
        store.get_task_metrics(time_range=(utc_now(), utc_now() - timedelta(hours=1)))
    with pytest.raises(swarm_metrics.InvalidInput, match="limit: must be at least 1"):
        store.get_task_metrics(limit=0)
    with pytest.raises(swarm_metrics.InvalidInput, match="retention_days"):
        store.cleanup_old_metrics(-1)
    with pytest.raises(swarm_metrics.InvalidInput, match="data: must be a dict"):
        store.store_metric("task", [("task_id", "t")])
    with pytest.raises(swarm_metrics.InvalidInput, match="duration_ms"):
        store.store_metric("task", {"task_id": "t", "agent_id": "a", "result": "success"})
    assert store.get_task_metrics() == []
    assert store.get_agent_metrics() == []


def test_durability_is_chosen_by_name(tmp_path):
    with MetricsStorage(tmp_path / "full.db", durability="full") as s:
        s.store_task_metric("t", "a", 1, "success")
        assert len(s.get_task_metrics()) == 1
    with pytest.raises(swarm_metrics.InvalidInput, match="durability: unknown value \"fast\""):
        MetricsStorage(tmp_path / "other.db", durability="fast")
    assert not (tmp_path / "other.db").exists()


def test_a_foreign_file_is_refused_untouched(tmp_path):
    path = tmp_path / "other.db"
    path.write_bytes(b"this is not a database, but it is someone's file" * 100)
    before = path.read_bytes()
    with pytest.raises((swarm_metrics.ForeignDatabase, swarm_metrics.Error)) as raised:
        MetricsStorage(path)
    assert type(raised.value) is swarm_metrics.ForeignDatabase
    assert path.read_bytes() == before
    assert str(path) in str(raised.value)


def test_exceptions_form_one_hierarchy():
    for name in ("InvalidInput", "InvalidRule", "Closed", "DatabaseFull", "ForeignDatabase",
                 "SchemaMismatch", "ReadOnly", "Unsupported"):
        assert issubclass(getattr(swarm_metrics, name), swarm_metrics.Error)
    assert issubclass(swarm_metrics.InvalidRule, swarm_metrics.InvalidInput)
    assert os.path.basename(swarm_metrics.DEFAULT_PATH) == "metrics.db"
