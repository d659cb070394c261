//! The questions (`query`, `aggregate`, `success-rate`, `series`,
//! `summary`, `top`, `slowest`, `outliers`) and how their answers print.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use swarm_metrics::{
    Aggregate, Bucket, BucketValue, Comparison, EmptyBuckets, Interval, Measure, MetricKind,
    MetricType, MetricsStorage, Order, Percentile, ProportionTest, RegressedMeasure, StoreStats,
    SuccessRate, TaskMetric, TimeRange,
};

use crate::args::{parse_aggregation, parse_span, Aggregation, Command, RangeArgs};
use crate::{json_error, write_json, Failure};

fn to_json(value: impl Serialize) -> Result<Value, Failure> {
    serde_json::to_value(value).map_err(json_error)
}

/// A number for a table cell: `-` for none.
fn cell(value: Option<f64>) -> String {
    match value {
        None => "-".to_owned(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn rate_cell(rate: Option<f64>) -> String {
    rate.map_or("-".to_owned(), |r| format!("{:.2}%", 100.0 * r))
}

/// Prints rows as aligned columns.
fn table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> Result<(), Failure> {
    table_of(out, header, rows, Vec::clone)
}

/// Writes `items` as a table, one row each, with the cells `cells` gives
/// for it: called twice per item (for the column widths, then to write),
/// so that no more than one row of text is ever built at a time, however
/// many items there are.
fn table_of<T>(
    out: &mut impl Write,
    header: &[&str],
    items: &[T],
    cells: impl Fn(&T) -> Vec<String>,
) -> Result<(), Failure> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for item in items {
        for (w, c) in widths.iter_mut().zip(cells(item)) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(
        out,
        "{}",
        line(header.iter().map(|h| h.to_string()).collect())
    )?;
    for item in items {
        writeln!(out, "{}", line(cells(item)))?;
    }
    if items.is_empty() {
        writeln!(out, "(no metrics match)")?;
    }
    Ok(())
}

/// Writes a JSON array of `items`, each turned into JSON by `each` and
/// written at once: the whole array is never built in memory.
fn json_array<T>(
    out: &mut impl Write,
    items: impl IntoIterator<Item = T>,
    each: impl Fn(T) -> Value,
) -> Result<(), Failure> {
    out.write_all(b"[")?;
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, &each(item)).map_err(|e| {
            if e.is_io() {
                Failure::from(std::io::Error::from(e))
            } else {
                crate::json_error(e)
            }
        })?;
    }
    out.write_all(b"]\n")?;
    Ok(())
}

pub fn stats(out: &mut impl Write, stats: &StoreStats) -> Result<(), Failure> {
    let time =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or("-".to_owned(), |t| t.to_rfc3339());
    let rows: Vec<Vec<String>> = [
        ("task_metrics", &stats.task_metrics),
        ("agent_metrics", &stats.agent_metrics),
        ("swarm_metrics", &stats.swarm_metrics),
    ]
    .iter()
    .map(|(name, t)| {
        vec![
            name.to_string(),
            t.rows.to_string(),
            t.hourly_rollups.to_string(),
            t.daily_rollups.to_string(),
            time(t.oldest_data()),
            time(t.newest),
        ]
    })
    .collect();
    table(
        out,
        &["table", "raw rows", "hourly", "daily", "oldest", "newest"],
        &rows,
    )?;
    writeln!(out, "file size: {} bytes", stats.file_size)?;
    writeln!(out, "WAL size: {} bytes", stats.wal_size)?;
    writeln!(out, "schema version: {}", stats.schema_version)?;
    Ok(())
}

/// One number of `aggregate`: an aggregation or a percentile.
struct Figure {
    metric_type: Option<MetricType>,
    count: u64,
    value: Option<f64>,
}

impl From<Aggregate> for Figure {
    fn from(a: Aggregate) -> Self {
        Figure {
            metric_type: a.metric_type,
            count: a.count,
            value: a.value,
        }
    }
}

impl From<Percentile> for Figure {
    fn from(p: Percentile) -> Self {
        Figure {
            metric_type: p.metric_type,
            count: p.count,
            value: p.value,
        }
    }
}

fn aggregate_json(name: &str, a: &Figure) -> Value {
    json!({
        "aggregation": name,
        "metric_type": a.metric_type,
        "value": a.value,
        "count": a.count,
    })
}

fn rate_json(rate: &SuccessRate) -> Value {
    json!({
        "rate": rate.rate,
        "success": rate.success,
        "failure": rate.failure,
        "timeout": rate.timeout,
        "cancelled": rate.cancelled,
        "total": rate.total,
        "interval": rate.interval,
    })
}

/// A rate with its counts and interval: `90.0% (9/10, 95% CI 59.6%–98.2%)`.
fn rate_with_interval(r: &SuccessRate) -> String {
    match (r.rate, r.interval) {
        (Some(rate), Some(ci)) => format!(
            "{:.1}% ({}/{}, {}% CI {})",
            100.0 * rate,
            r.success,
            r.total,
            100.0 * ci.confidence,
            interval_cell(Some(ci))
        ),
        _ => format!("- ({}/{})", r.success, r.total),
    }
}

/// An interval as text: `59.6%–98.2%`, or `-` for none.
fn interval_cell(interval: Option<Interval>) -> String {
    interval.map_or("-".to_owned(), |ci| {
        format!("{:.1}%–{:.1}%", 100.0 * ci.low, 100.0 * ci.high)
    })
}

/// Adds `"id": key` to a JSON object.
fn with_id(mut value: Value, key: &Option<String>) -> Value {
    if let Value::Object(map) = &mut value {
        map.insert("id".to_owned(), json!(key));
    }
    value
}

fn task_rows(tasks: &[TaskMetric]) -> Vec<Vec<String>> {
    tasks
        .iter()
        .map(|t| {
            vec![
                t.timestamp.to_rfc3339(),
                t.task_id.clone(),
                t.agent_id.clone(),
                t.swarm_id.clone().unwrap_or_else(|| "-".to_owned()),
                t.result.to_string(),
                t.duration_ms.to_string(),
                t.tokens_used.to_string(),
                t.files_changed.to_string(),
            ]
        })
        .collect()
}

const TASK_HEADER: [&str; 8] = [
    "timestamp",
    "task_id",
    "agent_id",
    "swarm_id",
    "result",
    "duration_ms",
    "tokens",
    "files",
];

/// Answers one of the questions.
pub fn question(
    store: &MetricsStorage,
    command: Command,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    match command {
        Command::Query { filter, limit } => {
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
        Command::Aggregate { filter, agg, by } => {
            let kind = filter.kind();
            let f = filter.filter()?;
            let (name, results): (String, Vec<(Option<String>, Figure)>) =
                match parse_aggregation(&agg)? {
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
        Command::SuccessRate {
            filter,
            by,
            confidence,
            interval,
        } => {
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
        Command::Series {
            filter,
            measure,
            width,
            fill,
        } => {
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
        Command::Summary { filter } => {
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
            Ok(())
        }
        Command::Compare {
            filter,
            with_agent,
            with_swarm,
            with_since,
            with_from,
            with_to,
        } => {
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
        Command::Regressions {
            current,
            baseline,
            alpha,
        } => {
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
        Command::Top {
            filter,
            by,
            bottom,
            n,
            min_tasks,
        } => {
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
        Command::Slowest { filter, n } => {
            let tasks = store.slowest_tasks(n, &filter.filter()?)?;
            if as_json {
                return write_json(out, &&tasks);
            }
            table(out, &TASK_HEADER, &task_rows(&tasks))
        }
        Command::Outliers { filter } => {
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
        Command::Cleanup { .. }
        | Command::Vacuum { .. }
        | Command::Check
        | Command::Stats
        | Command::Import { .. }
        | Command::Export { .. }
        | Command::Copy { .. }
        | Command::Report { .. } => Err(Failure::Usage("not a question".to_owned())),
    }
}

fn compare_table(out: &mut impl Write, c: &Comparison) -> Result<(), Failure> {
    let p = |p: f64| format!("{p:.4}");
    writeln!(
        out,
        "success rate  a {} ({}/{}, 95% CI {})  b {} ({}/{}, 95% CI {})",
        rate_cell(c.a.rate),
        c.a.success,
        c.a.total,
        interval_cell(c.a.interval),
        rate_cell(c.b.rate),
        c.b.success,
        c.b.total,
        interval_cell(c.b.interval),
    )?;
    match &c.rate {
        Some(r) => writeln!(
            out,
            "              difference {:+.2} points, p = {} ({})",
            100.0 * r.difference,
            p(r.p_value),
            match r.test {
                ProportionTest::FisherExact => "Fisher's exact test",
                _ => "two-proportion z-test",
            }
        )?,
        None => writeln!(out, "              no tasks on one side")?,
    }
    match &c.duration {
        Some(d) => writeln!(
            out,
            "duration      median a {} ms, b {} ms, difference {:+} ms, p = {} (Mann-Whitney U = {})",
            d.median_a,
            d.median_b,
            d.median_difference,
            p(d.p_value),
            d.u
        )?,
        None => writeln!(
            out,
            "duration      no test (no tasks on one side, or durations kept only as sketches)"
        )?,
    }
    Ok(())
}

/// Success rates as a table, one row per item: `key` names its group
/// (`None`: all tasks), `rate` is its rate.
fn rate_table<T>(
    out: &mut impl Write,
    rows: &[T],
    key: impl Fn(&T) -> Option<&str>,
    rate: impl Fn(&T) -> &SuccessRate,
) -> Result<(), Failure> {
    let header = [
        "id",
        "rate",
        "success",
        "failure",
        "timeout",
        "cancelled",
        "total",
    ];
    table_of(out, &header, rows, |item| {
        let r = rate(item);
        vec![
            key(item).unwrap_or("(all)").to_owned(),
            rate_with_interval(r),
            r.success.to_string(),
            r.failure.to_string(),
            r.timeout.to_string(),
            r.cancelled.to_string(),
            r.total.to_string(),
        ]
    })
}

fn series_table(out: &mut impl Write, buckets: &[Bucket]) -> Result<(), Failure> {
    let rows: Vec<Vec<String>> = buckets
        .iter()
        .map(|b| {
            let (count, value) = match b.value {
                BucketValue::Aggregate(a) => (a.count, cell(a.value)),
                BucketValue::Percentile(p) => (p.count, cell(p.value)),
                BucketValue::SuccessRate(r) => (r.total, rate_with_interval(&r)),
            };
            vec![b.start.to_rfc3339(), count.to_string(), value]
        })
        .collect();
    table(out, &["bucket", "count", "value"], &rows)
}
