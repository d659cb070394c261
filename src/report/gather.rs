//! Reading a report's numbers, inside one consistent read.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::{AgentRow, CostPoint, DurationPoint, OtherAgents, RateLine, Report, ReportOptions};
use crate::alerts::AlertState;
use crate::engine::on_engine;
use crate::error::{Error, Result};
use crate::model::filter::{from_micros, Filter, GroupBy, TaskColumn, TimeRange};
use crate::model::record::{AggregationType, MetricKind, TaskResult};
use crate::query::aggregate::SuccessRate;
use crate::query::analytics::{BucketValue, EmptyBuckets, Measure, Outlier, P50, P95};
use crate::storage::MetricsStorage;

/// Bucket widths a report picks from, in seconds: the first that gives at
/// most [`MOST_BUCKETS`] over the span.
const WIDTHS: [i64; 14] = [
    1,
    5,
    15,
    60,
    5 * 60,
    15 * 60,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86_400,
    7 * 86_400,
    30 * 86_400,
    365 * 86_400,
];

/// About as many buckets as a chart shows legibly.
const MOST_BUCKETS: i64 = 120;

/// The longest span a report charts when its range holds no data at all
/// (a range with data is cut to the data).
const LONGEST_EMPTY_SPAN_DAYS: i64 = 366;

/// How many of the alert history's transitions the report lists.
const LAST_TRANSITIONS: usize = 20;

pub(super) fn gather(store: &MetricsStorage, options: &ReportOptions) -> Result<Report> {
    let generated_at = crate::model::record::now();
    let filter = &options.filter;
    let stats = store.stats()?;
    let span = chart_span(store, filter)?;
    let width_seconds = match options.width {
        Some(width) => width.num_seconds(),
        None => span.map_or(3600, |span| auto_width(span.end() - span.start())),
    };
    let width = Duration::seconds(width_seconds);
    let summary = store.summary(filter)?;

    let mut rates = Vec::new();
    let mut durations = Vec::new();
    let mut costs = Vec::new();
    let mut swarms_not_charted = 0;
    if let Some(span) = span {
        let charted = filter.clone().range(span);
        let rate_series = |filter: &Filter| {
            store.series(
                MetricKind::Task,
                Measure::SuccessRate,
                width,
                filter,
                EmptyBuckets::Zero,
            )
        };
        rates.push(RateLine {
            swarm: None,
            overall: summary.success_rate,
            buckets: rate_series(&charted)?,
        });
        if filter.swarm_id.is_none() {
            let mut swarms: Vec<(String, SuccessRate)> = store
                .success_rate_by(GroupBy::Swarm, filter)?
                .into_iter()
                .filter_map(|g| Some((g.key?, g.value)))
                .collect();
            swarms.sort_by(|a, b| b.1.total.cmp(&a.1.total).then_with(|| a.0.cmp(&b.0)));
            swarms_not_charted = swarms.len().saturating_sub(options.charted_swarms) as u64;
            for (swarm, overall) in swarms.into_iter().take(options.charted_swarms) {
                let buckets = rate_series(&charted.clone().swarm(&swarm))?;
                rates.push(RateLine {
                    swarm: Some(swarm),
                    overall,
                    buckets,
                });
            }
        }
        let percentile_series = |q| {
            store.series(
                MetricKind::Task,
                Measure::Percentile(q),
                width,
                &charted,
                EmptyBuckets::Zero,
            )
        };
        for (p50, p95) in percentile_series(P50)?
            .into_iter()
            .zip(percentile_series(P95)?)
        {
            if let (BucketValue::Percentile(a), BucketValue::Percentile(b)) = (p50.value, p95.value)
            {
                durations.push(DurationPoint {
                    start: p50.start,
                    p50: a,
                    p95: b,
                });
            }
        }
        for bucket in store.series(
            MetricKind::Task,
            Measure::Aggregate(AggregationType::Sum),
            width,
            &charted.clone().column(TaskColumn::Cost),
            EmptyBuckets::Zero,
        )? {
            if let BucketValue::Aggregate(cost) = bucket.value {
                costs.push(CostPoint {
                    start: bucket.start,
                    cost,
                });
            }
        }
    }

    let (agents, other_agents) = leaderboard(store, filter, options.top_agents)?;
    let (current, baseline) = windows(span, options, generated_at)?;
    let within = Filter {
        time_range: None,
        ..filter.clone()
    };
    let regressions = store.regressions_in(&within, current, baseline, options.alpha)?;
    let mut outliers = store.duration_outliers(filter)?;
    let outliers_total = outliers.len() as u64;
    outliers.sort_by(|a, b| how_far_out(b).total_cmp(&how_far_out(a)));
    outliers.truncate(options.outliers);
    let mut alerts = store.alert_states()?;
    alerts.retain(|a| a.standing.state != AlertState::Inactive);
    let mut alert_transitions = store.alert_history(&Filter::new())?;
    alert_transitions.reverse();
    alert_transitions.truncate(LAST_TRANSITIONS);

    Ok(Report {
        title: options.title.clone().unwrap_or_else(|| title_of(filter)),
        generated_at,
        filter: filter.clone(),
        span,
        width_seconds,
        summary,
        rates,
        swarms_not_charted,
        durations,
        costs,
        agents,
        other_agents,
        current,
        baseline,
        alpha: options.alpha,
        regressions,
        outliers,
        outliers_total,
        store: stats,
        alerts,
        alert_transitions,
    })
}

