from swarm_metrics import MetricsStorage

storage = MetricsStorage()

# Cleanup old metrics (30-day default)
deleted = storage.cleanup_old_metrics(retention_days=30)
print(f"Deleted metrics: {deleted}")
# Output: {'task_metrics': 150, 'agent_metrics': 75, 'swarm_metrics': 25}

# Custom retention period (7 days)
deleted = storage.cleanup_old_metrics(retention_days=7)

# Vacuum database to reclaim space
storage.vacuum()
