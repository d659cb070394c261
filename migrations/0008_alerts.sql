-- Migration 8: alert states and their history.
--
-- Each evaluation of alert rules writes, in one transaction, the state of
-- every alert instance (a rule, and the agent or swarm it watches) that is
-- not inactive (an inactive one has no row), the instant each rule was
-- evaluated at, and the transitions it made. They are read inside the
-- same write transaction, so that two processes evaluating at once see
-- each other's result and a transition is recorded once; an evaluation at
-- or before a rule's last instant changes nothing, and the key of the
-- history refuses the same transition at the same instant twice.

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
