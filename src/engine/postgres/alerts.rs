//! Alert states and their history on a server: an evaluation is one
//! transaction under an advisory lock, so that evaluators on several
//! hosts take turns and each reads the states the one before wrote.

use std::collections::BTreeMap;

use chrono::DateTime;
use postgres::Row;

use super::{Columns, PgStore};
use crate::alerts::evaluate::{group_key, AlertRow, Evaluation, Outcome, StoredAlert, Transition};
use crate::error::{Error, Result};
use crate::model::filter::{to_micros, Filter};

/// A key for `pg_advisory_xact_lock`: "swarm-al" in ASCII.
const ALERTS_LOCK: i64 = 0x7377_6172_6d2d_616c;

const SELECT_STATES: &str = "SELECT rule, group_key, group_by, state, active_since, cleared_at, \
                             evaluated_at, figures FROM alert_states ORDER BY rule, group_key";

fn state_row(row: &Row) -> Result<StoredAlert> {
    AlertRow {
        rule: row.column(0)?,
        group_key: row.column(1)?,
        group_by: row.column(2)?,
        state: i64::from(row.column::<i16>(3)?),
        active_since: row.column(4)?,
        cleared_at: row.column(5)?,
        at: row.column(6)?,
        from_state: None,
        figures: row.column(7)?,
    }
    .into_state("alert_states")
}

fn history_row(row: &Row) -> Result<Transition> {
    AlertRow {
        at: row.column(0)?,
        rule: row.column(1)?,
        group_key: row.column(2)?,
        group_by: row.column(3)?,
        from_state: Some(i64::from(row.column::<i16>(4)?)),
        state: i64::from(row.column::<i16>(5)?),
        active_since: None,
        cleared_at: None,
        figures: row.column(6)?,
    }
    .into_transition("alert_history")
}

/// A state code as the server's `smallint` column takes it.
fn small(code: i64) -> i16 {
    // Codes are 0 to 3.
    i16::try_from(code).unwrap_or(i16::MAX)
}

impl PgStore {
    /// Moves the evaluation's alert instances on in one transaction.
    pub(crate) fn record_alerts(&self, evaluation: Evaluation) -> Result<Outcome> {
        let mut conn = self.conn()?;
        let mut tx = conn
            .transaction()
            .map_err(self.error("begin recording alerts"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ALERTS_LOCK])
            .map_err(self.error("lock the alert states"))?;
        let stored = tx
            .query(SELECT_STATES, &[])
            .map_err(self.error("read alert states"))?
            .iter()
            .map(state_row)
            .collect::<Result<Vec<_>>>()?;
        let mut times = BTreeMap::new();
        for row in tx
            .query("SELECT rule, evaluated_at FROM alert_rules", &[])
            .map_err(self.error("read alert rules"))?
        {
            let us: i64 = row.column(1)?;
            let at = DateTime::from_timestamp_micros(us).ok_or_else(|| Error::CorruptRow {
                table: "alert_rules",
                reason: format!("instant {us}"),
            })?;
            times.insert(row.column::<String>(0)?, at);
        }
        let outcome = evaluation.apply(stored, &times);
        for (rule, at) in &outcome.evaluated {
            tx.execute(
                "INSERT INTO alert_rules (rule, evaluated_at) VALUES ($1, $2) \
                 ON CONFLICT (rule) DO UPDATE SET evaluated_at = EXCLUDED.evaluated_at",
                &[rule, &at.timestamp_micros()],
            )
            .map_err(self.error("record alerts"))?;
        }
        for (rule, group) in &outcome.inactive {
            tx.execute(
                "DELETE FROM alert_states WHERE rule = $1 AND group_key = $2",
                &[rule, &group_key(group)],
            )
            .map_err(self.error("record alerts"))?;
        }
        let upsert = tx
            .prepare(
                "INSERT INTO alert_states (rule, group_key, group_by, state, active_since, \
                 cleared_at, evaluated_at, figures) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (rule, group_key) DO UPDATE SET group_by = EXCLUDED.group_by, \
                 state = EXCLUDED.state, active_since = EXCLUDED.active_since, \
                 cleared_at = EXCLUDED.cleared_at, evaluated_at = EXCLUDED.evaluated_at, \
                 figures = EXCLUDED.figures",
            )
            .map_err(self.error("record alerts"))?;
        for state in &outcome.states {
            let r = AlertRow::of_state(state)?;
            tx.execute(
                &upsert,
                &[
                    &r.rule,
                    &r.group_key,
                    &r.group_by,
                    &small(r.state),
                    &r.active_since,
                    &r.cleared_at,
                    &r.at,
                    &r.figures,
                ],
            )
            .map_err(self.error("record alerts"))?;
        }
        let insert = tx
            .prepare(
                "INSERT INTO alert_history (at, rule, group_key, group_by, from_state, to_state, \
                 figures) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .map_err(self.error("record alerts"))?;
        for transition in &outcome.transitions {
            let r = AlertRow::of_transition(transition)?;
            tx.execute(
                &insert,
                &[
                    &r.at,
                    &r.rule,
                    &r.group_key,
                    &r.group_by,
                    &small(r.from_state.unwrap_or_default()),
                    &small(r.state),
                    &r.figures,
                ],
            )
            .map_err(self.error("record alerts"))?;
        }
        tx.commit().map_err(self.error("record alerts"))?;
        Ok(outcome)
    }

    /// Every stored alert state.
    pub(crate) fn alert_states(&self) -> Result<Vec<StoredAlert>> {
        self.read_conn()?
            .query(SELECT_STATES, &[])
            .map_err(self.error("read alert states"))?
            .iter()
            .map(state_row)
            .collect()
    }

    /// The transitions in the filter's time range, oldest first.
    pub(crate) fn alert_history(&self, filter: &Filter) -> Result<Vec<Transition>> {
        let (start, end) = filter.time_range.map_or((i64::MIN, i64::MAX), |r| {
            (to_micros(r.start()), to_micros(r.end()))
        });
        self.read_conn()?
            .query(
                "SELECT at, rule, group_key, group_by, from_state, to_state, figures \
                 FROM alert_history WHERE at >= $1 AND at <= $2 ORDER BY at, rule, group_key",
                &[&start, &end],
            )
            .map_err(self.error("read the alert history"))?
            .iter()
            .map(history_row)
            .collect()
    }

    /// Deletes the transitions before `cutoff` (µs); returns how many.
    pub(crate) fn delete_alert_history_before(&self, cutoff: i64) -> Result<u64> {
        self.conn()?
            .execute("DELETE FROM alert_history WHERE at < $1", &[&cutoff])
            .map_err(self.error("age the alert history"))
    }

    /// How many transitions lie before `cutoff` (µs).
    pub(crate) fn count_alert_history_before(&self, cutoff: i64) -> Result<u64> {
        let n: i64 = self
            .read_conn()?
            .query_one(
                "SELECT count(*) FROM alert_history WHERE at < $1",
                &[&cutoff],
            )
            .map_err(self.error("count old alert history"))?
            .column(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
