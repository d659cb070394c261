//! Alert states and their history in the file: an evaluation is one
//! writer job that reads the states, moves them on and writes them back
//! with the transitions, so that evaluations are serialized by the writer.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, Row};

use super::FileStore;
use crate::alerts::evaluate::{group_key, AlertRow, Evaluation, Outcome, StoredAlert, Transition};
use crate::error::{Error, Result};
use crate::model::filter::{to_micros, Filter};

const STATES: &str = "alert_states";
const HISTORY: &str = "alert_history";

const SELECT_STATES: &str = "SELECT rule, group_key, group_by, state, active_since, cleared_at, \
                             evaluated_at, figures FROM alert_states ORDER BY rule, group_key";

/// A state row of [`SELECT_STATES`].
fn state_row(row: &Row<'_>) -> Result<StoredAlert> {
    let corrupt = |e: rusqlite::Error| Error::CorruptRow {
        table: STATES,
        reason: e.to_string(),
    };
    AlertRow {
        rule: row.get(0).map_err(corrupt)?,
        group_key: row.get(1).map_err(corrupt)?,
        group_by: row.get(2).map_err(corrupt)?,
        state: row.get(3).map_err(corrupt)?,
        active_since: row.get(4).map_err(corrupt)?,
        cleared_at: row.get(5).map_err(corrupt)?,
        at: row.get(6).map_err(corrupt)?,
        from_state: None,
        figures: row.get(7).map_err(corrupt)?,
    }
    .into_state(STATES)
}

/// A history row: at, rule, group_key, group_by, from, to, figures.
fn history_row(row: &Row<'_>) -> Result<Transition> {
    let corrupt = |e: rusqlite::Error| Error::CorruptRow {
        table: HISTORY,
        reason: e.to_string(),
    };
    AlertRow {
        at: row.get(0).map_err(corrupt)?,
        rule: row.get(1).map_err(corrupt)?,
        group_key: row.get(2).map_err(corrupt)?,
        group_by: row.get(3).map_err(corrupt)?,
        from_state: Some(row.get(4).map_err(corrupt)?),
        state: row.get(5).map_err(corrupt)?,
        active_since: None,
        cleared_at: None,
        figures: row.get(6).map_err(corrupt)?,
    }
    .into_transition(HISTORY)
}

/// Every state row, read on the writer's connection.
fn read_states(conn: &Connection) -> Result<Vec<StoredAlert>> {
    let operation = "read alert states";
    let mut statement = conn
        .prepare_cached(SELECT_STATES)
        .map_err(Error::sqlite(operation))?;
    let mut rows = statement.query([]).map_err(Error::sqlite(operation))?;
    let mut states = Vec::new();
    while let Some(row) = rows.next().map_err(Error::sqlite(operation))? {
        states.push(state_row(row)?);
    }
    Ok(states)
}

/// The instant each rule was last evaluated at.
fn read_rule_times(conn: &Connection) -> Result<BTreeMap<String, DateTime<Utc>>> {
    let operation = "read alert rules";
    let mut statement = conn
        .prepare_cached("SELECT rule, evaluated_at FROM alert_rules")
        .map_err(Error::sqlite(operation))?;
    let mut rows = statement.query([]).map_err(Error::sqlite(operation))?;
    let mut times = BTreeMap::new();
    while let Some(row) = rows.next().map_err(Error::sqlite(operation))? {
        let corrupt = |e: rusqlite::Error| Error::CorruptRow {
            table: "alert_rules",
            reason: e.to_string(),
        };
        let rule: String = row.get(0).map_err(corrupt)?;
        let us: i64 = row.get(1).map_err(corrupt)?;
        let at = DateTime::from_timestamp_micros(us).ok_or_else(|| Error::CorruptRow {
            table: "alert_rules",
            reason: format!("instant {us}"),
        })?;
        times.insert(rule, at);
    }
    Ok(times)
}

