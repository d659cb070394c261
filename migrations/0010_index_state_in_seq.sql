-- Migration 10: whether a task metric is in the agent and task-id indexes
-- is the low bit of its seq, not a column of its own.
--
-- Every column costs a byte of the record header in every row, even one
-- that holds 0 or 1 and takes no byte itself. seq is stored doubled, its
-- low bit set while the row waits for the indexes: 2 × seq for an indexed
-- row, 2 × seq + 1 for one that is not yet. Rows of one microsecond keep
-- their order (seq values differ), an indexed row of seq 0 still takes no
-- byte, and moving a row into the indexes takes 1 from its seq. On 1M
-- tasks a task takes about one byte less.

DROP VIEW task_metrics_view;

CREATE TABLE task_metrics_v10 (
    timestamp     INTEGER NOT NULL,
    -- Twice the row's number among the rows of its microsecond, plus 1
    -- while the row is not yet in the agent and task-id indexes (see
    -- task_index_state).
    seq           INTEGER NOT NULL CHECK (seq >= 0),
    task_id       TEXT    NOT NULL,
    -- The columns aggregates read come first: SQLite finds a column by
    -- walking the ones before it.
    result        INTEGER NOT NULL CHECK (result BETWEEN 0 AND 3),
    duration_ms   INTEGER NOT NULL CHECK (duration_ms >= 0),
    tokens_used   INTEGER NOT NULL CHECK (tokens_used >= 0),
    files_changed INTEGER NOT NULL CHECK (files_changed >= 0),
    agent         INTEGER NOT NULL REFERENCES agents (id),
    swarm         INTEGER REFERENCES swarms (id),
    -- The task's usage: src/engine/sqlite/usage.rs.
    usage         BLOB,
    PRIMARY KEY (timestamp, seq)
) WITHOUT ROWID;
INSERT INTO task_metrics_v10
    (timestamp, seq, task_id, result, duration_ms, tokens_used, files_changed, agent, swarm,
     usage)
SELECT timestamp, seq * 2 + 1 - indexed, task_id, result, duration_ms, tokens_used,
       files_changed, agent, swarm, usage
FROM task_metrics ORDER BY timestamp, seq;
DROP TABLE task_metrics;
ALTER TABLE task_metrics_v10 RENAME TO task_metrics;

-- Entries are (agent, timestamp, seq) and (task_id, timestamp, seq).
CREATE INDEX idx_task_metrics_agent ON task_metrics (agent, timestamp) WHERE seq % 2 = 0;
CREATE INDEX idx_task_metrics_task_id ON task_metrics (task_id) WHERE seq % 2 = 0;

CREATE VIEW task_metrics_view AS
SELECT t.task_id, a.name AS agent_id, s.name AS swarm_id, t.duration_ms,
       r.name AS result, t.tokens_used, t.files_changed,
       strftime('%Y-%m-%dT%H:%M:%f', t.timestamp / 1000000.0, 'unixepoch') || 'Z' AS timestamp
FROM task_metrics t
JOIN agents a ON a.id = t.agent
LEFT JOIN swarms s ON s.id = t.swarm
JOIN task_results r ON r.code = t.result;