/// The span the charts cover: the filter's range cut to the span of the
/// selected tasks (raw or rolled up), or that span without a range. A
/// range without data is charted empty if it is not absurdly long.
fn chart_span(store: &MetricsStorage, filter: &Filter) -> Result<Option<TimeRange>> {
    let unranged = Filter {
        time_range: None,
        ..filter.clone()
    };
    let data = data_span(store, &unranged)?;
    let data = data.and_then(|(first, last)| Some((from_micros(first)?, from_micros(last)?)));
    let Some(range) = filter.time_range else {
        return Ok(match data {
            Some((first, last)) => Some(TimeRange::new(first, last)?),
            None => None,
        });
    };
    if let Some((first, last)) = data {
        let (start, end) = (range.start().max(first), range.end().min(last));
        if start <= end {
            return Ok(Some(TimeRange::new(start, end)?));
        }
    }
    let long = range.end() - range.start() > Duration::days(LONGEST_EMPTY_SPAN_DAYS);
    Ok((!long).then_some(range))
}

/// The first and last instants (µs) of the tasks `unranged` selects, raw
/// or rolled up.
fn data_span(store: &MetricsStorage, unranged: &Filter) -> Result<Option<(i64, i64)>> {
    on_engine!(store.engine(), task_span(unranged))
}

/// The first of [`WIDTHS`] that gives at most [`MOST_BUCKETS`] buckets.
fn auto_width(span: Duration) -> i64 {
    let seconds = span.num_seconds().max(1);
    WIDTHS
        .into_iter()
        .find(|w| seconds / w < MOST_BUCKETS)
        .unwrap_or(WIDTHS[WIDTHS.len() - 1])
}

/// The regression windows: the current one up to the end of the span (or
/// now, whichever is earlier), the baseline just before it.
fn windows(
    span: Option<TimeRange>,
    options: &ReportOptions,
    now: DateTime<Utc>,
) -> Result<(TimeRange, TimeRange)> {
    let end = span.map_or(now, |span| span.end().min(now));
    let tick = Duration::microseconds(1);
    let out_of_range = || Error::invalid("current", "the windows reach before the earliest date");
    let current_start = end
        .checked_sub_signed(options.current - tick)
        .ok_or_else(out_of_range)?;
    let baseline_end = current_start - tick;
    let baseline_start = baseline_end
        .checked_sub_signed(options.baseline - tick)
        .ok_or_else(out_of_range)?;
    Ok((
        TimeRange::new(current_start, end)?,
        TimeRange::new(baseline_start, baseline_end)?,
    ))
}

