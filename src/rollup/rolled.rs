//! What an answer takes from rollups, whichever engine holds them: what to
//! read ([`RollupRead`]), what a group of rollups holds ([`Rolled`]), and
//! how one rollup row is added to its group ([`add_rollup`]). Each engine
//! reads its rollup rows its own way (`engine/sqlite/retention/merge.rs` for the file,
//! `engine/postgres/rollups.rs` for a server) and merges them through this, so
//! that both answer alike.

use std::collections::BTreeMap;

use sketches_ddsketch::DDSketch;

use crate::error::{Error, Result};
use crate::model::filter::{Filter, GroupBy};
use crate::model::record::{MetricKind, TaskResult};
use crate::rollup::data::RollupData;
use crate::rollup::row::{measure_of, rollup_table};
use crate::stats::running::Stat;

/// What to read from the rollups a filter covers.
pub(crate) struct RollupRead<'a> {
    pub kind: MetricKind,
    pub filter: &'a Filter,
    /// How to group the rollups; `None` puts them all in one group, keyed
    /// `None`.
    pub group: Option<GroupBy>,
    /// The raw column whose stat to merge (`duration_ms`, `value`, ...);
    /// `None` to count only.
    pub column: Option<&'static str>,
    /// Whether to gather what quantiles need too: exact values where the
    /// rows keep them, sketches where they do not.
    pub quantiles: bool,
}

impl<'a> RollupRead<'a> {
    /// Counts only, grouped by `group`.
    pub fn counts(kind: MetricKind, filter: &'a Filter, group: Option<GroupBy>) -> Self {
        RollupRead {
            kind,
            filter,
            group,
            column: None,
            quantiles: false,
        }
    }

    /// `column`'s stat (and what quantiles need when `quantiles`),
    /// grouped by `group`.
    pub fn column(
        kind: MetricKind,
        filter: &'a Filter,
        group: Option<GroupBy>,
        column: &'static str,
        quantiles: bool,
    ) -> Self {
        RollupRead {
            kind,
            filter,
            group,
            column: Some(column),
            quantiles,
        }
    }
}

/// What the rollups of one group hold.
pub(crate) struct Rolled {
    /// Task counts by result, indexed by the result's code (task rollups
    /// only).
    pub results: [u64; 4],
    /// The merged stat of the column asked for (empty without one).
    pub stat: Stat,
    /// With `quantiles`: the exact values of rows that keep them.
    pub values: Vec<f64>,
    /// With `quantiles`: the merged sketch of rows that keep statistics.
    pub sketch: Option<DDSketch>,
}

impl Rolled {
    /// The task counts by result.
    pub fn result_counts(&self) -> impl Iterator<Item = (TaskResult, u64)> + '_ {
        TaskResult::ALL
            .iter()
            .map(|r| (*r, self.results[r.code() as usize]))
    }
}

/// The classes `read` takes from each rollup row: every task result, or
/// the one its filter asks for; the one class of agent and swarm metrics.
pub(crate) fn classes_read(read: &RollupRead<'_>) -> Vec<usize> {
    match (read.kind, read.filter.result) {
        (MetricKind::Task, Some(result)) => vec![result.code() as usize],
        (MetricKind::Task, None) => (0..4).collect(),
        _ => vec![0],
    }
}

/// Adds one rollup row (its `counts` per class, and its `summary` when
/// `read` asks for a column) to `groups`, each class of `classes` under
/// the key `key_of` gives it. Both engines read their rollups through
/// this, so that they merge alike.
pub(crate) fn add_rollup<K: Ord>(
    groups: &mut BTreeMap<K, Rolled>,
    read: &RollupRead<'_>,
    classes: &[usize],
    counts: [u64; 4],
    summary: Option<&RollupData>,
    mut key_of: impl FnMut(usize) -> Result<K>,
) -> Result<()> {
    let table = rollup_table(read.kind);
    for &class in classes {
        if counts[class] == 0 {
            continue;
        }
        let group = groups.entry(key_of(class)?).or_insert_with(|| Rolled {
            results: [0; 4],
            stat: Stat::new(read.kind == MetricKind::Task, false),
            values: Vec::new(),
            sketch: None,
        });
        group.results[class] += counts[class];
        if let (Some(summary), Some(column)) = (summary, read.column) {
            let part = summary.part(class, measure_of(column), read.quantiles);
            group.stat.merge(&part.stat)?;
            group.values.extend(part.values);
            if let Some(sketch) = part.sketch {
                match &mut group.sketch {
                    Some(merged) => merged.merge(&sketch).map_err(|e| Error::CorruptRow {
                        table,
                        reason: format!("sketches do not merge: {e:?}"),
                    })?,
                    None => group.sketch = Some(sketch),
                }
            }
        }
    }
    Ok(())
}

/// One agent's tasks in a ranking's selection, raw and rolled up.
#[derive(Debug, Default)]
pub(crate) struct AgentTotals {
    pub tasks: u64,
    pub success: u64,
    /// Sums of durations and tokens, in floating point: averages are all a
    /// ranking needs, and sums of huge values must not overflow.
    pub duration_total: f64,
    pub tokens_total: f64,
}

/// Adds each agent's rolled-up tasks, successes, durations and tokens
/// under `filter` to `agents`, from `merge`: an engine's merge of the
/// rollups a [`RollupRead`] asks for, read in the caller's snapshot.
pub(crate) fn add_agent_rollups(
    agents: &mut BTreeMap<String, AgentTotals>,
    filter: &Filter,
    mut merge: impl FnMut(&RollupRead<'_>) -> Result<BTreeMap<Option<String>, Rolled>>,
) -> Result<()> {
    let read = |column| {
        RollupRead::column(
            MetricKind::Task,
            filter,
            Some(GroupBy::Agent),
            column,
            false,
        )
    };
    for (agent, rolled) in merge(&read("duration_ms"))? {
        let totals = agents.entry(agent.unwrap_or_default()).or_default();
        totals.tasks += rolled.results.iter().sum::<u64>();
        totals.success += rolled.results[TaskResult::Success.code() as usize];
        totals.duration_total += rolled.stat.sum();
    }
    for (agent, rolled) in merge(&read("tokens_used"))? {
        agents
            .entry(agent.unwrap_or_default())
            .or_default()
            .tokens_total += rolled.stat.sum();
    }
    Ok(())
}
