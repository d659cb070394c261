"""The reference documentation's own examples run unchanged but for the
import line, in one folder as a project would run them one after the
other (they all open the default `.swarm/metrics.db`)."""

import re
import runpy
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from swarm_metrics import MetricsStorage

EXAMPLES = Path(__file__).parent / "reference_examples"


def run(name, **init_globals):
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), init_globals=init_globals)


def test_only_the_import_line_differs_from_the_reference():
    for path in EXAMPLES.glob("*.py"):
        imports = [line for line in path.read_text().splitlines() if "import" in line]
        assert any(line.startswith("from swarm_metrics import") for line in imports), path
        assert not any("moai_flow" in line for line in imports), path


def test_the_reference_examples_run_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    # Basic usage leaves start_time and end_time to the reader.
    now = datetime.now()
    basic = run("basic_usage", start_time=now - timedelta(hours=1), end_time=now + timedelta(minutes=1))
    (task,) = basic["metrics"]
    assert (task["task_id"], task["agent_id"], task["duration_ms"], task["result"]) == (
        "task_001", "agent_backend_001", 1500, "success")
    assert (task["tokens_used"], task["files_changed"]) == (500, 3)

    managed = run("context_manager")
    assert [m["task_id"] for m in managed["metrics"]] == ["task_002"]

    agent = run("agent_level")
    assert [m["value"] for m in agent["agent_metrics"]] == [0.95]
    assert agent["agent_metrics"][0]["metadata"] == {"total_tasks": 100, "successful_tasks": 95}

    swarm = run("swarm_level")
    assert [m["value"] for m in swarm["swarm_metrics"]] == [0.98]

    # The aggregation example reads an agent_001 that has run tasks.
    durations = [1000, 1400, 2300]
    with MetricsStorage() as seed:
        for i, d in enumerate(durations):
            seed.store_task_metric(f"seed-{i}", "agent_001", d, "success" if i else "failure")
    capsys.readouterr()
    run("aggregation")
    printed = capsys.readouterr().out
    assert f"Average duration: {sum(durations) / 3:.2f}ms" in printed
    total = 2 + len(durations)  # task_001, task_002 and the seeded ones
    assert f"Total tasks: {total}" in printed
    assert f"Success rate: {4 / total * 100:.1f}%" in printed
    every = [1500, 2000, *durations]
    mean = sum(every) / len(every)
    stddev = (sum((d - mean) ** 2 for d in every) / (len(every) - 1)) ** 0.5
    assert f"Duration std dev: {stddev:.2f}ms" in printed

    run("retention")
    printed = capsys.readouterr().out
    assert re.search(
        r"Deleted metrics: \{'task_metrics': 0, 'agent_metrics': 0, 'swarm_metrics': 0\}", printed
    ), printed
    with MetricsStorage() as after:
        assert len(after.get_task_metrics()) == total
