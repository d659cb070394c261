//! The statistics behind the answers, free of any store: running
//! statistics, exact quantiles and sketches ([`running`]), confidence
//! intervals of success rates ([`interval`]), lower bounds of quantiles
//! ([`order_bound`]), and the significance tests of comparisons
//! ([`hypothesis`]).

pub(crate) mod hypothesis;
pub(crate) mod interval;
pub(crate) mod order_bound;
pub(crate) mod running;
