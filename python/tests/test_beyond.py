"""What the store offers beyond the reference, from Python: batches,
success rates with intervals, percentiles, grouped answers, series,
rankings, comparisons, regressions, tiered retention, the report and
alerts, each checked against the plain model of the same records."""

import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest

import swarm_metrics
from swarm_metrics import TaskResult

from model import AGENTS, RESULTS, Model, aggregate, quantile, random_tasks, success_counts, utc_now


@pytest.fixture
def loaded(store):
    now = utc_now()
    model = Model(tasks=random_tasks(11, 400, now))
    assert store.store_task_metrics([t.as_dict() for t in model.tasks]) == 400
    return store, model, now


def test_batches_take_dicts_and_tuples_and_retries_store_nothing_new(store):
    now = utc_now()
    tasks = random_tasks(5, 50, now)
    as_tuples = [
        (t.task_id, t.agent_id, t.duration_ms, t.result, t.tokens_used, t.files_changed,
         t.timestamp, t.swarm_id)
        for t in tasks[:25]
    ]
    short = [(t.task_id, t.agent_id, t.duration_ms, TaskResult(t.result)) for t in tasks[25:30]]
    as_dicts = [t.as_dict() for t in tasks[30:]]
    assert store.store_task_metrics(as_tuples + as_dicts) == 45
    assert store.store_task_metrics(short) == 5
    assert store.store_task_metrics(as_tuples) == 0  # a retry
    got = {r["task_id"]: r for r in store.get_task_metrics()}
    assert len(got) == 50
    for t in tasks[:25] + tasks[30:]:
        assert got[t.task_id] == t.as_dict()
    for t in tasks[25:30]:
        row = got[t.task_id]
        assert (row["tokens_used"], row["files_changed"], row["swarm_id"]) == (0, 0, None)


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"duration_ms": -3}, "invalid duration_ms: must not be negative"),
        ({"result": "maybe"}, "invalid result: unknown value \"maybe\""),
        ({"colour": "red"}, "invalid metric: unknown field 'colour'"),
        ({"agent_id": 12}, "invalid agent_id: must be a str, not int"),
    ],
)
def test_a_batch_with_one_bad_item_stores_nothing(store, bad, message):
    items = [t.as_dict() for t in random_tasks(9, 10, utc_now())]
    items[7].update(bad)
    with pytest.raises(swarm_metrics.InvalidInput) as raised:
        store.store_task_metrics(items)
    assert str(raised.value).startswith(message), str(raised.value)
    assert str(raised.value).endswith("(record 7 of the batch; nothing was stored)")
    assert store.get_task_metrics() == []
    with pytest.raises(swarm_metrics.InvalidInput, match=r"invalid task: a tuple holds 4 to 8.*\(record 1 of the batch"):
        store.store_task_metrics([("t", "a", 1, "success"), ("t", "a")])
    with pytest.raises(swarm_metrics.InvalidInput, match="metrics: must be a list"):
        store.store_task_metrics(5)
    assert store.get_task_metrics() == []


def test_agent_and_swarm_batches_return_ids_all_or_nothing(store):
    ids = store.store_agent_metrics([
        ("a", "agent_duration", 1.0),
        {"agent_id": "b", "metric_type": "agent_throughput", "value": 2, "metadata": {"k": 1}},
    ])
    assert len(ids) == 2 and ids[0] != ids[1]
    with pytest.raises(swarm_metrics.InvalidInput, match=r"invalid metric_type.*\(record 1 of the batch; nothing was stored\)"):
        store.store_swarm_metrics([("s", "swarm_health", 1.0), ("s", "agent_duration", 1.0)])
    assert store.get_swarm_metrics() == []
    assert len(store.store_swarm_metrics([("s", "swarm_health", 1.0, None, utc_now())])) == 1
    assert [m["metadata"] for m in store.get_agent_metrics(agent_id="b")] == [{"k": 1}]


def test_success_rates_and_their_intervals_match_the_model(loaded):
    store, model, now = loaded
    for case in [{}, {"agent_id": "agent-c"}, {"swarm_id": "swarm-y"},
                 {"time_range": timedelta(days=2)}, {"agent_id": "nobody"}]:
        asked = utc_now()
        got = store.success_rate(**case)
        if "time_range" in case:
            selected = model.select_tasks(time_range=(asked - case["time_range"], utc_now()))
        else:
            selected = model.select_tasks(**case)
        counts = success_counts(selected)
        assert got["total"] == len(selected)
        assert {r: got[r] for r in RESULTS} == counts
        if selected:
            assert got["rate"] == pytest.approx(counts["success"] / len(selected))
            assert got["interval"]["low"] <= got["rate"] <= got["interval"]["high"]
        else:
            assert got["rate"] is None

    by_agent = {g["key"]: g for g in store.success_rate_by("agent")}
    for agent in AGENTS:
        counts = success_counts(model.select_tasks(agent_id=agent))
        assert by_agent[agent]["success"] == counts["success"]
        assert by_agent[agent]["total"] == sum(counts.values())


