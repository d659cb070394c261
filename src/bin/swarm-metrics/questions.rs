//! The questions (`query`, `aggregate`, `success-rate`, `series`,
//! `summary`, `compare`, `regressions`, `top`, `slowest`, `outliers`):
//! one function each, from its arguments to its printed answer.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde_json::Value;
use swarm_metrics::{
    EmptyBuckets, Measure, MetricKind, MetricsStorage, Order, RegressedMeasure, SuccessRate,
    TimeRange,
};

use crate::args::{
    AggregateArgs, CompareArgs, OutliersArgs, QueryArgs, Question, RegressionsArgs, SeriesArgs,
    SlowestArgs, SuccessRateArgs, SummaryArgs, TopArgs,
};
use crate::cost;
use crate::{write_json, Failure};

use crate::parse::{parse_aggregation, parse_span, Aggregation};
use crate::print::{
    aggregate_json, cell, compare_table, interval_cell, json_array, rate_cell, rate_json,
    rate_table, rate_with_interval, series_table, table, table_of, task_rows, to_json, with_id,
    Figure, TASK_HEADER,
};
use crate::select::RangeArgs;

/// Answers one of the questions.
pub fn answer(
    store: &MetricsStorage,
    question: Question,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    match question {
        Question::Query(args) => query(store, args, as_json, out),
        Question::Aggregate(args) => aggregate(store, args, as_json, out),
        Question::SuccessRate(args) => success_rate(store, args, as_json, out),
        Question::Series(args) => series(store, args, as_json, out),
        Question::Summary(args) => summary(store, args, as_json, out),
        Question::Compare(args) => compare(store, args, as_json, out),
        Question::Regressions(args) => regressions(store, args, as_json, out),
        Question::Top(args) => top(store, args, as_json, out),
        Question::Slowest(args) => slowest(store, args, as_json, out),
        Question::Outliers(args) => outliers(store, args, as_json, out),
        Question::CostPerSuccess(args) => cost::cost_per_success(store, args, as_json, out),
        Question::Tokens(args) => cost::tokens(store, args, as_json, out),
    }
}

/// `query`.
fn query(
    store: &MetricsStorage,
    QueryArgs { filter, limit }: QueryArgs,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let kind = filter.kind();
    let f = filter.filter()?;
    match kind {
        MetricKind::Task => {
            let rows = store.get_task_metrics(&f, limit)?;
            if as_json {
                return write_json(out, &&rows);
            }
            table(out, &TASK_HEADER, &task_rows(&rows))
        }
        MetricKind::Agent | MetricKind::Swarm => {
            let rows = match kind {
                MetricKind::Agent => to_json(store.get_agent_metrics(&f, limit)?)?,
                _ => to_json(store.get_swarm_metrics(&f, limit)?)?,
            };
            let rows = match rows {
                Value::Array(rows) => rows,
                other => vec![other],
            };
            if as_json {
                return write_json(out, &Value::Array(rows));
            }
            let id_field = if kind == MetricKind::Agent {
                "agent_id"
            } else {
                "swarm_id"
            };
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r["timestamp"].as_str().unwrap_or_default().to_owned(),
                        r["metric_id"].to_string(),
                        r[id_field].as_str().unwrap_or_default().to_owned(),
                        r["metric_type"].as_str().unwrap_or_default().to_owned(),
                        r["value"].to_string(),
                        if r["metadata"].is_null() {
                            "-".to_owned()
                        } else {
                            r["metadata"].to_string()
                        },
                    ]
                })
                .collect();
            table(
                out,
                &[
                    "timestamp",
                    "metric_id",
                    id_field,
                    "metric_type",
                    "value",
                    "metadata",
                ],
                &cells,
            )
        }
    }
}

