from swarm_metrics import MetricsStorage
from datetime import datetime, timedelta

with MetricsStorage() as storage:
    # Store metrics
    storage.store_task_metric(
        task_id="task_002",
        agent_id="agent_002",
        duration_ms=2000,
        result="success",
        tokens_used=600
    )

    # Query with time range
    now = datetime.now()
    last_hour = now - timedelta(hours=1)

    metrics = storage.query_metrics(
        metric_type="task",
        filters={"agent_id": "agent_002"},
        time_range=(last_hour, now)
    )
