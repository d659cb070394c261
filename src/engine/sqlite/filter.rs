//! A [`Filter`] and a [`GroupBy`] as the file's SQL: the source and
//! `WHERE` clause a filter selects, the parameters they take, and the
//! expression naming a group.

use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;

use crate::error::Result;
use crate::model::filter::{to_micros, Filter, GroupBy, TimeRange};
use crate::model::record::{MetricKind, MetricType, TaskResult};

impl Filter {
    /// What follows `FROM` in a query of `kind`'s metrics matching this
    /// filter: the rows' source, aliased `m`, and the `WHERE` clause, with
    /// their parameters. `metric_type` is left out for task metrics (it
    /// picks a column there).
    ///
    /// Task metrics filtered by task id, agent or swarm come from two
    /// parts: rows already in the task-id or agent index, read through it,
    /// and the newest rows, not in them yet, read through the primary key
    /// from the watermark on (see `task_index_state` in `schema.sql`). SQLite pushes the other
    /// conditions, such as the time range, into both parts.
    pub(crate) fn sql_from(&self, kind: MetricKind) -> (String, Vec<SqlValue>) {
        let (source, clause, params) = self.source_and_clause(kind, false);
        (format!("{source} m WHERE {clause}"), params.values(self))
    }

    /// [`sql_from`](Self::sql_from) in its two parts: the source (to
    /// alias `m`) and the `WHERE` clause (`1` when empty), with the fields
    /// their parameters take.
    ///
    /// `all_indexed` says that the time range ends at or before the index
    /// watermark read before the query (see [`Filter::all_indexed`]): every
    /// row the filter can match is then in the agent and task-id indexes,
    /// and only that part is read.
    pub(crate) fn source_and_clause(
        &self,
        kind: MetricKind,
        all_indexed: bool,
    ) -> (String, String, Params) {
        let mut params = Params::default();
        let mut clauses = Vec::new();
        let indexed = match kind {
            MetricKind::Task => self.indexed_task_source(&mut params, &mut clauses, all_indexed),
            _ => None,
        };
        if indexed.is_none() {
            self.bind_agent_and_swarm(&mut params, &mut clauses);
        }
        if self.result.is_some() {
            clauses.push(params.bind("m.result = ?", Field::Result));
        }
        // An indexed source holds the time range itself.
        if indexed.is_none() {
            self.bind_type_and_range(kind, &mut params, &mut clauses, "m", "m.timestamp");
        }
        let source = indexed.unwrap_or_else(|| kind.table().to_owned());
        (source, all_of(&clauses), params)
    }

    /// The value of `field`, as a query parameter (NULL when unset).
    fn value_of(&self, field: Field) -> SqlValue {
        let text = |id: &Option<String>| id.clone().map_or(SqlValue::Null, SqlValue::Text);
        let code = |code: Option<i64>| code.map_or(SqlValue::Null, SqlValue::Integer);
        let time = |at: fn(&TimeRange) -> DateTime<Utc>| {
            code(self.time_range.as_ref().map(|range| to_micros(at(range))))
        };
        match field {
            Field::TaskId => text(&self.task_id),
            Field::AgentId => text(&self.agent_id),
            Field::SwarmId => text(&self.swarm_id),
            Field::Result => code(self.result.map(TaskResult::code)),
            Field::MetricType => code(self.metric_type.map(MetricType::code)),
            Field::Start => time(TimeRange::start),
            Field::End => time(TimeRange::end),
        }
    }

    /// The conditions on the agent and swarm, on the table aliased `m`.
    fn bind_agent_and_swarm(&self, params: &mut Params, clauses: &mut Vec<String>) {
        if self.agent_id.is_some() {
            clauses.push(params.bind(&format!("m.{AGENT_IS}"), Field::AgentId));
        }
        if self.swarm_id.is_some() {
            clauses.push(params.bind(&format!("m.{SWARM_IS}"), Field::SwarmId));
        }
    }

