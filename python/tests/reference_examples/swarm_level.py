from swarm_metrics import MetricsStorage, MetricType

storage = MetricsStorage()

# Store swarm health
storage.store_swarm_metric(
    swarm_id="swarm_production",
    metric_type=MetricType.SWARM_HEALTH,
    value=0.98,
    metadata={
        "active_agents": 10,
        "pending_tasks": 15,
        "avg_latency_ms": 250
    }
)

# Store swarm throughput
storage.store_swarm_metric(
    swarm_id="swarm_production",
    metric_type=MetricType.SWARM_THROUGHPUT,
    value=50.5,  # tasks per second
    metadata={"time_window_seconds": 60}
)

# Query swarm metrics
swarm_metrics = storage.get_swarm_metrics(
    swarm_id="swarm_production",
    metric_type=MetricType.SWARM_HEALTH
)
