//! Alert states and their history in the file: an evaluation is one
//! writer job that reads the states, moves them on and writes them back
//! with the transitions, so that evaluations are serialized by the writer.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, Row, ToSql};

use super::FileStore;
use crate::alerts::evaluate::{group_key, AlertRow, Evaluation, Outcome, StoredAlert, Transition};
use crate::error::{Error, Result};
use crate::model::filter::{to_micros, Filter};

const STATES: &str = "alert_states";
const HISTORY: &str = "alert_history";

/// The states, in the columns [`alert_row`] reads.
const SELECT_STATES: &str = "SELECT rule, group_key, group_by, state, active_since, cleared_at, \
                             evaluated_at, NULL, figures FROM alert_states ORDER BY rule, group_key";

/// The transitions in a time range, oldest first, in the columns
/// [`alert_row`] reads.
const SELECT_HISTORY: &str = "SELECT rule, group_key, group_by, to_state, NULL, NULL, at, \
                              from_state, figures FROM alert_history \
                              WHERE at >= ?1 AND at <= ?2 ORDER BY at, rule, group_key";

/// A row of [`SELECT_STATES`] or [`SELECT_HISTORY`], from `table`: its
/// columns in the order of [`AlertRow`]'s fields.
fn alert_row(row: &Row<'_>, table: &'static str) -> Result<AlertRow> {
    let corrupt = |e: rusqlite::Error| Error::CorruptRow {
        table,
        reason: e.to_string(),
    };
    Ok(AlertRow {
        rule: row.get(0).map_err(corrupt)?,
        group_key: row.get(1).map_err(corrupt)?,
        group_by: row.get(2).map_err(corrupt)?,
        state: row.get(3).map_err(corrupt)?,
        active_since: row.get(4).map_err(corrupt)?,
        cleared_at: row.get(5).map_err(corrupt)?,
        at: row.get(6).map_err(corrupt)?,
        from_state: row.get(7).map_err(corrupt)?,
        figures: row.get(8).map_err(corrupt)?,
    })
}

fn state_row(row: &Row<'_>) -> Result<StoredAlert> {
    alert_row(row, STATES)?.into_state(STATES)
}

fn history_row(row: &Row<'_>) -> Result<Transition> {
    alert_row(row, HISTORY)?.into_transition(HISTORY)
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
    // Both statements take an alert row's columns as `?1` … `?9`, in the
    // order of its fields (see `row_params`), each using those it keeps.
    let states = outcome.states.iter().map(AlertRow::of_state);
    write_rows(
        conn,
        "INSERT OR REPLACE INTO alert_states (rule, group_key, group_by, state, \
         active_since, cleared_at, evaluated_at, figures) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9)",
        states,
    )?;
    let transitions = outcome.transitions.iter().map(AlertRow::of_transition);
    write_rows(
        conn,
        "INSERT OR IGNORE INTO alert_history (rule, group_key, group_by, to_state, at, \
         from_state, figures) VALUES (?1, ?2, ?3, ?4, ?7, ?8, ?9)",
        transitions,
    )?;
    Ok(())
}

/// Runs `sql` once for each row, its columns bound by [`row_params`].
fn write_rows(
    conn: &Connection,
    sql: &str,
    rows: impl Iterator<Item = Result<AlertRow>>,
) -> Result<()> {
    let operation = "record alerts";
    let mut statement = conn.prepare_cached(sql).map_err(Error::sqlite(operation))?;
    for row in rows {
        statement
            .execute(row_params(&row?).as_slice())
            .map_err(Error::sqlite(operation))?;
    }
    Ok(())
}

/// An alert row's columns as `?1` … `?9`, in the order of its fields.
fn row_params(r: &AlertRow) -> [&dyn ToSql; 9] {
    [
        &r.rule,
        &r.group_key,
        &r.group_by,
        &r.state,
        &r.active_since,
        &r.cleared_at,
        &r.at,
        &r.from_state,
        &r.figures,
    ]
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
                SELECT_HISTORY,
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
