from swarm_metrics import MetricsStorage, TaskResult, MetricType

# Initialize storage
storage = MetricsStorage()

# Store task metric
storage.store_task_metric(
    task_id="task_001",
    agent_id="agent_backend_001",
    duration_ms=1500,
    result=TaskResult.SUCCESS,
    tokens_used=500,
    files_changed=3
)

# Query task metrics
metrics = storage.get_task_metrics(
    agent_id="agent_backend_001",
    time_range=(start_time, end_time)
)

# Close storage
storage.close()