    /// For task metrics filtered by task id, agent or swarm: the source
    /// that reads them through the task-id or agent index, and past the
    /// watermark through the primary key (see
    /// [`source_and_clause`](Self::source_and_clause)), with the time range
    /// inside; `None` without such a filter.
    fn indexed_task_source(
        &self,
        params: &mut Params,
        clauses: &mut Vec<String>,
        all_indexed: bool,
    ) -> Option<String> {
        // The conditions that find the rows through an index, which both
        // parts apply: the task id (its own index; agent and swarm are then
        // plain conditions), or else the agent or swarm, with one more
        // condition for the index part of a swarm.
        let mut keys = Vec::new();
        let mut through_index = String::new();
        if self.task_id.is_some() {
            keys.push(params.bind("task_id = ?", Field::TaskId));
            // The agent index must not be chosen over the task id's, for
            // the order it gives: `+` keeps it out.
            if self.agent_id.is_some() {
                clauses.push(params.bind(&format!("+m.{AGENT_IS}"), Field::AgentId));
            }
            if self.swarm_id.is_some() {
                clauses.push(params.bind(&format!("+m.{SWARM_IS}"), Field::SwarmId));
            }
        } else {
            if self.agent_id.is_some() {
                keys.push(params.bind(AGENT_IS, Field::AgentId));
            }
            if self.swarm_id.is_some() {
                keys.push(params.bind(SWARM_IS, Field::SwarmId));
                if self.agent_id.is_none() {
                    // The index part reads the ranges of the swarm's agents.
                    let n = params.count();
                    through_index = format!(
                        "agent IN (SELECT agent FROM agent_swarms \
                         WHERE swarm = (SELECT id FROM swarms WHERE name = ?{n})) AND "
                    );
                }
            }
        }
        if keys.is_empty() {
            return None;
        }
        let keys = keys.join(" AND ");
        // The time range goes into each part rather than into the outer
        // query: the part past the watermark must start at the later of
        // the watermark and the range's start in one bound, or SQLite may
        // start at the range's start and walk every row of the range
        // checking the watermark.
        let (recent_range, indexed_range) = match &self.time_range {
            Some(_) => {
                let start = params.bind("?", Field::Start);
                let end = params.bind("?", Field::End);
                (
                    format!(
                        "timestamp >= (SELECT max(watermark + 1, {start}) FROM task_index_state) \
                         AND timestamp <= {end}"
                    ),
                    format!(" AND timestamp >= {start} AND timestamp <= {end}"),
                )
            }
            None => (
                "timestamp > (SELECT watermark FROM task_index_state)".to_owned(),
                String::new(),
            ),
        };
        let indexed = format!(
            "SELECT * FROM task_metrics WHERE files_changed >= 0 AND {through_index}{keys}{indexed_range}"
        );
        Some(if all_indexed {
            format!("({indexed})")
        } else {
            format!(
                "(SELECT * FROM task_metrics WHERE {recent_range} AND {keys} UNION ALL {indexed})"
            )
        })
    }

    /// The conditions on the metric type (of agent and swarm metrics) and
    /// the time range, on the table aliased `alias`, with `time` the
    /// column the range applies to; raw rows and rollups share them.
    pub(crate) fn bind_type_and_range(
        &self,
        kind: MetricKind,
        params: &mut Params,
        clauses: &mut Vec<String>,
        alias: &str,
        time: &str,
    ) {
        if self.metric_type.is_some() && kind != MetricKind::Task {
            clauses.push(params.bind(&format!("{alias}.metric_type = ?"), Field::MetricType));
        }
        if self.time_range.is_some() {
            clauses.extend(params.bind_range(time));
        }
    }
}

/// Rows of one agent, by name: `agent = (…)`.
const AGENT_IS: &str = "agent = (SELECT id FROM agents WHERE name = ?)";

/// Rows of one swarm, by name: `swarm = (…)`.
const SWARM_IS: &str = "swarm = (SELECT id FROM swarms WHERE name = ?)";

