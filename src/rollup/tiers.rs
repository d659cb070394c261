//! The steps of tiered retention and the widths of its tiers: what each
//! engine's retention runs (`engine/sqlite/retention/fold.rs` on the file,
//! `engine/postgres/fold.rs` on a server), driven alike by
//! `ops::retention`'s driver.

use crate::model::record::MetricKind;
use crate::rollup::row::rollup_table;

/// One hour in microseconds: the width of an hourly rollup.
pub(crate) const HOUR_US: i64 = 3_600_000_000;
/// One day in microseconds: the width of a daily rollup.
pub(crate) const DAY_US: i64 = 24 * HOUR_US;

/// The rollup level of hourly rollups, in the `level` column.
pub(crate) const HOURLY: i64 = 1;
/// The rollup level of daily rollups.
pub(crate) const DAILY: i64 = 2;

/// For each rollup level, the last bucket that ends at or before `cutoff`
/// (µs): rollups up to it lie wholly before the horizon.
pub(crate) fn whole_buckets_before(cutoff: i64) -> [(i64, i64); 2] {
    [
        (HOURLY, cutoff.saturating_sub(HOUR_US)),
        (DAILY, cutoff.saturating_sub(DAY_US)),
    ]
}

/// One step of retention, done as one writer job (one transaction).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    FoldRaw {
        kind: MetricKind,
        cutoff: i64,
        limit: i64,
    },
    FoldHourly {
        kind: MetricKind,
        cutoff: i64,
        limit: i64,
    },
    DropDaily {
        kind: MetricKind,
        cutoff: i64,
    },
}

/// What a step has left to do: the rows of `table` (rollups of `level`,
/// or raw rows when `None`) whose `column` lies before `cutoff` (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backlog {
    pub table: &'static str,
    pub level: Option<i64>,
    pub column: &'static str,
    pub cutoff: i64,
}

impl Step {
    /// What the step works on; an engine asks whether any such row
    /// exists to tell whether the step has work.
    pub(crate) fn backlog(&self) -> Backlog {
        let rollups = |kind, level, cutoff| Backlog {
            table: rollup_table(kind),
            level: Some(level),
            column: "bucket",
            cutoff,
        };
        match *self {
            Step::FoldRaw { kind, cutoff, .. } => Backlog {
                table: kind.table(),
                level: None,
                column: "timestamp",
                cutoff,
            },
            Step::FoldHourly { kind, cutoff, .. } => rollups(kind, HOURLY, cutoff),
            Step::DropDaily { kind, cutoff } => rollups(kind, DAILY, cutoff),
        }
    }

    /// The kind of metric the step works on.
    pub(crate) fn kind(&self) -> MetricKind {
        match *self {
            Step::FoldRaw { kind, .. }
            | Step::FoldHourly { kind, .. }
            | Step::DropDaily { kind, .. } => kind,
        }
    }
}

/// `t` rounded down to a multiple of `width`, also before 1970.
pub(crate) fn floor_to(t: i64, width: i64) -> i64 {
    t.div_euclid(width) * width
}

/// How long maintenance pauses after each chunk of work. A writer in
/// another process retries the write lock at least every millisecond (see
/// `writer::transaction`), so it gets in between two chunks instead of
/// waiting for the whole run and timing out.
const BETWEEN_CHUNKS: std::time::Duration = std::time::Duration::from_micros(1_500);

/// Pauses between two chunks of maintenance; see [`BETWEEN_CHUNKS`].
pub(crate) fn let_others_write() {
    std::thread::sleep(BETWEEN_CHUNKS);
}
