//! The shapes of the questions an engine is asked: which query a plan
//! explains, in which order rows come.

use crate::model::record::AggregationType;

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