def test_percentiles_and_grouped_aggregates_match_the_model(loaded):
    store, model, _ = loaded
    durations = [t.duration_ms for t in model.tasks]
    for q in (0.0, 0.5, 0.9, 0.95, 0.99, 1.0):
        got = store.percentile(q)
        assert got["value"] == pytest.approx(quantile(durations, q))
        assert got["approximate"] is False
    tokens = [t.tokens_used for t in model.select_tasks(agent_id="agent-a")]
    got = store.percentile(0.5, metric_type="task_tokens", agent_id="agent-a")
    assert got["value"] == pytest.approx(quantile(tokens, 0.5))
    assert [p["value"] for p in store.percentiles([0.5, 0.99])] == pytest.approx(
        [quantile(durations, 0.5), quantile(durations, 0.99)])

    by_swarm = {g["key"]: g for g in store.aggregate_by("task", "sum", "swarm")}
    for swarm in ("swarm-x", "swarm-y", None):
        values = [t.duration_ms for t in model.select_tasks() if t.swarm_id == swarm]
        assert by_swarm[swarm]["value"] == sum(values)
        assert by_swarm[swarm]["count"] == len(values)
    by_agent = {g["key"]: g for g in store.percentile_by(0.9, "agent")}
    for agent in AGENTS:
        values = [t.duration_ms for t in model.select_tasks(agent_id=agent)]
        assert by_agent[agent]["value"] == pytest.approx(quantile(values, 0.9))
    with pytest.raises(swarm_metrics.InvalidInput, match="by: unknown value \"colour\""):
        store.aggregate_by("task", "avg", "colour")
    with pytest.raises(swarm_metrics.InvalidInput, match="q"):
        store.percentile(1.5)


def test_series_buckets_match_the_model(loaded):
    store, model, _ = loaded
    day = timedelta(days=1)
    got = store.series("count", day)
    want = Counter(
        t.timestamp.replace(hour=0, minute=0, second=0, microsecond=0) for t in model.tasks
    )
    assert {b["start"]: b["value"]["count"] for b in got} == dict(want)
    rates = store.series("success_rate", day, agent_id="agent-b")
    for bucket in rates:
        start = bucket["start"]
        selected = [t for t in model.select_tasks(agent_id="agent-b")
                    if start <= t.timestamp < start + day]
        assert bucket["value"]["total"] == len(selected)
        assert bucket["value"]["success"] == success_counts(selected)["success"]
    p95 = store.series("p95", day)
    assert p95[0]["value"]["q"] == 0.95
    assert [b["value"]["q"] for b in store.series(0.5, day)][:1] == [0.5]
    with pytest.raises(swarm_metrics.InvalidInput, match="measure: unknown value \"mean\""):
        store.series("mean", day)
    with pytest.raises(swarm_metrics.InvalidInput, match="width: must be a timedelta"):
        store.series("avg", 3600)


def test_rankings_slowest_and_summary_match_the_model(loaded):
    store, model, _ = loaded
    ranked = store.rank_agents(by="raw_success_rate", n=len(AGENTS))
    want = {}
    for agent in AGENTS:
        selected = model.select_tasks(agent_id=agent)
        want[agent] = success_counts(selected)["success"] / len(selected)
    assert {r["agent_id"]: r["score"] for r in ranked} == pytest.approx(want)
    scores = [r["score"] for r in ranked]
    assert scores == sorted(scores, reverse=True)
    worst = store.rank_agents(by="raw_success_rate", n=1, order="worst_first")
    assert worst[0]["score"] == pytest.approx(min(want.values()))

    slowest = store.slowest_tasks(n=5)
    assert [t["duration_ms"] for t in slowest] == sorted(
        (t.duration_ms for t in model.tasks), reverse=True)[:5]

    summary = store.summary()
    assert summary["tasks"] == len(model.tasks)
    assert summary["tokens_total"] == sum(t.tokens_used for t in model.tasks)
    assert summary["files_changed_total"] == sum(t.files_changed for t in model.tasks)
    assert summary["success_rate"]["success"] == success_counts(model.tasks)["success"]


