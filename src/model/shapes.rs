//! The shapes of the questions an engine is asked: which query a plan
//! explains, in which order rows come, what a grouped read selects.

use crate::error::Result;
use crate::model::filter::{Filter, GroupBy};
use crate::model::record::{AggregationType, MetricKind};

/// Which of the store's queries to explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryShape {
    /// `get_*_metrics` (rows, newest first).
    Rows,
    /// `aggregate_metrics` with this aggregation.
    Aggregate(AggregationType),
    /// `success_rate` (task metrics only).
    SuccessRate,
    /// `percentile` and `percentiles`.
    Percentile,
}

/// The orders rows are read in, newest first but for
/// [`SlowestFirst`](RowOrder::SlowestFirst).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowOrder {
    /// Newest first; rows that share a timestamp last task id (or metric
    /// id) first.
    NewestFirst,
    /// Task metrics by duration, longest first, then newest first.
    SlowestFirst,
}

/// A grouped read: the metrics of `kind` that `filter` selects, one
/// answer per group of `group_by` (both checked to apply to `kind`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupRead<'a> {
    /// The kind of metric read.
    pub kind: MetricKind,
    /// What the answers are grouped by.
    pub group_by: GroupBy,
    /// Which metrics are read.
    pub filter: &'a Filter,
}

impl<'a> GroupRead<'a> {
    /// The grouped read of `kind`'s metrics `filter` selects by
    /// `group_by`, once both are checked to apply to `kind` (the filter
    /// may pick a task column, as aggregates do).
    pub fn checked(kind: MetricKind, group_by: GroupBy, filter: &'a Filter) -> Result<Self> {
        filter.validate(kind, true)?;
        group_by.validate(kind)?;
        Ok(GroupRead {
            kind,
            group_by,
            filter,
        })
    }
}
