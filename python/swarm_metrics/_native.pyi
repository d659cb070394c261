"""Type stubs of the compiled module: the MetricsStorage class."""

from datetime import datetime, timedelta
from os import PathLike
from types import TracebackType
from typing import Any, Dict, Iterable, List, Literal, Mapping, Optional, Sequence, Tuple, Union

DEFAULT_PATH: str
SCHEMA_VERSION: int
__version__: str

#: A time range: a (start, end) pair, both included, or the last span up to now.
TimeRange = Union[Tuple[datetime, datetime], timedelta]
#: A task for the batch call: a dict of store_task_metric's arguments, or a
#: tuple (task_id, agent_id, duration_ms, result[, tokens_used[, files_changed[,
#: timestamp[, swarm_id]]]]).
TaskItem = Union[Mapping[str, Any], Tuple[Any, ...]]
#: An agent or swarm metric for the batch calls: a dict of the single call's
#: arguments, or a tuple (id, metric_type, value[, metadata[, timestamp]]).
EntityItem = Union[Mapping[str, Any], Tuple[Any, ...]]
Kind = Literal["task", "agent", "swarm"]
GroupBy = Literal["agent", "swarm", "result", "metric_type", "model"]
Answer = Dict[str, Any]

class MetricsStorage:
    def __init__(
        self,
        db_path: Optional[Union[str, "PathLike[str]"]] = None,
        *,
        durability: Optional[Literal["normal", "full"]] = None,
    ) -> None: ...
    @property
    def db_path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> "MetricsStorage": ...
    def __exit__(
        self,
        exc_type: Optional[type],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    def close(self) -> None: ...
    def vacuum(self) -> None: ...

    # The reference's calls
    def store_task_metric(
        self,
        task_id: str,
        agent_id: str,
        duration_ms: int,
        result: str,
        tokens_used: int = 0,
        files_changed: int = 0,
        timestamp: Optional[datetime] = None,
        *,
        swarm_id: Optional[str] = None,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
        cache_read_tokens: Optional[int] = None,
        cache_write_tokens: Optional[int] = None,
        model: Optional[str] = None,
        provider: Optional[str] = None,
        cost_usd: Optional[float] = None,
        trace_id: Optional[str] = None,
        span_id: Optional[str] = None,
    ) -> None: ...
    def get_task_metrics(
        self,
        task_id: Optional[str] = None,
        agent_id: Optional[str] = None,
        result: Optional[str] = None,
        time_range: Optional[TimeRange] = None,
        limit: int = 1000,
        *,
        swarm_id: Optional[str] = None,
    ) -> List[Answer]: ...
    def store_agent_metric(
        self,
        agent_id: str,
        metric_type: str,
        value: float,
        metadata: Optional[Dict[str, Any]] = None,
        timestamp: Optional[datetime] = None,
    ) -> int: ...
    def get_agent_metrics(
        self,
        agent_id: Optional[str] = None,
        metric_type: Optional[str] = None,
        time_range: Optional[TimeRange] = None,
        limit: int = 1000,
    ) -> List[Answer]: ...
    def store_swarm_metric(
        self,
        swarm_id: str,
        metric_type: str,
        value: float,
        metadata: Optional[Dict[str, Any]] = None,
        timestamp: Optional[datetime] = None,
    ) -> int: ...
    def get_swarm_metrics(
        self,
        swarm_id: Optional[str] = None,
        metric_type: Optional[str] = None,
        time_range: Optional[TimeRange] = None,
        limit: int = 1000,
    ) -> List[Answer]: ...
    def store_metric(
        self, metric_type: Kind, data: Dict[str, Any], timestamp: Optional[datetime] = None
    ) -> Optional[int]: ...
    def query_metrics(
        self,
        metric_type: Kind,
        filters: Optional[Dict[str, Any]] = None,
        time_range: Optional[TimeRange] = None,
        limit: int = 1000,
    ) -> List[Answer]: ...
    def aggregate_metrics(
        self,
        metric_type: Kind,
        aggregation: str,
        time_range: Optional[TimeRange] = None,
        filters: Optional[Dict[str, Any]] = None,
    ) -> Answer: ...
    def cleanup_old_metrics(self, retention_days: int = 30) -> Dict[str, int]: ...

    # Batches
    def store_task_metrics(self, metrics: Iterable[TaskItem]) -> int: ...
    def store_agent_metrics(self, metrics: Iterable[EntityItem]) -> List[int]: ...
    def store_swarm_metrics(self, metrics: Iterable[EntityItem]) -> List[int]: ...

    # Answers. Keyword filters: task_id, agent_id, swarm_id, result,
    # metric_type (what task aggregates measure), time_range.
    def success_rate(self, **filters: Any) -> Answer: ...
    def success_rate_by(self, by: GroupBy, **filters: Any) -> List[Answer]: ...
    def set_price(
        self,
        model: str,
        valid_from: datetime,
        input: float,
        output: float,
        cache_read: float = 0.0,
        cache_write: float = 0.0,
    ) -> None: ...
    def prices(self) -> List[Answer]: ...
    def recompute_costs(self, since: Union[datetime, timedelta]) -> Answer: ...
    def cost_per_success(self, by: Optional[GroupBy] = None, **filters: Any) -> List[Answer]: ...
    def tokens_by_type(self, **filters: Any) -> Answer: ...
    def percentile(self, q: float, kind: Kind = "task", **filters: Any) -> Answer: ...
    def percentiles(self, qs: Sequence[float], kind: Kind = "task", **filters: Any) -> List[Answer]: ...
    def aggregate_by(
        self, kind: Kind, aggregation: str, by: GroupBy, **filters: Any
    ) -> List[Answer]: ...
    def percentile_by(
        self, q: float, by: GroupBy, kind: Kind = "task", **filters: Any
    ) -> List[Answer]: ...
    def series(
        self,
        measure: Union[str, float],
        width: timedelta,
        kind: Kind = "task",
        empty: Literal["skip", "zero"] = "skip",
        **filters: Any,
    ) -> List[Answer]: ...
    def rank_agents(
        self,
        by: Literal[
            "success_rate", "raw_success_rate", "throughput", "avg_duration", "avg_tokens"
        ] = "success_rate",
        n: int = 10,
        order: Literal["best_first", "worst_first"] = "best_first",
        min_tasks: int = 1,
        **filters: Any,
    ) -> List[Answer]: ...
    def slowest_tasks(self, n: int = 10, **filters: Any) -> List[Answer]: ...
    def summary(self, **filters: Any) -> Answer: ...
    def duration_outliers(self, **filters: Any) -> List[Answer]: ...
    def compare(self, a: Dict[str, Any], b: Dict[str, Any]) -> Answer: ...
    def regressions(
        self, current: TimeRange, baseline: TimeRange, alpha: float = 0.05, **filters: Any
    ) -> List[Answer]: ...

    # Keeping the store
    def apply_retention(
        self,
        raw: Union[timedelta, None, Literal["forever"]] = None,
        hourly: Union[timedelta, None, Literal["forever"]] = None,
        daily: Union[timedelta, None, Literal["forever"]] = None,
    ) -> Answer: ...
    def stats(self) -> Answer: ...
    def health(self) -> Answer: ...
    def integrity_check(self) -> List[str]: ...
    def report(
        self,
        path: Optional[Union[str, "PathLike[str]"]] = None,
        title: Optional[str] = None,
        **filters: Any,
    ) -> str: ...

    # Alerts
    def evaluate_alerts(self, rules: str, at: Optional[datetime] = None) -> List[Answer]: ...
    def alert_states(self) -> List[Answer]: ...
    def alert_history(self, **filters: Any) -> List[Answer]: ...