/// `aggregate`.
fn aggregate(
    store: &MetricsStorage,
    AggregateArgs { filter, agg, by }: AggregateArgs,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let kind = filter.kind();
    let f = filter.filter()?;
    let (name, results): (String, Vec<(Option<String>, Figure)>) = match parse_aggregation(&agg)? {
        Aggregation::Plain(aggregation) => {
            let results = match by {
                None => {
                    vec![(None, store.aggregate_metrics(kind, aggregation, &f)?.into())]
                }
                Some(by) => store
                    .aggregate_by(kind, aggregation, by.into(), &f)?
                    .into_iter()
                    .map(|g| (g.key, g.value.into()))
                    .collect(),
            };
            (aggregation.to_string(), results)
        }
        Aggregation::Percentile { name, q } => {
            let results = match by {
                None => vec![(None, store.percentile(kind, q, &f)?.into())],
                Some(by) => store
                    .percentile_by(kind, q, by.into(), &f)?
                    .into_iter()
                    .map(|g| (g.key, g.value.into()))
                    .collect(),
            };
            (name, results)
        }
    };
    if as_json {
        if by.is_none() {
            return write_json(out, &aggregate_json(&name, &results[0].1));
        }
        return json_array(out, &results, |(k, a)| with_id(aggregate_json(&name, a), k));
    }
    table_of(out, &["id", "count", &name], &results, |(k, a)| {
        vec![
            k.clone().unwrap_or_else(|| "(all)".to_owned()),
            a.count.to_string(),
            cell(a.value),
        ]
    })
}

/// `success-rate`.
fn success_rate(
    store: &MetricsStorage,
    SuccessRateArgs {
        filter,
        by,
        confidence,
        interval,
    }: SuccessRateArgs,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let f = filter.filter()?;
    // Each rate comes with the 95% Wilson interval; another is
    // computed when asked for.
    let with_interval = |mut rate: SuccessRate| -> Result<SuccessRate, Failure> {
        rate.interval = rate.interval(confidence, interval.into())?;
        Ok(rate)
    };
    match by {
        None => {
            let rate = with_interval(store.success_rate(&f)?)?;
            if as_json {
                return write_json(out, &rate_json(&rate));
            }
            rate_table(out, &[rate], |_| None, |rate| rate)
        }
        Some(by) => {
            let mut groups = store.success_rate_by(by.into(), &f)?;
            for group in &mut groups {
                group.value = with_interval(group.value)?;
            }
            if as_json {
                return json_array(out, &groups, |g| with_id(rate_json(&g.value), &g.key));
            }
            rate_table(out, &groups, |g| g.key.as_deref(), |g| &g.value)
        }
    }
}

/// `series`.
fn series(
    store: &MetricsStorage,
    SeriesArgs {
        filter,
        measure,
        width,
        fill,
    }: SeriesArgs,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let kind = filter.kind();
    let f = filter.filter()?;
    let width = parse_span("--width", &width)?;
    let measure = match measure.as_str() {
        "success-rate" | "success_rate" => Measure::SuccessRate,
        other => match parse_aggregation(other)? {
            Aggregation::Plain(a) => Measure::Aggregate(a),
            Aggregation::Percentile { q, .. } => Measure::Percentile(q),
        },
    };
    let empty = if fill {
        EmptyBuckets::Zero
    } else {
        EmptyBuckets::Skip
    };
    let buckets = store.series(kind, measure, width, &f, empty)?;
    if as_json {
        return write_json(out, &&buckets);
    }
    series_table(out, &buckets)
}

/// `summary`.
fn summary(
    store: &MetricsStorage,
    SummaryArgs { filter }: SummaryArgs,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let summary = store.summary(&filter.filter()?)?;
    if as_json {
        return write_json(out, &summary);
    }
    let d = &summary.duration_ms;
    writeln!(out, "tasks            {}", summary.tasks)?;
    writeln!(
        out,
        "success rate     {} (success {}, failure {}, timeout {}, cancelled {})",
        rate_with_interval(&summary.success_rate),
        summary.success_rate.success,
        summary.success_rate.failure,
        summary.success_rate.timeout,
        summary.success_rate.cancelled
    )?;
    writeln!(
        out,
        "duration ms      avg {}  p50 {}  p95 {}  p99 {}  max {}",
        cell(d.avg),
        cell(d.p50),
        cell(d.p95),
        cell(d.p99),
        cell(d.max)
    )?;
    writeln!(
        out,
        "tokens           {} in all, {} per task",
        summary.tokens_total,
        cell(summary.tokens_per_task)
    )?;
    writeln!(out, "files changed    {}", summary.files_changed_total)?;
    let cost = summary
        .cost_usd
        .map_or_else(|| "-".to_owned(), |usd| format!("${usd:.6}"));
    writeln!(
        out,
        "cost             {cost} ({} tasks without a cost)",
        summary.unpriced
    )?;
    Ok(())
}