/// Writes an evaluation's states, rule instants and transitions.
fn write_outcome(conn: &Connection, outcome: &Outcome) -> Result<()> {
    let operation = "record alerts";
    let mut evaluated = conn
        .prepare_cached("INSERT OR REPLACE INTO alert_rules (rule, evaluated_at) VALUES (?1, ?2)")
        .map_err(Error::sqlite(operation))?;
    for (rule, at) in &outcome.evaluated {
        evaluated
            .execute(params![rule, at.timestamp_micros()])
            .map_err(Error::sqlite(operation))?;
    }
    let mut delete = conn
        .prepare_cached("DELETE FROM alert_states WHERE rule = ?1 AND group_key = ?2")
        .map_err(Error::sqlite(operation))?;
    for (rule, group) in &outcome.inactive {
        delete
            .execute(params![rule, group_key(group)])
            .map_err(Error::sqlite(operation))?;
    }
    let mut upsert = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO alert_states (rule, group_key, group_by, state, \
             active_since, cleared_at, evaluated_at, figures) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(Error::sqlite(operation))?;
    for state in &outcome.states {
        let r = AlertRow::of_state(state)?;
        upsert
            .execute(params![
                r.rule,
                r.group_key,
                r.group_by,
                r.state,
                r.active_since,
                r.cleared_at,
                r.at,
                r.figures
            ])
            .map_err(Error::sqlite(operation))?;
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO alert_history (at, rule, group_key, group_by, from_state, \
             to_state, figures) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(Error::sqlite(operation))?;
    for transition in &outcome.transitions {
        let r = AlertRow::of_transition(transition)?;
        insert
            .execute(params![
                r.at,
                r.rule,
                r.group_key,
                r.group_by,
                r.from_state,
                r.state,
                r.figures
            ])
            .map_err(Error::sqlite(operation))?;
    }
    Ok(())
}

impl FileStore {
    /// Moves the evaluation's alert instances on in one write
    /// transaction of its own, on this thread (the evaluation is moved
    /// into it, not copied for the writer's queue).
    pub(crate) fn record_alerts(&self, evaluation: Evaluation) -> Result<Outcome> {
        self.writer()?.run_alone(move |conn, _| {
            let (states, times) = (read_states(conn)?, read_rule_times(conn)?);
            let outcome = evaluation.apply(states, &times);
            write_outcome(conn, &outcome)?;
            Ok(outcome)
        })
    }

    /// Every stored alert state.
    pub(crate) fn alert_states(&self) -> Result<Vec<StoredAlert>> {
        self.snapshot(|snapshot| {
            snapshot.rows(SELECT_STATES, Vec::new(), "read alert states", state_row)
        })
    }

    /// The transitions in the filter's time range, oldest first.
    pub(crate) fn alert_history(&self, filter: &Filter) -> Result<Vec<Transition>> {
        let (start, end) = filter.time_range.map_or((i64::MIN, i64::MAX), |r| {
            (to_micros(r.start()), to_micros(r.end()))
        });
        self.snapshot(|snapshot| {
            snapshot.rows(
                "SELECT at, rule, group_key, group_by, from_state, to_state, figures \
                 FROM alert_history WHERE at >= ?1 AND at <= ?2 ORDER BY at, rule, group_key",
                vec![SqlValue::Integer(start), SqlValue::Integer(end)],
                "read the alert history",
                history_row,
            )
        })
    }

    /// Deletes the transitions before `cutoff` (µs); returns how many.
    pub(crate) fn delete_alert_history_before(&self, cutoff: i64) -> Result<u64> {
        self.writer()?.run(move |conn, _| {
            let n = conn
                .execute("DELETE FROM alert_history WHERE at < ?1", [cutoff])
                .map_err(Error::sqlite("age the alert history"))?;
            Ok(n as u64)
        })
    }

    /// How many transitions lie before `cutoff` (µs).
    pub(crate) fn count_alert_history_before(&self, cutoff: i64) -> Result<u64> {
        self.snapshot(|snapshot| {
            let n: Option<i64> = snapshot.one(
                "SELECT count(*) FROM alert_history WHERE at < ?1",
                vec![SqlValue::Integer(cutoff)],
                "count old alert history",
            )?;
            Ok(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
        })
    }
}
