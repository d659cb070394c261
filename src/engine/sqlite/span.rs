//! The span of time a selection of tasks covers on a file.

use super::FileStore;
use crate::engine::sqlite::retention::merge::{rollup_span, rollups_apply};
use crate::error::{Error, Result};
use crate::model::filter::Filter;
use crate::model::record::MetricKind;

impl FileStore {
    /// The first and last instants (µs) of the tasks `filter` selects,
    /// raw or rolled up.
    pub(crate) fn task_span(&self, filter: &Filter) -> Result<Option<(i64, i64)>> {
        let operation = "read the span of the data";
        self.snapshot(|snapshot| {
            let (from, params) = filter.sql_from(MetricKind::Task);
            let sql = format!("SELECT min(m.timestamp), max(m.timestamp) FROM {from}");
            let mut span: Option<(i64, i64)> = None;
            snapshot.each(&sql, params, operation, |row| {
                let first: Option<i64> = row.get(0).map_err(Error::sqlite(operation))?;
                let last: Option<i64> = row.get(1).map_err(Error::sqlite(operation))?;
                span = first.zip(last);
                Ok(())
            })?;
            if rollups_apply(snapshot, MetricKind::Task, filter)? {
                if let Some((first, last)) = rollup_span(snapshot, MetricKind::Task, filter)? {
                    span = Some(span.map_or((first, last), |(a, b)| (a.min(first), b.max(last))));
                }
            }
            Ok(span)
        })
    }
}
