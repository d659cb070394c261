//! The `WHERE` clauses of reads on PostgreSQL: a filter's conditions on a
//! metric table (alias `m`) or on its rollups (alias `r`), with typed
//! parameters.

use postgres::types::{ToSql, Type};

use crate::model::filter::{to_micros, Filter};
use crate::model::record::MetricKind;

/// A `WHERE` clause over metrics (alias `m`) and its parameters.
pub(super) struct Where {
    pub clause: String,
    /// The parameters with their types: a query whose parameter types
    /// are given goes to the server in one round trip (`query_typed`)
    /// instead of two (prepare, then execute).
    pub params: Vec<(Box<dyn ToSql + Sync>, Type)>,
}

impl Where {
    /// The conditions `filter` sets on task metrics.
    pub fn tasks(filter: &Filter) -> Where {
        Where::of(MetricKind::Task, filter)
    }

    /// The conditions `filter` sets on metrics of `kind` (validated for
    /// that kind: it names no field the kind lacks).
    pub fn of(kind: MetricKind, filter: &Filter) -> Where {
        let mut w = Where::empty();
        if let Some(id) = &filter.task_id {
            w.push("m.task_id =", Box::new(id.clone()), Type::TEXT);
        }
        if let Some(result) = filter.result {
            w.push("m.result =", Box::new(result.code() as i16), Type::INT2);
        }
        w.push_shared(kind, filter, "m", "m.timestamp");
        w.finished()
    }

    /// The conditions raw rows (alias `m`) and rollups (alias `r`) share:
    /// the agent, the swarm, the metric type, and the range `time` is in.
    fn push_shared(&mut self, kind: MetricKind, filter: &Filter, alias: &str, time: &str) {
        if let Some(id) = &filter.agent_id {
            self.push(
                &format!("{alias}.agent_id ="),
                Box::new(id.clone()),
                Type::TEXT,
            );
        }
        if let Some(id) = &filter.swarm_id {
            self.push(
                &format!("{alias}.swarm_id ="),
                Box::new(id.clone()),
                Type::TEXT,
            );
        }
        if let (Some(metric_type), false) = (filter.metric_type, kind == MetricKind::Task) {
            let code = Box::new(metric_type.code() as i16);
            self.push(&format!("{alias}.metric_type ="), code, Type::INT2);
        }
        if let Some(range) = &filter.time_range {
            let (start, end) = (to_micros(range.start()), to_micros(range.end()));
            self.push(&format!("{time} >="), Box::new(start), Type::INT8);
            self.push(&format!("{time} <="), Box::new(end), Type::INT8);
        }
    }

    /// No condition yet.
    pub fn empty() -> Where {
        Where {
            clause: String::new(),
            params: Vec::new(),
        }
    }

    /// The clause as SQL takes it: `TRUE` without conditions.
    pub fn finished(mut self) -> Where {
        if self.clause.is_empty() {
            self.clause.push_str("TRUE");
        }
        self
    }

    /// Adds `condition $n` for the next parameter.
    pub fn push(&mut self, condition: &str, value: Box<dyn ToSql + Sync>, ty: Type) {
        if !self.clause.is_empty() {
            self.clause.push_str(" AND ");
        }
        self.params.push((value, ty));
        self.clause
            .push_str(&format!("{condition} ${}", self.params.len()));
    }

    /// The parameters and their types, for `query_typed`.
    pub fn params(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.params
            .iter()
            .map(|(p, ty)| (p.as_ref(), ty.clone()))
            .collect()
    }
}

impl Where {
    /// The conditions `filter` sets on `kind`'s rollups (alias `r`): its
    /// agent, swarm and metric type, and a range that the bucket starts
    /// in. `None` when it names a task, which rollups cannot tell apart.
    pub fn rollups(kind: MetricKind, filter: &Filter) -> Option<Where> {
        if filter.task_id.is_some() {
            return None;
        }
        let mut w = Where::empty();
        w.push_shared(kind, filter, "r", "r.bucket");
        Some(w.finished())
    }
}
