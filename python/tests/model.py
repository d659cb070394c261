"""A plain-Python model of the store: the same records in lists, and the
answers computed the obvious way, for the tests to compare against."""

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Optional

RESULTS = ["success", "failure", "timeout", "cancelled"]
AGENTS = ["agent-a", "agent-b", "agent-c", "agent-d", "agent-e"]
SWARMS = ["swarm-x", "swarm-y", None]


@dataclass
class Task:
    task_id: str
    agent_id: str
    swarm_id: Optional[str]
    duration_ms: int
    result: str
    tokens_used: int
    files_changed: int
    timestamp: datetime

    def as_dict(self):
        return {
            "task_id": self.task_id,
            "agent_id": self.agent_id,
            "swarm_id": self.swarm_id,
            "duration_ms": self.duration_ms,
            "result": self.result,
            "tokens_used": self.tokens_used,
            "files_changed": self.files_changed,
            "timestamp": self.timestamp,
        }


@dataclass
class Entity:
    kind: str  # "agent" or "swarm"
    id: str
    metric_type: str
    value: float
    metadata: Optional[dict]
    timestamp: datetime
    metric_id: Optional[int] = None


@dataclass
class Model:
    tasks: list = field(default_factory=list)
    entities: list = field(default_factory=list)

    # ----------------------------------------------------------- selection
    def select_tasks(self, task_id=None, agent_id=None, swarm_id=None, result=None,
                     time_range=None):
        out = []
        for t in self.tasks:
            if task_id is not None and t.task_id != task_id:
                continue
            if agent_id is not None and t.agent_id != agent_id:
                continue
            if swarm_id is not None and t.swarm_id != swarm_id:
                continue
            if result is not None and t.result != str(result.value if hasattr(result, "value") else result):
                continue
            if time_range is not None and not (time_range[0] <= t.timestamp <= time_range[1]):
                continue
            out.append(t)
        return out

    def newest_first(self, tasks, limit=1000):
        return sorted(tasks, key=lambda t: t.timestamp, reverse=True)[:limit]

    def select_entities(self, kind, id=None, metric_type=None, time_range=None):
        out = []
        for e in self.entities:
            if e.kind != kind:
                continue
            if id is not None and e.id != id:
                continue
            if metric_type is not None and e.metric_type != metric_type:
                continue
            if time_range is not None and not (time_range[0] <= e.timestamp <= time_range[1]):
                continue
            out.append(e)
        return out


def aggregate(values, aggregation):
    """The store's aggregate of values: None for an empty selection, and
    for stddev of one value; stddev is the sample standard deviation."""
    n = len(values)
    if aggregation == "count":
        return n
    if n == 0:
        return None
    if aggregation == "avg":
        return math.fsum(values) / n
    if aggregation == "sum":
        return math.fsum(values)
    if aggregation == "min":
        return min(values)
    if aggregation == "max":
        return max(values)
    if aggregation == "stddev":
        if n < 2:
            return None
        mean = math.fsum(values) / n
        return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    raise ValueError(aggregation)


def quantile(values, q):
    """The linear interpolation between closest ranks."""
    if not values:
        return None
    s = sorted(values)
    h = (len(s) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def success_counts(tasks):
    counts = {r: 0 for r in RESULTS}
    for t in tasks:
        counts[t.result] += 1
    return counts


def random_tasks(seed, n, now, span=timedelta(days=10), prefix="task"):
    """n tasks with distinct timestamps spread over the span before now."""
    rng = random.Random(seed)
    step = span / n
    tasks = []
    for i in range(n):
        at = now - span + step * i + timedelta(microseconds=rng.randrange(0, 1000))
        tasks.append(
            Task(
                task_id=f"{prefix}-{i:05d}",
                agent_id=rng.choice(AGENTS),
                swarm_id=rng.choice(SWARMS),
                duration_ms=rng.randrange(1, 60_000),
                result=rng.choices(RESULTS, weights=[70, 15, 10, 5])[0],
                tokens_used=rng.randrange(0, 5_000),
                files_changed=rng.randrange(0, 20),
                timestamp=at.replace(microsecond=at.microsecond),
            )
        )
    return tasks


def utc_now():
    return datetime.now(timezone.utc)