/// `compare`.
fn compare(
    store: &MetricsStorage,
    CompareArgs {
        filter,
        with_agent,
        with_swarm,
        with_since,
        with_from,
        with_to,
    }: CompareArgs,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let a = filter.filter()?;
    let range_given = with_since.is_some() || with_from.is_some() || with_to.is_some();
    let other_range = RangeArgs {
        from: with_from,
        to: with_to,
        since: with_since,
    };
    let b = swarm_metrics::Filter {
        agent_id: with_agent.or_else(|| a.agent_id.clone()),
        swarm_id: with_swarm.or_else(|| a.swarm_id.clone()),
        time_range: if range_given {
            other_range.range()?
        } else {
            a.time_range
        },
        ..a.clone()
    };
    let comparison = store.compare(&a, &b)?;
    if as_json {
        return write_json(out, &comparison);
    }
    compare_table(out, &comparison)
}

/// `regressions`.
fn regressions(
    store: &MetricsStorage,
    RegressionsArgs {
        current,
        baseline,
        alpha,
    }: RegressionsArgs,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let now = swarm_metrics::now();
    let before = |span: &str, flag: &str, from: DateTime<Utc>| {
        from.checked_sub_signed(parse_span(flag, span)?)
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "{flag} {span:?} reaches before the earliest representable date"
                ))
            })
    };
    let current_start = before(&current, "--current", now)?;
    let baseline_start = before(&baseline, "--baseline", current_start)?;
    // Ranges include both ends: the baseline ends just before the
    // current window starts.
    let baseline_end = current_start - chrono::Duration::microseconds(1);
    let found = store.regressions(
        TimeRange::new(current_start, now)?,
        TimeRange::new(baseline_start, baseline_end)?,
        alpha,
    )?;
    if as_json {
        return write_json(out, &&found);
    }
    let value = |measure: RegressedMeasure, v: f64| match measure {
        RegressedMeasure::SuccessRate => rate_cell(Some(v)),
        RegressedMeasure::Cost => format!("${v}"),
        _ => format!("{v} ms"),
    };
    table_of(
        out,
        &["group", "id", "what", "baseline", "current", "p", "q"],
        &found,
        |r| {
            vec![
                format!("{:?}", r.group).to_lowercase(),
                r.id.clone(),
                match r.measure {
                    RegressedMeasure::SuccessRate => "success rate fell".to_owned(),
                    RegressedMeasure::Cost => "costs rose".to_owned(),
                    _ => "durations rose".to_owned(),
                },
                value(r.measure, r.baseline),
                value(r.measure, r.current),
                format!("{:.2e}", r.p_value),
                format!("{:.2e}", r.q_value),
            ]
        },
    )
}

/// `top`.
fn top(
    store: &MetricsStorage,
    TopArgs {
        filter,
        by,
        bottom,
        n,
        min_tasks,
    }: TopArgs,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let order = if bottom {
        Order::WorstFirst
    } else {
        Order::BestFirst
    };
    let ranked = store.rank_agents(by.into(), order, n, min_tasks, &filter.filter()?)?;
    if as_json {
        return write_json(out, &&ranked);
    }
    let rows: Vec<Vec<String>> = ranked
        .iter()
        .enumerate()
        .map(|(i, r)| {
            vec![
                (i + 1).to_string(),
                r.agent_id.clone(),
                cell(Some(r.score)),
                r.tasks.to_string(),
                interval_cell(r.interval),
            ]
        })
        .collect();
    table(
        out,
        &["rank", "agent_id", "score", "tasks", "success 95% ci"],
        &rows,
    )
}

/// `slowest`.
fn slowest(
    store: &MetricsStorage,
    SlowestArgs { filter, n }: SlowestArgs,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let tasks = store.slowest_tasks(n, &filter.filter()?)?;
    if as_json {
        return write_json(out, &&tasks);
    }
    table(out, &TASK_HEADER, &task_rows(&tasks))
}

/// `outliers`.
fn outliers(
    store: &MetricsStorage,
    OutliersArgs { filter }: OutliersArgs,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let outliers = store.duration_outliers(&filter.filter()?)?;
    if as_json {
        return write_json(out, &&outliers);
    }
    let rows: Vec<Vec<String>> = outliers
        .iter()
        .map(|o| {
            vec![
                o.task.agent_id.clone(),
                o.task.task_id.clone(),
                o.task.duration_ms.to_string(),
                format!(
                    "{} .. {}",
                    cell(Some(o.low_fence)),
                    cell(Some(o.high_fence))
                ),
            ]
        })
        .collect();
    table(
        out,
        &["agent_id", "task_id", "duration_ms", "fences"],
        &rows,
    )
}
