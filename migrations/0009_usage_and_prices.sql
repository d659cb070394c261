-- Migration 9: what tasks cost. A task may carry its tokens by type, the
-- model and provider that ran it, and a cost; models have prices with
-- validity dates, so that history keeps the price of its day.
--
-- A task's usage is one nullable blob of variable-length integers (the
-- file's reader documents it: src/engine/sqlite/usage.rs): every column
-- costs a byte a row even when empty, and the blob keeps a full usage
-- (model, input tokens, cost) in about seven bytes where five columns
-- would take eleven. Older rows read it as NULL: no usage.

ALTER TABLE task_metrics ADD COLUMN usage BLOB;

-- Model and provider, interned together as the blob names them: '' where
-- a task names only one of them (names are never empty).
CREATE TABLE models (
    id       INTEGER PRIMARY KEY,
    model    TEXT NOT NULL,
    provider TEXT NOT NULL,
    UNIQUE (model, provider)
);

-- A model's price from valid_from (µs) until its next price, in whole
-- micro-dollars per million tokens (pico-dollars per token) of each type:
-- input not read from or written to the cache, output, cache reads,
-- cache writes.
CREATE TABLE prices (
    model       TEXT    NOT NULL,
    valid_from  INTEGER NOT NULL,
    input       INTEGER NOT NULL CHECK (input >= 0),
    output      INTEGER NOT NULL CHECK (output >= 0),
    cache_read  INTEGER NOT NULL CHECK (cache_read >= 0),
    cache_write INTEGER NOT NULL CHECK (cache_write >= 0),
    PRIMARY KEY (model, valid_from)
) WITHOUT ROWID;

-- A task's cost is a measure as its duration is (answers give it in USD).
INSERT INTO metric_types (code, name) VALUES (13, 'task_cost');
-- And so are the tokens of each type.
INSERT INTO metric_types (code, name) VALUES
    (14, 'task_input_tokens'),
    (15, 'task_output_tokens'),
    (16, 'task_cache_read_tokens'),
    (17, 'task_cache_write_tokens');
