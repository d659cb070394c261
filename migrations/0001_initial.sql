-- Migration 1: the first schema.
--
-- A new file gets every migration in this folder, in order, in one
-- transaction; an older file gets the ones it lacks. Conventions:
--   * timestamps are INTEGER microseconds since the Unix epoch, UTC;
--   * agent and swarm ids are interned in `agents` / `swarms`, so each metric
--     row stores a small integer instead of repeating the id text;
--   * task results and metric types are stored as small integer codes, named
--     in `task_results` / `metric_types` (the views at the end show rows with
--     their names, for people reading the file with the sqlite3 shell).

CREATE TABLE metrics_schema_info (
    version    INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
);

CREATE TABLE agents (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE swarms (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE task_results (
    code INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
INSERT INTO task_results (code, name) VALUES
    (0, 'success'), (1, 'failure'), (2, 'timeout'), (3, 'cancelled');

CREATE TABLE metric_types (
    code INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
INSERT INTO metric_types (code, name) VALUES
    (1, 'task_duration'), (2, 'task_result'), (3, 'task_tokens'), (4, 'task_files'),
    (5, 'agent_duration'), (6, 'agent_success_rate'), (7, 'agent_error_count'),
    (8, 'agent_throughput'),
    (9, 'swarm_health'), (10, 'swarm_throughput'), (11, 'swarm_latency'),
    (12, 'swarm_resource');

-- Task metrics are clustered by time: a time range is one contiguous run of
-- the primary key, so range scans and aggregates read no other pages. `seq`
-- tells apart rows that share a timestamp (it is 0, stored in no bytes, for
-- all but the second and later rows of one microsecond).
CREATE TABLE task_metrics (
    timestamp     INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    -- The columns aggregates read come first: SQLite finds a column by
    -- walking the ones before it.
    result        INTEGER NOT NULL CHECK (result BETWEEN 0 AND 3),
    duration_ms   INTEGER NOT NULL CHECK (duration_ms >= 0),
    tokens_used   INTEGER NOT NULL CHECK (tokens_used >= 0),
    files_changed INTEGER NOT NULL CHECK (files_changed >= 0),
    agent         INTEGER NOT NULL REFERENCES agents (id),
    swarm         INTEGER REFERENCES swarms (id),
    task_id       TEXT    NOT NULL,
    PRIMARY KEY (timestamp, seq)
) WITHOUT ROWID;

-- A retried store of the same task metric is ignored, never counted twice.
CREATE UNIQUE INDEX idx_task_metrics_task ON task_metrics (task_id, timestamp);
CREATE INDEX idx_task_metrics_agent ON task_metrics (agent, timestamp);

-- Which agents ran tasks in which swarm. A swarm's tasks are found through
-- the agent index, one range per agent of the swarm, instead of through an
-- index of their own: it keeps task rows small.
CREATE TABLE agent_swarms (
    swarm INTEGER NOT NULL REFERENCES swarms (id),
    agent INTEGER NOT NULL REFERENCES agents (id),
    PRIMARY KEY (swarm, agent)
) WITHOUT ROWID;

CREATE TABLE agent_metrics (
    metric_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    agent       INTEGER NOT NULL REFERENCES agents (id),
    metric_type INTEGER NOT NULL REFERENCES metric_types (code),
    value       REAL    NOT NULL,
    metadata    TEXT,
    timestamp   INTEGER NOT NULL
);
CREATE INDEX idx_agent_metrics_agent ON agent_metrics (agent, metric_type, timestamp);
CREATE INDEX idx_agent_metrics_type ON agent_metrics (metric_type, timestamp);
CREATE INDEX idx_agent_metrics_time ON agent_metrics (timestamp);

CREATE TABLE swarm_metrics (
    metric_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    swarm       INTEGER NOT NULL REFERENCES swarms (id),
    metric_type INTEGER NOT NULL REFERENCES metric_types (code),
    value       REAL    NOT NULL,
    metadata    TEXT,
    timestamp   INTEGER NOT NULL
);
CREATE INDEX idx_swarm_metrics_swarm ON swarm_metrics (swarm, metric_type, timestamp);
CREATE INDEX idx_swarm_metrics_type ON swarm_metrics (metric_type, timestamp);
CREATE INDEX idx_swarm_metrics_time ON swarm_metrics (timestamp);

-- Rollups: what retention folds raw rows into before deleting them, so that
-- long-range answers survive. `level` 1 is hourly, 2 daily; `bucket` is the
-- bucket's first microsecond. Every row of a metrics table is either still
-- raw or folded into exactly one rollup row, never both. Each measured
-- column keeps its sum, min, max, Welford mean and M2 (an exact, mergeable
-- standard deviation) and a DDSketch of its values (quantiles within 1%).
CREATE TABLE task_rollups (
    level           INTEGER NOT NULL,
    bucket          INTEGER NOT NULL,
    agent           INTEGER NOT NULL,
    swarm           INTEGER NOT NULL,   -- 0: tasks without a swarm
    result          INTEGER NOT NULL,
    count           INTEGER NOT NULL,
    duration_sum    INTEGER NOT NULL,
    duration_min    INTEGER NOT NULL,
    duration_max    INTEGER NOT NULL,
    duration_mean   REAL    NOT NULL,
    duration_m2     REAL    NOT NULL,
    duration_sketch BLOB    NOT NULL,
    tokens_sum      INTEGER NOT NULL,
    tokens_min      INTEGER NOT NULL,
    tokens_max      INTEGER NOT NULL,
    tokens_mean     REAL    NOT NULL,
    tokens_m2       REAL    NOT NULL,
    tokens_sketch   BLOB    NOT NULL,
    files_sum       INTEGER NOT NULL,
    files_min       INTEGER NOT NULL,
    files_max       INTEGER NOT NULL,
    files_mean      REAL    NOT NULL,
    files_m2        REAL    NOT NULL,
    files_sketch    BLOB    NOT NULL,
    PRIMARY KEY (level, bucket, agent, swarm, result)
) WITHOUT ROWID;

CREATE TABLE agent_rollups (
    level        INTEGER NOT NULL,
    bucket       INTEGER NOT NULL,
    agent        INTEGER NOT NULL,
    metric_type  INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    value_sum    REAL    NOT NULL,
    value_min    REAL    NOT NULL,
    value_max    REAL    NOT NULL,
    value_mean   REAL    NOT NULL,
    value_m2     REAL    NOT NULL,
    value_sketch BLOB    NOT NULL,
    PRIMARY KEY (level, bucket, agent, metric_type)
) WITHOUT ROWID;

CREATE TABLE swarm_rollups (
    level        INTEGER NOT NULL,
    bucket       INTEGER NOT NULL,
    swarm        INTEGER NOT NULL,
    metric_type  INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    value_sum    REAL    NOT NULL,
    value_min    REAL    NOT NULL,
    value_max    REAL    NOT NULL,
    value_mean   REAL    NOT NULL,
    value_m2     REAL    NOT NULL,
    value_sketch BLOB    NOT NULL,
    PRIMARY KEY (level, bucket, swarm, metric_type)
) WITHOUT ROWID;

-- Reference-shaped views with names and ISO-8601 UTC timestamps.
CREATE VIEW task_metrics_view AS
SELECT t.task_id, a.name AS agent_id, s.name AS swarm_id, t.duration_ms,
       r.name AS result, t.tokens_used, t.files_changed,
       strftime('%Y-%m-%dT%H:%M:%f', t.timestamp / 1000000.0, 'unixepoch') || 'Z' AS timestamp
FROM task_metrics t
JOIN agents a ON a.id = t.agent
LEFT JOIN swarms s ON s.id = t.swarm
JOIN task_results r ON r.code = t.result;

CREATE VIEW agent_metrics_view AS
SELECT m.metric_id, a.name AS agent_id, ty.name AS metric_type, m.value, m.metadata,
       strftime('%Y-%m-%dT%H:%M:%f', m.timestamp / 1000000.0, 'unixepoch') || 'Z' AS timestamp
FROM agent_metrics m
JOIN agents a ON a.id = m.agent
JOIN metric_types ty ON ty.code = m.metric_type;

CREATE VIEW swarm_metrics_view AS
SELECT m.metric_id, s.name AS swarm_id, ty.name AS metric_type, m.value, m.metadata,
       strftime('%Y-%m-%dT%H:%M:%f', m.timestamp / 1000000.0, 'unixepoch') || 'Z' AS timestamp
FROM swarm_metrics m
JOIN swarms s ON s.id = m.swarm
JOIN metric_types ty ON ty.code = m.metric_type;
