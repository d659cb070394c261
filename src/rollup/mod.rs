//! Rollups, as both engines keep them: the tiers and their buckets
//! ([`tiers`]), what one rollup row holds ([`data`], stored in its `data`
//! column), the row's table and columns ([`row`]), and how an answer adds
//! rollup rows to what it read from raw rows ([`rolled`]).

pub(crate) mod data;
pub(crate) mod rolled;
pub(crate) mod row;
pub(crate) mod tiers;