def test_outliers_compare_and_regressions_find_what_was_planted(store):
    now = utc_now()
    tasks = []
    for i in range(60):
        at = now - timedelta(days=6) + timedelta(minutes=90 * i)
        tasks.append((f"steady-{i}", "steady", 1000 + i % 7, "success", 0, 0, at))
    tasks.append(("slow-one", "steady", 500_000, "success", 0, 0, now - timedelta(days=2)))
    # "sliding" succeeds in the baseline week and mostly fails today.
    for i in range(80):
        at = now - timedelta(days=7) + timedelta(hours=2 * i)
        tasks.append((f"base-{i}", "sliding", 1000, "success" if i % 20 else "failure", 0, 0, at))
    for i in range(40):
        at = now - timedelta(hours=20) + timedelta(minutes=25 * i)
        tasks.append((f"now-{i}", "sliding", 1000, "failure" if i % 4 else "success", 0, 0, at))
    store.store_task_metrics(tasks)

    outliers = store.duration_outliers(agent_id="steady")
    assert [o["task"]["task_id"] for o in outliers] == ["slow-one"]

    comparison = store.compare({"agent_id": "steady"}, {"agent_id": "sliding"})
    assert comparison["a"]["total"] == 61 and comparison["b"]["total"] == 120
    assert comparison["b"]["success"] == 76 + 10

    found = store.regressions(
        timedelta(hours=21), (now - timedelta(days=8), now - timedelta(hours=21)))
    assert {(r["group"], r["id"]) for r in found} >= {("agent", "sliding")}
    assert ("agent", "steady") not in {(r["group"], r["id"]) for r in found}


def test_tiered_retention_keeps_counts_sums_and_rates_exact(loaded):
    store, model, now = loaded
    before = (store.success_rate(), store.aggregate_metrics("task", "sum"),
              store.aggregate_metrics("task", "count"), store.success_rate_by("agent"))
    asked = utc_now()
    report = store.apply_retention(raw=timedelta(days=3), hourly=timedelta(days=90),
                                   daily=timedelta(days=730))
    # The raw horizon is aligned down to a whole hour.
    cutoff = (asked - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    assert report["task_metrics"]["raw_folded"] == sum(t.timestamp < cutoff for t in model.tasks)
    after = (store.success_rate(), store.aggregate_metrics("task", "sum"),
             store.aggregate_metrics("task", "count"), store.success_rate_by("agent"))
    assert after == before
    assert store.aggregate_metrics("task", "sum")["result"] == sum(
        t.duration_ms for t in model.tasks)
    assert len(store.get_task_metrics(limit=10_000)) == sum(
        t.timestamp >= cutoff for t in model.tasks)
    with pytest.raises(swarm_metrics.InvalidInput, match="raw: must be a timedelta, None or"):
        store.apply_retention(raw=3)
    # Raw rows kept for ever: nothing more to fold.
    assert store.apply_retention(raw="forever", hourly="forever", daily="forever")[
        "task_metrics"]["raw_folded"] == 0


def test_report_alerts_health_and_stats(file_store, tmp_path):
    now = utc_now()
    store = file_store
    store.store_task_metrics(
        [(f"t{i}", "flaky", 100, "failure" if i % 2 else "success", 0, 0,
          now - timedelta(minutes=i)) for i in range(40)])
    page = store.report(path=tmp_path / "report.html", title="Flaky swarm")
    assert page.startswith("<!DOCTYPE html>") and "Flaky swarm" in page
    assert (tmp_path / "report.html").read_text() == page

    rules = """
[[rule]]
name = "agent-success"
kind = "success_rate"
group_by = "agent"
window = "1h"
below = 0.9
min_tasks = 10
for = "0s"
"""
    alerts = store.evaluate_alerts(rules)
    assert [(a["rule"], a["group"], a["standing"]["state"]) for a in alerts] == [
        ("agent-success", "flaky", "firing")]
    assert alerts[0]["figures"]["tasks"] == 40 and alerts[0]["figures"]["successes"] == 20
    assert [a["standing"]["state"] for a in store.alert_states()] == ["firing"]
    history = store.alert_history()
    assert [t["to"] for t in history] == ["firing"]
    assert isinstance(history[0]["at"], datetime)
    with pytest.raises(swarm_metrics.InvalidRule, match="below"):
        store.evaluate_alerts(rules.replace("below = 0.9", "below = 1.5"))

    stats = store.stats()
    assert stats["task_metrics"]["rows"] == 40
    assert stats["task_metrics"]["newest"].tzinfo == timezone.utc
    assert store.integrity_check() == []
    health = store.health()
    assert {c["name"] for c in health["checks"]} >= {"integrity", "wal_size", "free_disk"}


def test_answers_are_plain_json_data(loaded):
    import json

    store, _, _ = loaded
    summary = store.summary()
    # Everything but datetimes is JSON data as it stands.
    json.dumps(summary, default=lambda v: v.isoformat())
    for bucket in store.series("avg", timedelta(days=1)):
        assert bucket["start"].tzinfo == timezone.utc
