from swarm_metrics import MetricsStorage, MetricType

storage = MetricsStorage()

# Store agent success rate
storage.store_agent_metric(
    agent_id="agent_001",
    metric_type=MetricType.AGENT_SUCCESS_RATE,
    value=0.95,
    metadata={"total_tasks": 100, "successful_tasks": 95}
)

# Store agent error count
storage.store_agent_metric(
    agent_id="agent_001",
    metric_type=MetricType.AGENT_ERROR_COUNT,
    value=5,
    metadata={"error_types": {"timeout": 3, "failure": 2}}
)

# Query agent metrics
agent_metrics = storage.get_agent_metrics(
    agent_id="agent_001",
    metric_type=MetricType.AGENT_SUCCESS_RATE
)
