-- Migration 4: the version 2 rollup tables, copied into the summaries of
-- migration 3, go.

DROP TABLE task_rollups;
DROP TABLE agent_rollups;
DROP TABLE swarm_rollups;
