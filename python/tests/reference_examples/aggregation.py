from swarm_metrics import MetricsStorage, AggregationType
from datetime import datetime, timedelta

storage = MetricsStorage()

# Time range (last 24 hours)
now = datetime.now()
yesterday = now - timedelta(hours=24)
time_range = (yesterday, now)

# Average task duration
avg_duration = storage.aggregate_metrics(
    metric_type="task",
    aggregation=AggregationType.AVG,
    time_range=time_range,
    filters={"agent_id": "agent_001"}
)
print(f"Average duration: {avg_duration['result']:.2f}ms")

# Total task count
total_tasks = storage.aggregate_metrics(
    metric_type="task",
    aggregation=AggregationType.COUNT,
    time_range=time_range
)
print(f"Total tasks: {total_tasks['count']}")

# Success rate calculation
success_count = storage.aggregate_metrics(
    metric_type="task",
    aggregation=AggregationType.COUNT,
    filters={"result": "success"},
    time_range=time_range
)
success_rate = success_count['count'] / total_tasks['count'] * 100
print(f"Success rate: {success_rate:.1f}%")

# Standard deviation of duration
stddev = storage.aggregate_metrics(
    metric_type="task",
    aggregation=AggregationType.STDDEV,
    time_range=time_range
)
print(f"Duration std dev: {stddev['stddev']:.2f}ms")
