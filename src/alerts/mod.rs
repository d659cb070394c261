//! Alerting that does not cry wolf: rules read from TOML ([`rules`]), the
//! figures behind a verdict ([`figures`]), the life of an alert instance
//! from inactive to firing and back ([`state`]), and how one evaluation
//! moves every instance on ([`evaluate`]), which each engine runs inside
//! its write transaction. The answers that feed them are composed in
//! `query/alerting.rs`.
//!
//! A success-rate rule fires only when the whole confidence interval of
//! the rate lies below its objective, and a latency rule only when a
//! distribution-free lower bound of the quantile lies above its
//! threshold: on the small samples agents give, a point estimate alone
//! crosses a threshold by chance far too often.

pub(crate) mod evaluate;
pub(crate) mod figures;
pub(crate) mod rules;
pub(crate) mod state;

pub use evaluate::{AlertInstance, Transition};
pub use figures::{Figures, Finding};
pub use rules::{default_burn_windows, AlertGroup, BurnWindows, Condition, Mode, Rule, Rules};
pub use state::{AlertState, Standing, Verdict};
