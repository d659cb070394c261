-- Migration 5: an agent or swarm metric has an identity, as a task metric
-- has (its task id and timestamp): the same id, metric type, timestamp and
-- value. A retried store of one (after a crash, a timeout, a re-run import)
-- is then ignored instead of counted twice. The value belongs to the
-- identity so that two different readings taken in the same microsecond
-- are both kept.
--
-- The writer looks a metric up by its identity before it stores it,
-- through the (id, metric_type, timestamp) index. A unique index over the
-- four columns would enforce it too, but its order (timestamp, then
-- value) no longer matches the newest-first order of reads, and the
-- planner then leaves it for the metric-type index.
--
-- Rows stored twice before this version are kept once: the first stored
-- (lowest metric_id), with its metadata.

DELETE FROM agent_metrics
WHERE metric_id NOT IN (
    SELECT min(metric_id) FROM agent_metrics GROUP BY agent, metric_type, timestamp, value
);

DELETE FROM swarm_metrics
WHERE metric_id NOT IN (
    SELECT min(metric_id) FROM swarm_metrics GROUP BY swarm, metric_type, timestamp, value
);
