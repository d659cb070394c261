-- Migration 3: rollups that are smaller than the rows they replace.
--
-- Version 2 kept one rollup row per hour (or day), agent, swarm and task
-- result, each with three quantile sketches: an agent's hour of a dozen
-- tasks cost more as rollups than as raw rows, so retention made files
-- bigger. A summary row covers one bucket and agent and swarm (or agent or
-- swarm and metric type) with every result in it: the task counts per
-- result as columns, for success rates, and the metrics themselves in
-- `data`: their exact values while they are few (about six bytes a task),
-- per-result statistics with sketches past that (see
-- src/retention/summary.rs). The store copies the rows of the version 2
-- tables into these; migration 4 drops those.

-- `level` 1 is hourly, 2 daily; `bucket` is the bucket's first
-- microsecond. Every row of a metrics table is either still raw or folded
-- into exactly one summary row, never both.
CREATE TABLE task_summaries (
    level     INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    agent     INTEGER NOT NULL,
    swarm     INTEGER NOT NULL,   -- 0: tasks without a swarm
    success   INTEGER NOT NULL,
    failure   INTEGER NOT NULL,
    timeout   INTEGER NOT NULL,
    cancelled INTEGER NOT NULL,
    data      BLOB    NOT NULL,
    PRIMARY KEY (level, bucket, agent, swarm)
) WITHOUT ROWID;

CREATE TABLE agent_summaries (
    level       INTEGER NOT NULL,
    bucket      INTEGER NOT NULL,
    agent       INTEGER NOT NULL,
    metric_type INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    data        BLOB    NOT NULL,
    PRIMARY KEY (level, bucket, agent, metric_type)
) WITHOUT ROWID;

CREATE TABLE swarm_summaries (
    level       INTEGER NOT NULL,
    bucket      INTEGER NOT NULL,
    swarm       INTEGER NOT NULL,
    metric_type INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    data        BLOB    NOT NULL,
    PRIMARY KEY (level, bucket, swarm, metric_type)
) WITHOUT ROWID;
