//! Operating a store: tiered retention, cleanup and vacuum
//! ([`retention`]), moving every metric to another store ([`copy`]), what
//! a store holds and whether it is sound ([`inspect`]), and which index a
//! query uses ([`plan`]).

pub(crate) mod copy;
pub(crate) mod health;
pub(crate) mod inspect;
pub(crate) mod plan;
pub(crate) mod retention;