/// The busiest `n` agents, in the order `success_rate_by` ranks them, and
/// the rest summed up.
fn leaderboard(
    store: &MetricsStorage,
    filter: &Filter,
    n: usize,
) -> Result<(Vec<AgentRow>, Option<OtherAgents>)> {
    let rates = store.success_rate_by(GroupBy::Agent, filter)?;
    let mut by_volume: Vec<(u64, &str)> = rates
        .iter()
        .filter_map(|g| Some((g.value.total, g.key.as_deref()?)))
        .collect();
    by_volume.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let listed: std::collections::HashSet<&str> =
        by_volume.iter().take(n).map(|(_, agent)| *agent).collect();
    let p95: HashMap<String, Option<f64>> = store
        .percentile_by(MetricKind::Task, P95, GroupBy::Agent, filter)?
        .into_iter()
        .filter_map(|g| Some((g.key?, g.value.value)))
        .collect();
    let tokens: HashMap<String, u64> = store
        .aggregate_by(
            MetricKind::Task,
            AggregationType::Sum,
            GroupBy::Agent,
            &filter.clone().column(TaskColumn::Tokens),
        )?
        .into_iter()
        .filter_map(|g| Some((g.key?, g.value.value.map_or(0, |v| v as u64))))
        .collect();
    let costs: HashMap<String, Option<f64>> = store
        .aggregate_by(
            MetricKind::Task,
            AggregationType::Sum,
            GroupBy::Agent,
            &filter.clone().column(TaskColumn::Cost),
        )?
        .into_iter()
        .filter_map(|g| Some((g.key?, g.value.value)))
        .collect();
    let mut rows = Vec::new();
    let mut others = OtherAgents::default();
    for g in &rates {
        let Some(agent) = g.key.as_deref() else {
            continue;
        };
        let agent_tokens = tokens.get(agent).copied().unwrap_or(0);
        if listed.contains(agent) {
            rows.push(AgentRow {
                agent_id: agent.to_owned(),
                rate: g.value,
                p95_ms: p95.get(agent).copied().flatten(),
                tokens: agent_tokens,
                cost_usd: costs.get(agent).copied().flatten(),
            });
        } else {
            others.agents += 1;
            let r = &g.value;
            for (result, count) in [
                (TaskResult::Success, r.success),
                (TaskResult::Failure, r.failure),
                (TaskResult::Timeout, r.timeout),
                (TaskResult::Cancelled, r.cancelled),
            ] {
                others.rate.add(result, count);
            }
            others.tokens += agent_tokens;
            // Costs are whole micro-dollars: the product gives them back.
            let micros = costs.get(agent).copied().flatten().unwrap_or(0.0) * 1e6;
            others.cost_micros += micros.round() as u64;
        }
    }
    Ok((rows, (others.agents > 0).then_some(others)))
}

/// How far a task lies outside its agent's fences, in interquartile
/// ranges (or milliseconds when the range is 0).
fn how_far_out(o: &Outlier) -> f64 {
    let d = o.task.duration_ms as f64;
    let past = if d > o.high_fence {
        d - o.high_fence
    } else {
        o.low_fence - d
    };
    past / (o.q3 - o.q1).max(1.0)
}

/// "Swarm health: swarm-a, agent-1, failures, 2025-06-01 – 2025-06-08".
fn title_of(filter: &Filter) -> String {
    let mut parts = Vec::new();
    if let Some(swarm) = &filter.swarm_id {
        parts.push(format!("swarm {swarm}"));
    }
    if let Some(agent) = &filter.agent_id {
        parts.push(format!("agent {agent}"));
    }
    if let Some(result) = filter.result {
        parts.push(format!("{} tasks", result.as_str()));
    }
    if parts.is_empty() {
        parts.push("all swarms".to_owned());
    }
    format!("Swarm health: {}", parts.join(", "))
}
