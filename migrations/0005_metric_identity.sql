-- Migration 5: an agent or swarm metric has an identity, as a task metric
-- has (its task id and timestamp): the same id, metric type, timestamp and
-- value. A retried store of one (after a crash, a timeout, a re-run import)
-- is then ignored instead of counted twice. The value belongs to the
-- identity so that two different readings taken in the same microsecond
-- are both kept.
--
-- Rows stored twice before this version are kept once: the first stored
-- (lowest metric_id), with its metadata.

DELETE FROM agent_metrics
WHERE metric_id NOT IN (
    SELECT min(metric_id) FROM agent_metrics GROUP BY agent, metric_type, timestamp, value
);
DROP INDEX idx_agent_metrics_agent;
CREATE UNIQUE INDEX idx_agent_metrics_agent ON agent_metrics (agent, metric_type, timestamp, value);

DELETE FROM swarm_metrics
WHERE metric_id NOT IN (
    SELECT min(metric_id) FROM swarm_metrics GROUP BY swarm, metric_type, timestamp, value
);
DROP INDEX idx_swarm_metrics_swarm;
CREATE UNIQUE INDEX idx_swarm_metrics_swarm ON swarm_metrics (swarm, metric_type, timestamp, value);
