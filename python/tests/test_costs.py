"""What tasks cost, from Python: usage on tasks, prices with their
dates, costs exact to the micro-dollar, tokens by type, cost per
success, re-pricing; each checked against sums written out here."""

from datetime import datetime, timedelta, timezone

import pytest

import swarm_metrics

from model import utc_now


def micro_cost(uncached, output, cache_read, rates):
    """The store's rule: micro-dollars per million tokens of each type,
    rounded half up once per task."""
    pico = uncached * rates[0] + output * rates[1] + cache_read * rates[2]
    return (pico + 500_000) // 1_000_000


def test_tasks_carry_usage_and_are_priced_at_the_price_of_their_day(store):
    now = utc_now()
    store.set_price("m", now - timedelta(days=10), 3.0, 15.0, cache_read=0.3)
    # Halved from two days ago.
    store.set_price("m", now - timedelta(days=2), 1.5, 7.5, cache_read=0.15)
    old, new = now - timedelta(days=5), now - timedelta(hours=1)
    usage = dict(input_tokens=3_000, output_tokens=500, cache_read_tokens=2_000, model="m")
    store.store_task_metric("a", "agent", 10, "success", timestamp=old, **usage)
    store.store_task_metric("b", "agent", 10, "failure", timestamp=new, provider="p", **usage)
    store.store_task_metrics([
        {"task_id": "c", "agent_id": "agent", "duration_ms": 5, "result": "success",
         "timestamp": new, "input_tokens": 10, "output_tokens": 2, "cost_usd": 0.25},
        ("d", "agent", 5, "success", 40, 0, new),
    ])
    rows = {r["task_id"]: r for r in store.get_task_metrics()}
    assert rows["a"]["tokens_used"] == 3_500
    assert rows["b"]["provider"] == "p"
    assert rows["a"]["cache_write_tokens"] == 0
    assert "model" not in rows["d"] and "cost_usd" not in rows["d"]
    full = micro_cost(1_000, 500, 2_000, (3_000_000, 15_000_000, 300_000))
    half = micro_cost(1_000, 500, 2_000, (1_500_000, 7_500_000, 150_000))
    assert rows["a"]["cost_usd"] == full / 1e6
    assert rows["b"]["cost_usd"] == half / 1e6
    total = store.aggregate_metrics("task", "sum", filters={"metric_type": "task_cost"})
    assert total["result"] == (full + half + 250_000) / 1e6
    assert total["unpriced"] == 1
    per = store.cost_per_success(by="agent")
    assert per == [{
        "id": "agent", "cost_usd": (full + half + 250_000) / 1e6, "successes": 3,
        "cost_per_success_usd": (full + half + 250_000) / 1e6 / 3, "unpriced": 1,
    }]
    tokens = store.tokens_by_type()
    assert (tokens["input"], tokens["output"], tokens["cache_read"]) == (6_010, 1_002, 4_000)
    assert (tokens["tasks"], tokens["with_breakdown"], tokens["unsplit"]) == (4, 3, 40)
    assert [p["model"] for p in store.prices()] == ["m", "m"]


def test_contradictions_and_bad_prices_are_refused_with_nothing_stored(store):
    with pytest.raises(swarm_metrics.InvalidInput, match="tokens_used"):
        store.store_task_metric("a", "x", 1, "success", 7, input_tokens=5, output_tokens=1)
    with pytest.raises(swarm_metrics.InvalidInput, match="cache"):
        store.store_task_metrics([
            {"task_id": "ok", "agent_id": "x", "duration_ms": 1, "result": "success"},
            {"task_id": "b", "agent_id": "x", "duration_ms": 1, "result": "success",
             "input_tokens": 1, "cache_read_tokens": 2},
        ])
    with pytest.raises(swarm_metrics.InvalidInput):
        store.set_price("m", utc_now(), -1.0, 1.0)
    with pytest.raises(swarm_metrics.InvalidInput):
        store.store_task_metric("c", "x", 1, "success", cost_usd="free")
    assert store.get_task_metrics() == []
    assert store.prices() == []


def test_recompute_prices_what_came_before_its_price(store):
    now = utc_now()
    store.store_task_metric("a", "x", 1, "success", timestamp=now - timedelta(hours=1),
                            model="m", input_tokens=1_000_000, output_tokens=0)
    assert store.aggregate_metrics("task", "sum", filters={"metric_type": "task_cost"})["unpriced"] == 1
    store.set_price("m", now - timedelta(days=1), 2.0, 0.0)
    report = store.recompute_costs(timedelta(days=1))
    assert (report["repriced"], report["now_unpriced"]) == (1, 0)
    total = store.aggregate_metrics("task", "sum", filters={"metric_type": "task_cost"})
    assert (total["result"], total["unpriced"]) == (2.0, 0)


def test_trace_ids_go_in_and_come_back_and_rows_copy_whole(store, tmp_path):
    trace, span = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    store.store_task_metric("a", "agent", 10, "success", trace_id=trace.upper(), span_id=span)
    store.store_task_metrics([
        {"task_id": "b", "agent_id": "agent", "duration_ms": 5, "result": "success",
         "trace_id": trace, "span_id": "b7ad6b7169203332", "model": "m", "cost_usd": 0.5},
        ("c", "agent", 5, "failure"),
    ])
    rows = {r["task_id"]: r for r in store.get_task_metrics()}
    assert (rows["a"]["trace_id"], rows["a"]["span_id"]) == (trace, span)
    assert rows["b"]["span_id"] == "b7ad6b7169203332"
    assert "trace_id" not in rows["c"] and "span_id" not in rows["c"]
    # A row is what a store takes: copied as it is read.
    other = swarm_metrics.MetricsStorage(str(tmp_path / "copy.db"))
    assert other.store_task_metrics(list(rows.values())) == 3
    assert {r["task_id"]: r for r in other.get_task_metrics()} == rows
    other.close()
    # Half a pair, a bad digit or an all-zero id: refused, naming the field,
    # nothing stored.
    for kwargs, field in [
        ({"trace_id": trace}, "span_id"),
        ({"span_id": span}, "trace_id"),
        ({"trace_id": trace[:-1] + "g", "span_id": span}, "trace_id"),
        ({"trace_id": trace, "span_id": "0" * 16}, "span_id"),
    ]:
        with pytest.raises(swarm_metrics.InvalidInput, match=field):
            store.store_task_metric("x", "agent", 1, "success", **kwargs)
    assert len(store.get_task_metrics()) == 3
