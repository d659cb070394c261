-- Migration 10: whether a task metric is in the agent and task-id indexes
-- is the sign of its files_changed, not a column of its own.
--
-- Every column costs a byte of the record header in every row, even one
-- that holds 0 or 1 and takes no byte itself. A row waiting for the
-- indexes keeps the bitwise complement of its count of changed files
-- (−1 − files, always negative); moving it into the indexes complements
-- the column again, an update in place as setting a flag was. Reads take
-- the complement of a negative value, the count either way. On 1M tasks
-- a task takes about one byte less. (The flag could not go into seq: a
-- key that changes makes moving rows into the indexes a delete and an
-- insert, a fifth slower to store batches.)

DROP VIEW task_metrics_view;

CREATE TABLE task_metrics_v10 (
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
INSERT INTO task_metrics_v10
    (timestamp, seq, task_id, result, duration_ms, tokens_used, files_changed, agent, swarm,
     usage)
SELECT timestamp, seq, task_id, result, duration_ms, tokens_used,
       CASE indexed WHEN 1 THEN files_changed ELSE ~files_changed END, agent, swarm, usage
FROM task_metrics ORDER BY timestamp, seq;
DROP TABLE task_metrics;
ALTER TABLE task_metrics_v10 RENAME TO task_metrics;

-- Entries are (agent, timestamp, seq) and (task_id, timestamp, seq).
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
