-- The swarm-metrics schema, version 10, as the migrations in migrations/ make it.
-- Written by a test from those files (which say why each part is as it is);
-- do not edit by hand. The rows the migrations insert are not shown.

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

CREATE TABLE metric_types (
    code INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

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

CREATE TABLE task_index_state (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    watermark INTEGER NOT NULL
);

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

CREATE TABLE alert_states (
    rule         TEXT    NOT NULL,
    -- The agent or swarm; '' for the rule's whole selection (ids are
    -- never empty).
    group_key    TEXT    NOT NULL,
    -- 'none', 'agent' or 'swarm': what group_key names.
    group_by     TEXT    NOT NULL,
    -- 1 pending, 2 firing, 3 recovering.
    state        INTEGER NOT NULL CHECK (state BETWEEN 1 AND 3),
    active_since INTEGER,
    cleared_at   INTEGER,
    -- The instant (µs) of the evaluation that wrote the row.
    evaluated_at INTEGER NOT NULL,
    -- The figures that decided it, as JSON.
    figures      TEXT    NOT NULL,
    PRIMARY KEY (rule, group_key)
) WITHOUT ROWID;

CREATE TABLE alert_rules (
    rule         TEXT    NOT NULL PRIMARY KEY,
    -- The instant (µs) of the rule's last evaluation.
    evaluated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE alert_history (
    at         INTEGER NOT NULL,
    rule       TEXT    NOT NULL,
    group_key  TEXT    NOT NULL,
    group_by   TEXT    NOT NULL,
    from_state INTEGER NOT NULL CHECK (from_state BETWEEN 0 AND 3),
    to_state   INTEGER NOT NULL CHECK (to_state BETWEEN 0 AND 3),
    figures    TEXT    NOT NULL,
    PRIMARY KEY (at, rule, group_key, to_state)
) WITHOUT ROWID;

CREATE TABLE models (
    id       INTEGER PRIMARY KEY,
    model    TEXT NOT NULL,
    provider TEXT NOT NULL,
    UNIQUE (model, provider)
);

CREATE TABLE prices (
    model       TEXT    NOT NULL,
    valid_from  INTEGER NOT NULL,
    input       INTEGER NOT NULL CHECK (input >= 0),
    output      INTEGER NOT NULL CHECK (output >= 0),
    cache_read  INTEGER NOT NULL CHECK (cache_read >= 0),
    cache_write INTEGER NOT NULL CHECK (cache_write >= 0),
    PRIMARY KEY (model, valid_from)
) WITHOUT ROWID;

CREATE TABLE "task_metrics" (
    timestamp     INTEGER NOT NULL,
    -- The row's number among the rows of its microsecond.
    seq           INTEGER NOT NULL,
    task_id       TEXT    NOT NULL,
    -- The columns aggregates read come first: SQLite finds a column by
    -- walking the ones before it.
    result        INTEGER NOT NULL CHECK (result BETWEEN 0 AND 3),
    duration_ms   INTEGER NOT NULL CHECK (duration_ms >= 0),
    tokens_used   INTEGER NOT NULL CHECK (tokens_used >= 0),
    -- The count once the row is in the agent and task-id indexes; its
    -- bitwise complement while it waits (see task_index_state).
    files_changed INTEGER NOT NULL,
    agent         INTEGER NOT NULL REFERENCES agents (id),
    swarm         INTEGER REFERENCES swarms (id),
    -- The task's usage: src/engine/sqlite/usage.rs.
    usage         BLOB,
    PRIMARY KEY (timestamp, seq)
) WITHOUT ROWID;

CREATE INDEX idx_task_metrics_agent ON task_metrics (agent, timestamp)
    WHERE files_changed >= 0;

CREATE INDEX idx_task_metrics_task_id ON task_metrics (task_id) WHERE files_changed >= 0;

CREATE VIEW task_metrics_view AS
SELECT t.task_id, a.name AS agent_id, s.name AS swarm_id, t.duration_ms,
       r.name AS result, t.tokens_used,
       CASE WHEN t.files_changed < 0 THEN ~t.files_changed ELSE t.files_changed END
           AS files_changed,
       strftime('%Y-%m-%dT%H:%M:%f', t.timestamp / 1000000.0, 'unixepoch') || 'Z' AS timestamp
FROM task_metrics t
JOIN agents a ON a.id = t.agent
LEFT JOIN swarms s ON s.id = t.swarm
JOIN task_results r ON r.code = t.result;