/// Which of a filter's values a query parameter takes. A query is built
/// from which fields a filter sets, never from their values, so one built
/// query serves every filter of the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    TaskId,
    AgentId,
    SwarmId,
    Result,
    MetricType,
    /// The time range's start, in microseconds.
    Start,
    /// The time range's end, in microseconds.
    End,
}

/// The parameters of a query being built, numbered in order: the fields
/// of the filter they take.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(Vec<Field>);

impl Params {
    /// `clause` with its one `?` numbered for `field`, which is added.
    pub fn bind(&mut self, clause: &str, field: Field) -> String {
        self.0.push(field);
        clause.replace('?', &format!("?{}", self.0.len()))
    }

    /// The two clauses keeping `column` inside the time range, both ends
    /// included.
    pub fn bind_range(&mut self, column: &str) -> [String; 2] {
        [
            self.bind(&format!("{column} >= ?"), Field::Start),
            self.bind(&format!("{column} <= ?"), Field::End),
        ]
    }

    /// How many parameters there are: the number of the last one.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// The parameters' values for `filter`, which must have the shape
    /// the query was built for.
    pub fn values(&self, filter: &Filter) -> Vec<SqlValue> {
        self.0.iter().map(|&field| filter.value_of(field)).collect()
    }
}

/// `clauses` joined with `AND`; `1` (true) for none.
pub(crate) fn all_of(clauses: &[String]) -> String {
    if clauses.is_empty() {
        "1".to_owned()
    } else {
        clauses.join(" AND ")
    }
}

impl GroupBy {
    /// The SQL expression naming the group of a row of `kind` in the
    /// table aliased `alias` (raw rows or rollups), or an error when the
    /// grouping does not apply.
    pub(crate) fn key_sql(self, kind: MetricKind, alias: &str) -> Result<String> {
        self.validate(kind)?;
        let (names, key) = match self {
            GroupBy::Agent => ("agents", "id"),
            GroupBy::Swarm => ("swarms", "id"),
            GroupBy::Result => ("task_results", "code"),
            GroupBy::MetricType => ("metric_types", "code"),
            GroupBy::Model => return Ok(model_key(alias)),
        };
        let column = self.column(alias);
        Ok(format!("(SELECT name FROM {names} WHERE {key} = {column})"))
    }

    /// The column grouped on, in the table aliased `alias` (cheap to group
    /// by; names are looked up once per group).
    pub(crate) fn column(self, alias: &str) -> String {
        let column = match self {
            GroupBy::Agent => "agent",
            GroupBy::Swarm => "swarm",
            GroupBy::Result => "result",
            GroupBy::MetricType => "metric_type",
            // Grouped by name: one model may come from several providers.
            GroupBy::Model => return model_key(alias),
        };
        format!("{alias}.{column}")
    }
}

/// A task's model name from its usage blob, in the table aliased `alias`:
/// NULL for a task without one.
fn model_key(alias: &str) -> String {
    format!("(SELECT NULLIF(model, '') FROM models WHERE id = usage_model({alias}.usage))")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_from_numbers_its_parameters() {
        let (sql, params) = Filter::new()
            .agent("a")
            .result(TaskResult::Timeout)
            .sql_from(MetricKind::Task);
        let agent = "agent = (SELECT id FROM agents WHERE name = ?1)";
        assert_eq!(
            sql,
            format!(
                "(SELECT * FROM task_metrics \
                  WHERE timestamp > (SELECT watermark FROM task_index_state) AND {agent} \
                  UNION ALL \
                  SELECT * FROM task_metrics WHERE files_changed >= 0 AND {agent}) m \
                 WHERE m.result = ?2"
            )
        );
        assert_eq!(params.len(), 2);
        assert_eq!(
            Filter::new().sql_from(MetricKind::Swarm).0,
            "swarm_metrics m WHERE 1"
        );
    }
}
