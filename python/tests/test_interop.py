"""One file, two languages: what Python stores the Rust command line
reads, and what the command line imports Python reads, to the
microsecond."""

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from swarm_metrics import MetricsStorage

from model import random_tasks, utc_now

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cli():
    """The `swarm-metrics` binary: SWARM_METRICS_CLI, else the debug build
    of this checkout (which the project's test script builds first)."""
    path = Path(os.environ.get("SWARM_METRICS_CLI", REPO / "target" / "debug" / "swarm-metrics"))
    assert path.exists(), (
        f"{path} is missing: build it with `cargo build` or set SWARM_METRICS_CLI")
    return path


def run(cli, db, *args, stdin=None):
    done = subprocess.run([str(cli), "--db", str(db), "--json", *args], input=stdin,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def parse(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_cli_reads_what_python_stored(cli, tmp_path):
    db = tmp_path / "metrics.db"
    now = utc_now()
    tasks = random_tasks(21, 120, now)
    with MetricsStorage(db) as store:
        store.store_task_metrics([t.as_dict() for t in tasks])
        metric_id = store.store_agent_metric("agent-a", "agent_throughput", 2.5,
                                             metadata={"window": 60}, timestamp=now)
        python_rate = store.success_rate_by("agent")
        python_p95 = store.percentile(0.95)["value"]

    rows = run(cli, db, "query", "--limit", "1000")
    assert [r["task_id"] for r in rows] == [
        t.task_id for t in sorted(tasks, key=lambda t: t.timestamp, reverse=True)]
    by_id = {t.task_id: t for t in tasks}
    for row in rows:
        t = by_id[row["task_id"]]
        assert parse(row["timestamp"]) == t.timestamp
        assert (row["agent_id"], row["swarm_id"], row["duration_ms"], row["result"],
                row["tokens_used"], row["files_changed"]) == (
            t.agent_id, t.swarm_id, t.duration_ms, t.result, t.tokens_used, t.files_changed)

    cli_rates = {r["id"]: (r["success"], r["total"]) for r in run(cli, db, "success-rate", "--by", "agent")}
    assert cli_rates == {r["key"]: (r["success"], r["total"]) for r in python_rate}
    (agent,) = run(cli, db, "query", "--kind", "agent")
    assert (agent["metric_id"], agent["value"], agent["metadata"]) == (metric_id, 2.5, {"window": 60})
    cli_p95 = run(cli, db, "aggregate", "--agg", "p95")
    assert cli_p95["value"] == python_p95


def test_python_reads_what_the_cli_imported(cli, tmp_path):
    db = tmp_path / "metrics.db"
    at = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
    lines = [
        {"kind": "task", "task_id": f"t{i}", "agent_id": "cli-agent", "swarm_id": "s",
         "duration_ms": 100 + i, "result": "success" if i % 4 else "timeout",
         "tokens_used": i, "files_changed": 1,
         "timestamp": (at + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")}
        for i in range(30)
    ]
    lines.append({"kind": "swarm", "swarm_id": "s", "metric_type": "swarm_health",
                  "value": 0.75, "metadata": {"source": "cli"}, "timestamp": at.isoformat()})
    report = run(cli, db, "import", "-", stdin="\n".join(json.dumps(l) for l in lines))
    assert report["imported"] == 31

    with MetricsStorage(db) as store:
        got = store.get_task_metrics(agent_id="cli-agent")
        assert len(got) == 30
        assert got[-1]["timestamp"] == at
        assert got[0]["timestamp"] == at + timedelta(seconds=29)
        rate = store.success_rate(swarm_id="s")
        assert (rate["success"], rate["timeout"], rate["total"]) == (22, 8, 30)
        (swarm,) = store.get_swarm_metrics()
        assert (swarm["value"], swarm["metadata"], swarm["timestamp"]) == (0.75, {"source": "cli"}, at)
        assert store.aggregate_metrics("task", "sum", filters={"metric_type": "task_tokens"})[
            "result"] == sum(range(30))
