//! How answers print: aligned tables, cells, and JSON written as it goes.

use std::io::Write;

use serde::Serialize;
use serde_json::{json, Value};
use swarm_metrics::{
    Aggregate, Bucket, BucketValue, Comparison, Interval, MetricType, Percentile, ProportionTest,
    StoreStats, SuccessRate, TaskMetric,
};

use crate::{json_error, Failure};

pub fn to_json(value: impl Serialize) -> Result<Value, Failure> {
    serde_json::to_value(value).map_err(json_error)
}

/// A number for a table cell: `-` for none.
pub fn cell(value: Option<f64>) -> String {
    match value {
        None => "-".to_owned(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
    }
}

pub fn rate_cell(rate: Option<f64>) -> String {
    rate.map_or("-".to_owned(), |r| format!("{:.2}%", 100.0 * r))
}

/// Prints rows as aligned columns.
pub fn table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> Result<(), Failure> {
    table_of(out, header, rows, Vec::clone)
}

/// Writes `items` as a table, one row each, with the cells `cells` gives
/// for it: called twice per item (for the column widths, then to write),
/// so that no more than one row of text is ever built at a time, however
/// many items there are.
pub fn table_of<T>(
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
pub fn json_array<T>(
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
pub struct Figure {
    pub metric_type: Option<MetricType>,
    pub count: u64,
    pub value: Option<f64>,
    /// For costs: the tasks without one.
    pub unpriced: Option<u64>,
}

impl From<Aggregate> for Figure {
    fn from(a: Aggregate) -> Self {
        Figure {
            metric_type: a.metric_type,
            count: a.count,
            value: a.value,
            unpriced: a.unpriced,
        }
    }
}

impl From<Percentile> for Figure {
    fn from(p: Percentile) -> Self {
        Figure {
            metric_type: p.metric_type,
            count: p.count,
            value: p.value,
            unpriced: p.unpriced,
        }
    }
}

pub fn aggregate_json(name: &str, a: &Figure) -> Value {
    let mut figure = json!({
        "aggregation": name,
        "metric_type": a.metric_type,
        "value": a.value,
        "count": a.count,
    });
    if let Some(unpriced) = a.unpriced {
        figure["unpriced"] = json!(unpriced);
    }
    figure
}

pub fn rate_json(rate: &SuccessRate) -> Value {
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
pub fn rate_with_interval(r: &SuccessRate) -> String {
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
pub fn interval_cell(interval: Option<Interval>) -> String {
    interval.map_or("-".to_owned(), |ci| {
        format!("{:.1}%–{:.1}%", 100.0 * ci.low, 100.0 * ci.high)
    })
}

/// Adds `"id": key` to a JSON object.
pub fn with_id(mut value: Value, key: &Option<String>) -> Value {
    if let Value::Object(map) = &mut value {
        map.insert("id".to_owned(), json!(key));
    }
    value
}

pub fn task_rows(tasks: &[TaskMetric]) -> Vec<Vec<String>> {
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

pub const TASK_HEADER: [&str; 8] = [
    "timestamp",
    "task_id",
    "agent_id",
    "swarm_id",
    "result",
    "duration_ms",
    "tokens",
    "files",
];

pub fn compare_table(out: &mut impl Write, c: &Comparison) -> Result<(), Failure> {
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
    if let Some(cost) = &c.cost {
        let per = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("${v:.6}"));
        writeln!(
            out,
            "cost          a ${:.6} ({} per success, {} unpriced)  b ${:.6} ({} per success, {} unpriced)",
            cost.total_a,
            per(cost.per_success_a),
            cost.unpriced_a,
            cost.total_b,
            per(cost.per_success_b),
            cost.unpriced_b,
        )?;
        writeln!(
            out,
            "              median a ${:.6}, b ${:.6}, p = {} (Mann-Whitney U = {})",
            cost.median_a,
            cost.median_b,
            p(cost.p_value),
            cost.u
        )?;
    }
    Ok(())
}

/// Success rates as a table, one row per item: `key` names its group
/// (`None`: all tasks), `rate` is its rate.
pub fn rate_table<T>(
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

pub fn series_table(out: &mut impl Write, buckets: &[Bucket]) -> Result<(), Failure> {
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
