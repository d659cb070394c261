//! What [`MetricsStorage::task_tallies`](crate::MetricsStorage::task_tallies)
//! answers: the raw tasks of one agent, swarm, model and result, counted
//! and summed exactly, with their durations.

use serde::{Deserialize, Serialize};

use crate::model::record::TaskResult;

/// The raw task rows of one agent in one swarm on one model that ended
/// with one result: how many, what they used and cost, and how long each
/// took.
///
/// Sums are kept in 128 bits, so that no count of stored tasks can
/// overflow them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskTally {
    /// The agent.
    pub agent_id: String,
    /// The swarm; `None` for tasks stored without one.
    pub swarm_id: Option<String>,
    /// The model; `None` for tasks stored without one.
    pub model: Option<String>,
    /// How the tasks ended.
    pub result: TaskResult,
    /// How many tasks.
    pub tasks: u64,
    /// Their tokens, summed.
    pub tokens_used: u128,
    /// What the tasks with a cost cost, in micro-dollars, summed.
    pub cost_micros: u128,
    /// The tasks without a cost, which `cost_micros` leaves out.
    pub unpriced: u64,
    /// Each task's duration (ms), in no order.
    pub durations_ms: Vec<u64>,
}

impl TaskTally {
    /// No tasks yet of this agent, swarm, model and result.
    pub(crate) fn empty(
        agent_id: String,
        swarm_id: Option<String>,
        model: Option<String>,
        result: TaskResult,
    ) -> Self {
        TaskTally {
            agent_id,
            swarm_id,
            model,
            result,
            tasks: 0,
            tokens_used: 0,
            cost_micros: 0,
            unpriced: 0,
            durations_ms: Vec::new(),
        }
    }

    /// Counts one more task.
    pub(crate) fn add(&mut self, duration_ms: u64, tokens_used: u64, cost_micros: Option<u64>) {
        self.tasks += 1;
        self.tokens_used += u128::from(tokens_used);
        match cost_micros {
            Some(micros) => self.cost_micros += u128::from(micros),
            None => self.unpriced += 1,
        }
        self.durations_ms.push(duration_ms);
    }

    /// The tally's agent, swarm, model and result, in the order tallies
    /// are listed.
    pub(crate) fn key(&self) -> (&str, Option<&str>, Option<&str>, TaskResult) {
        (
            &self.agent_id,
            self.swarm_id.as_deref(),
            self.model.as_deref(),
            self.result,
        )
    }

    /// Takes in the tasks of `other`, of the same key.
    pub(crate) fn absorb(&mut self, other: TaskTally) {
        self.tasks += other.tasks;
        self.tokens_used += other.tokens_used;
        self.cost_micros += other.cost_micros;
        self.unpriced += other.unpriced;
        self.durations_ms.extend(other.durations_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_add_up_and_tallies_of_one_key_merge() {
        let mut a = TaskTally::empty("a".into(), None, Some("m".into()), TaskResult::Success);
        a.add(10, u64::MAX, Some(u64::MAX));
        a.add(20, u64::MAX, None);
        let mut b = a.clone();
        b.add(30, 1, Some(1));
        assert_eq!(a.key(), b.key());
        a.absorb(b);
        assert_eq!(a.tasks, 5);
        assert_eq!(a.tokens_used, 4 * u128::from(u64::MAX) + 1);
        assert_eq!(a.cost_micros, 2 * u128::from(u64::MAX) + 1);
        assert_eq!(a.unpriced, 2);
        assert_eq!(a.durations_ms, [10, 20, 10, 20, 30]);
        let other = TaskTally::empty("a".into(), Some("s".into()), None, TaskResult::Success);
        assert_ne!(a.key(), other.key());
    }
}
