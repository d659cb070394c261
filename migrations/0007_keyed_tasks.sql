-- Migration 7: task metrics keyed by (timestamp, seq).
--
-- Version 2 keyed task metrics by (timestamp, task_id), so every entry of
-- the agent and task-id indexes carried the whole task id besides the
-- timestamp. Here the key is (timestamp, seq), seq numbering the rows of
-- one microsecond from 0: a byte or none (SQLite stores 0 and 1 in the
-- record header). The table is still clustered by time, a time range is
-- still one run of the key, and index entries are about 12 bytes shorter:
-- on 1M tasks of 100 agents stored in batches of 1,000, a task takes
-- about 20 bytes less, and rows are compared as integers, not as text.
--
-- A task metric is still identified by its timestamp and task id: the
-- writer looks for the task id among the rows of its microsecond, through
-- the task-id index once they are indexed, before it stores one (see
-- src/task_place.rs). Reads order rows of one microsecond by task id, as
-- before; seq numbers them in task-id order here, and in the order they
-- were stored from now on.

DROP VIEW task_metrics_view;

CREATE TABLE task_metrics_v7 (
    timestamp     INTEGER NOT NULL,
    -- The row's number among the rows of its microsecond.
    seq           INTEGER NOT NULL,
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
    PRIMARY KEY (timestamp, seq)
) WITHOUT ROWID;
INSERT INTO task_metrics_v7
    (timestamp, seq, task_id, result, duration_ms, tokens_used, files_changed, agent, swarm,
     indexed)
SELECT timestamp, row_number() OVER (PARTITION BY timestamp ORDER BY task_id) - 1,
       task_id, result, duration_ms, tokens_used, files_changed, agent, swarm, indexed
FROM task_metrics ORDER BY timestamp, task_id;
DROP TABLE task_metrics;
ALTER TABLE task_metrics_v7 RENAME TO task_metrics;

-- Entries are (agent, timestamp, seq) and (task_id, timestamp, seq).
CREATE INDEX idx_task_metrics_agent ON task_metrics (agent, timestamp) WHERE indexed = 1;
CREATE INDEX idx_task_metrics_task_id ON task_metrics (task_id) WHERE indexed = 1;

CREATE VIEW task_metrics_view AS
SELECT t.task_id, a.name AS agent_id, s.name AS swarm_id, t.duration_ms,
       r.name AS result, t.tokens_used, t.files_changed,
       strftime('%Y-%m-%dT%H:%M:%f', t.timestamp / 1000000.0, 'unixepoch') || 'Z' AS timestamp
FROM task_metrics t
JOIN agents a ON a.id = t.agent
LEFT JOIN swarms s ON s.id = t.swarm
JOIN task_results r ON r.code = t.result;
