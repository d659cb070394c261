//! Alerting that does not cry wolf: rules read from TOML ([`rules`]), the
//! verdict each finds at an instant with the figures behind it
//! ([`verdicts`]), and the life of an alert instance from inactive to
//! firing and back ([`state`]).
//!
//! A success-rate rule fires only when the whole confidence interval of
//! the rate lies below its objective, and a latency rule only when a
//! distribution-free lower bound of the quantile lies above its
//! threshold: on the small samples agents give, a point estimate alone
//! crosses a threshold by chance far too often.

pub(crate) mod evaluate;
pub(crate) mod rules;
pub(crate) mod state;
pub(crate) mod verdicts;

pub use evaluate::{AlertInstance, Transition};
pub use rules::{default_burn_windows, AlertGroup, BurnWindows, Condition, Mode, Rule, Rules};
pub use state::{AlertState, Standing, Verdict};
pub use verdicts::{Figures, Finding};
