//! The types the façade and the engines share: the records and their
//! enums, filters and groupings, what goes in (batches, parsed records),
//! what a question's shape is, and what comes out (answers, reports and
//! analytics). Nothing here reads or writes a store.

pub(crate) mod analytics;
pub(crate) mod answer;
pub(crate) mod batch;
pub(crate) mod checks;
pub(crate) mod enums;
pub(crate) mod filter;
pub(crate) mod pricing;
pub(crate) mod record;
pub(crate) mod reports;
pub(crate) mod shapes;
pub(crate) mod span;
pub(crate) mod tally;
pub(crate) mod trace;
pub(crate) mod usage;
