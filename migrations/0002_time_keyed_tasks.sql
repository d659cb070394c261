-- Migration 2: task metrics keyed by (timestamp, task_id), with a partial
-- agent index filled in batches.
--
-- Version 1 keyed task metrics by (timestamp, seq), kept a unique index on
-- (task_id, timestamp) and a full agent index, which cost every commit a
-- page each. The key (timestamp, task_id) is also what identifies a task
-- metric: a retried store of the same one hits the key and is ignored,
-- never counted twice, with no index of its own. Every row of a migrated
-- file is already indexed. The view is dropped and made again, because
-- SQLite checks views when a table is renamed.

DROP VIEW task_metrics_view;

-- Task metrics are clustered by time: a time range is one contiguous run of
-- the primary key, so range scans and aggregates read no other pages.
CREATE TABLE task_metrics_v2 (
    timestamp     INTEGER NOT NULL,
    task_id       TEXT    NOT NULL,
    -- The columns aggregates read come first: SQLite finds a column by
    -- walking the ones before it.
    result        INTEGER NOT NULL CHECK (result BETWEEN 0 AND 3),
    duration_ms   INTEGER NOT NULL CHECK (duration_ms >= 0),
    tokens_used   INTEGER NOT NULL CHECK (tokens_used >= 0),
    files_changed INTEGER NOT NULL CHECK (files_changed >= 0),
    agent         INTEGER NOT NULL REFERENCES agents (id),
    swarm         INTEGER REFERENCES swarms (id),
    -- 1 once the row is in the agent index; see task_index_state.
    indexed       INTEGER NOT NULL DEFAULT 1 CHECK (indexed IN (0, 1)),
    PRIMARY KEY (timestamp, task_id)
) WITHOUT ROWID;
INSERT INTO task_metrics_v2
    (timestamp, task_id, result, duration_ms, tokens_used, files_changed, agent, swarm)
SELECT timestamp, task_id, result, duration_ms, tokens_used, files_changed, agent, swarm
FROM task_metrics ORDER BY timestamp, task_id;
DROP TABLE task_metrics;
ALTER TABLE task_metrics_v2 RENAME TO task_metrics;

-- The agent index. Every commit writes a page of each index it touches,
-- and single stores from many agents would touch one agent-index page
-- each, so rows join this index in batches (it is partial: only rows with
-- indexed = 1 are in it). Task ids have no index (a filter on a task id
-- alone walks the time order).
CREATE INDEX idx_task_metrics_agent ON task_metrics (agent, timestamp) WHERE indexed = 1;

-- Rows with a timestamp up to `watermark` are in the agent index
-- (indexed = 1); later rows are not yet (indexed = 0), and queries by agent
-- or swarm read them through the primary key, from the watermark on. The
-- writer moves the watermark to the newest row every so many rows.
CREATE TABLE task_index_state (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    watermark INTEGER NOT NULL
);
INSERT INTO task_index_state (id, watermark)
VALUES (1, coalesce((SELECT max(timestamp) FROM task_metrics), -9223372036854775808));

CREATE VIEW task_metrics_view AS
SELECT t.task_id, a.name AS agent_id, s.name AS swarm_id, t.duration_ms,
       r.name AS result, t.tokens_used, t.files_changed,
       strftime('%Y-%m-%dT%H:%M:%f', t.timestamp / 1000000.0, 'unixepoch') || 'Z' AS timestamp
FROM task_metrics t
JOIN agents a ON a.id = t.agent
LEFT JOIN swarms s ON s.id = t.swarm
JOIN task_results r ON r.code = t.result;
