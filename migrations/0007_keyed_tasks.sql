-- Migration 7: task metrics in a rowid table keyed by time.
--
-- Version 2 keyed task metrics by (timestamp, task_id) in a WITHOUT ROWID
-- table, so every entry of the agent and task-id indexes carried both: the
-- timestamp (8 bytes) and the whole task id. Here the key is one integer,
-- the timestamp in microseconds times 1024 plus a sequence number, which
-- numbers the rows of one microsecond in task-id order. Index entries carry
-- that integer, rows are found by it without comparing text, and the
-- table is still clustered by time: a time range is one run of keys, read
-- in the order (timestamp, task_id) as before. On 1M tasks of 100 agents
-- stored in batches of 1,000 this takes a task from 110 to 90 bytes, and
-- stores about a fifth faster.
--
-- The timestamp is read back from the key by a virtual column, which
-- takes no space. Timestamps must lie within 2^53 microseconds of 1970
-- (the years 1685 to 2255) and at most 1024 task metrics share one
-- microsecond; the migration checks both before it starts (see
-- open/upgrade.rs).
--
-- A task metric is still identified by its timestamp and task id: the
-- writer looks for the task id among the keys of its microsecond before
-- it stores one. Every row of a migrated file is indexed; the watermark
-- of a file without indexed rows is now one below the earliest storable
-- timestamp, so that the keys it bounds stay within 64 bits.

DROP VIEW task_metrics_view;

CREATE TABLE task_metrics_v7 (
    -- timestamp * 1024 + the row's place among the task ids of its
    -- microsecond.
    time_key      INTEGER PRIMARY KEY,
    task_id       TEXT    NOT NULL,
    -- The columns aggregates read come first: SQLite finds a column by
    -- walking the ones before it.
    result        INTEGER NOT NULL CHECK (result BETWEEN 0 AND 3),
    duration_ms   INTEGER NOT NULL CHECK (duration_ms >= 0),
    tokens_used   INTEGER NOT NULL CHECK (tokens_used >= 0),
    files_changed INTEGER NOT NULL CHECK (files_changed >= 0),
    agent         INTEGER NOT NULL REFERENCES agents (id),
    swarm         INTEGER REFERENCES swarms (id),
    -- 1 once the row is in the agent and task-id indexes; see
    -- task_index_state.
    indexed       INTEGER NOT NULL DEFAULT 1 CHECK (indexed IN (0, 1)),
    timestamp     INTEGER GENERATED ALWAYS AS (time_key >> 10) VIRTUAL
);
INSERT INTO task_metrics_v7
    (time_key, task_id, result, duration_ms, tokens_used, files_changed, agent, swarm)
SELECT timestamp * 1024 + row_number() OVER (PARTITION BY timestamp ORDER BY task_id) - 1,
       task_id, result, duration_ms, tokens_used, files_changed, agent, swarm
FROM task_metrics ORDER BY timestamp, task_id;
DROP TABLE task_metrics;
ALTER TABLE task_metrics_v7 RENAME TO task_metrics;

-- Entries are (agent, time_key) and (task_id, time_key): the rowid is
-- part of every index entry.
CREATE INDEX idx_task_metrics_agent ON task_metrics (agent) WHERE indexed = 1;
CREATE INDEX idx_task_metrics_task_id ON task_metrics (task_id) WHERE indexed = 1;

UPDATE task_index_state SET watermark = coalesce(
    (SELECT max(time_key) >> 10 FROM task_metrics),
    -9007199254740992
);

CREATE VIEW task_metrics_view AS
SELECT t.task_id, a.name AS agent_id, s.name AS swarm_id, t.duration_ms,
       r.name AS result, t.tokens_used, t.files_changed,
       strftime('%Y-%m-%dT%H:%M:%f', t.timestamp / 1000000.0, 'unixepoch') || 'Z' AS timestamp
FROM task_metrics t
JOIN agents a ON a.id = t.agent
LEFT JOIN swarms s ON s.id = t.swarm
JOIN task_results r ON r.code = t.result;
