//! The closed enums of the store: task results, metric types, metric
//! kinds and aggregations, each with its reference string and the small
//! integer code the file stores.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Defines a closed enum of reference strings with `Display`, `FromStr`,
/// serde support and a stable integer code for storage.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $field:literal {
            $( $(#[$vmeta:meta])* $variant:ident = ($code:literal, $text:literal) ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The reference string, e.g. as stored in JSON documents.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            /// The integer stored in the database.
            #[allow(dead_code)]
            pub(crate) fn code(self) -> i64 {
                match self { $($name::$variant => $code,)+ }
            }

            /// The variant stored as `code`, if any.
            #[allow(dead_code)]
            pub(crate) fn from_code(code: i64) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(Error::invalid(
                        $field,
                        format!(
                            "unknown value {:?}; expected one of: {}",
                            s,
                            [$($text),+].join(", ")
                        ),
                    )),
                }
            }
        }
    };
}

string_enum! {
    /// How a task ended.
    TaskResult, "result" {
        /// The task succeeded.
        Success = (0, "success"),
        /// The task failed.
        Failure = (1, "failure"),
        /// The task ran out of time.
        Timeout = (2, "timeout"),
        /// The task was cancelled.
        Cancelled = (3, "cancelled"),
    }
}

string_enum! {
    /// What a metric measures. The `Task*` variants name the numeric columns
    /// of task metrics (for aggregation); the `Agent*` and `Swarm*` variants
    /// are the types of agent and swarm metrics.
    MetricType, "metric_type" {
        /// Task duration in milliseconds.
        TaskDuration = (1, "task_duration"),
        /// Task result (not numeric: use success rates).
        TaskResult = (2, "task_result"),
        /// Tokens a task used.
        TaskTokens = (3, "task_tokens"),
        /// Files a task changed.
        TaskFiles = (4, "task_files"),
        /// An agent's duration measure.
        AgentDuration = (5, "agent_duration"),
        /// An agent's success rate.
        AgentSuccessRate = (6, "agent_success_rate"),
        /// An agent's error count.
        AgentErrorCount = (7, "agent_error_count"),
        /// An agent's throughput.
        AgentThroughput = (8, "agent_throughput"),
        /// A swarm's health.
        SwarmHealth = (9, "swarm_health"),
        /// A swarm's throughput.
        SwarmThroughput = (10, "swarm_throughput"),
        /// A swarm's latency.
        SwarmLatency = (11, "swarm_latency"),
        /// A swarm's resource use.
        SwarmResource = (12, "swarm_resource"),
        /// What a task cost, in USD.
        TaskCost = (13, "task_cost"),
        /// A task's input tokens, cached ones included.
        TaskInputTokens = (14, "task_input_tokens"),
        /// A task's output tokens.
        TaskOutputTokens = (15, "task_output_tokens"),
        /// A task's input tokens read from the prompt cache.
        TaskCacheReadTokens = (16, "task_cache_read_tokens"),
        /// A task's input tokens written to the prompt cache.
        TaskCacheWriteTokens = (17, "task_cache_write_tokens"),
    }
}

string_enum! {
    /// The three kinds of metric, one table each.
    MetricKind, "kind" {
        /// Task metrics (`task_metrics`).
        Task = (0, "task"),
        /// Agent metrics (`agent_metrics`).
        Agent = (1, "agent"),
        /// Swarm metrics (`swarm_metrics`).
        Swarm = (2, "swarm"),
    }
}

string_enum! {
    /// How [`aggregate_metrics`](crate::MetricsStorage::aggregate_metrics)
    /// combines values.
    AggregationType, "aggregation" {
        /// The arithmetic mean.
        Avg = (0, "avg"),
        /// The sum.
        Sum = (1, "sum"),
        /// The number of values.
        Count = (2, "count"),
        /// The smallest value.
        Min = (3, "min"),
        /// The largest value.
        Max = (4, "max"),
        /// The sample standard deviation (n - 1 in the denominator),
        /// computed with Welford's numerically stable method.
        Stddev = (5, "stddev"),
    }
}

impl MetricType {
    /// The kind of metric this type belongs to.
    pub fn kind(self) -> MetricKind {
        match self.code() {
            1..=4 | 13..=17 => MetricKind::Task,
            5..=8 => MetricKind::Agent,
            _ => MetricKind::Swarm,
        }
    }
}

impl MetricKind {
    /// The table holding this kind of metric.
    pub fn table(self) -> &'static str {
        match self {
            MetricKind::Task => "task_metrics",
            MetricKind::Agent => "agent_metrics",
            MetricKind::Swarm => "swarm_metrics",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_strings_and_codes() {
        for &r in TaskResult::ALL {
            assert_eq!(r.as_str().parse::<TaskResult>().unwrap(), r);
            assert_eq!(TaskResult::from_code(r.code()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        for &t in MetricType::ALL {
            assert_eq!(t.to_string().parse::<MetricType>().unwrap(), t);
            assert_eq!(MetricType::from_code(t.code()), Some(t));
            assert!(t.as_str().starts_with(t.kind().as_str()));
        }
        for &k in MetricKind::ALL {
            assert_eq!(k.as_str().parse::<MetricKind>().unwrap(), k);
        }
    }

    #[test]
    fn unknown_strings_name_the_field_and_the_choices() {
        let err = "succeeded".parse::<TaskResult>().unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "result",
                ..
            }
        ));
        assert!(err
            .to_string()
            .contains("success, failure, timeout, cancelled"));
        assert!("".parse::<MetricKind>().is_err());
        assert!("AGENT_THROUGHPUT".parse::<MetricType>().is_err());
    }
}
