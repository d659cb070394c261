//! The types the façade and the engines share: what goes in (batches,
//! parsed records), what a question's shape is, and what comes out
//! (reports and analytics answers). Nothing here reads or writes a store.

pub(crate) mod analytics;
pub(crate) mod batch;
pub(crate) mod reports;
pub(crate) mod shapes;
