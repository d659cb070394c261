"""An embedded metrics store for agent orchestration.

A drop-in for the reference module's ``MetricsStorage``: change the import
line and keep the rest::

    from swarm_metrics import MetricsStorage, TaskResult, MetricType

The store keeps task, agent and swarm metrics in one SQLite file (or on a
PostgreSQL server, given a ``postgres://`` URL), commits concurrent stores
from many threads together, and answers success rates with intervals,
percentiles, series, grouped answers, rankings, comparisons and
regressions beside the reference's calls. Every call releases the GIL
while it works.
"""

from enum import Enum

from . import errors
from ._native import DEFAULT_PATH, SCHEMA_VERSION, MetricsStorage, __version__
from .errors import (
    Closed,
    DatabaseFull,
    Error,
    ForeignDatabase,
    InvalidInput,
    InvalidRule,
    ReadOnly,
    SchemaMismatch,
    Unsupported,
)


class TaskResult(str, Enum):
    """How a task ended. Compares equal to its string value."""

    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"



class MetricType(str, Enum):
    """What a metric measures. Compares equal to its string value.

    The ``TASK_*`` members name what an aggregate of task metrics measures
    (``filters={"metric_type": "task_tokens"}``); the others are the types
    of agent and swarm metrics.
    """

    # Task metrics
    TASK_DURATION = "task_duration"
    TASK_RESULT = "task_result"
    TASK_TOKENS = "task_tokens"
    TASK_FILES = "task_files"

    # Agent metrics
    AGENT_DURATION = "agent_duration"
    AGENT_SUCCESS_RATE = "agent_success_rate"
    AGENT_ERROR_COUNT = "agent_error_count"
    AGENT_THROUGHPUT = "agent_throughput"

    # Swarm metrics
    SWARM_HEALTH = "swarm_health"
    SWARM_THROUGHPUT = "swarm_throughput"
    SWARM_LATENCY = "swarm_latency"
    SWARM_RESOURCE = "swarm_resource"



class AggregationType(str, Enum):
    """How ``aggregate_metrics`` combines values. Compares equal to its
    string value."""

    AVG = "avg"
    SUM = "sum"
    COUNT = "count"
    MIN = "min"
    MAX = "max"
    STDDEV = "stddev"



__all__ = [
    "MetricsStorage",
    "TaskResult",
    "MetricType",
    "AggregationType",
    "DEFAULT_PATH",
    "SCHEMA_VERSION",
    "errors",
    "Error",
    "InvalidInput",
    "InvalidRule",
    "Closed",
    "DatabaseFull",
    "ForeignDatabase",
    "SchemaMismatch",
    "ReadOnly",
    "Unsupported",
    "__version__",
]
