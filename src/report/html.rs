//! The report's page: sections, tables and the inline style and script.
//!
//! The markup is well-formed XML as well as HTML (every element closed,
//! every attribute quoted, text escaped, no `<` or `&` in the script), so
//! that tools can read the numbers back. Every number a table shows is
//! also in its cell's `data-value`, unformatted, for sorting and checking.

use std::fmt::Write;

use super::assets::{SCRIPT, STYLE};
use super::charts;
use super::text::{cell, escape, head, millis, optional_time, time};
use super::{AgentRow, Report};
use crate::model::filter::GroupBy;
use crate::ops::inspect::TableStats;
use crate::query::aggregate::SuccessRate;
use crate::query::analytics::BucketValue;
use crate::query::compare::RegressedMeasure;

/// A share as a percentage with one decimal.
fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// A rate as "90.0% (59.6–98.2%)", or "–" without tasks.
fn rate_text(rate: &SuccessRate) -> String {
    match (rate.rate, rate.interval) {
        (Some(r), Some(ci)) => format!(
            "{} ({:.1}–{:.1}%)",
            percent(r),
            ci.low * 100.0,
            ci.high * 100.0
        ),
        (Some(r), None) => percent(r),
        _ => "–".to_owned(),
    }
}

/// A count with thin spaces between thousands: "1 234 567".
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// A cell of an optional number.
fn optional_cell(value: Option<f64>, text: impl Fn(f64) -> String) -> String {
    match value {
        Some(v) => cell(v, &text(v)),
        None => cell("", "–"),
    }
}

/// The whole page.
pub(super) fn page(report: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\
         <title>{title}</title><style>{STYLE}</style></head><body><main>\
         <h1>{title}</h1>",
        title = escape(&report.title),
    );
    header(&mut out, report);
    summary(&mut out, report);
    rates(&mut out, report);
    durations(&mut out, report);
    costs(&mut out, report);
    leaderboard(&mut out, report);
    regressions(&mut out, report);
    outliers(&mut out, report);
    super::alerts_html::alerts(&mut out, report);
    store(&mut out, report);
    let _ = writeln!(out, "</main><script>{SCRIPT}</script></body></html>");
    out
}

fn header(out: &mut String, report: &Report) {
    let span = match report.span {
        Some(span) => format!("{} to {}", time(span.start()), time(span.end())),
        None => "no data".to_owned(),
    };
    let _ = write!(
        out,
        "<p class=\"meta\" id=\"span\">{} · buckets of {} · generated {}</p>",
        escape(&span),
        escape(&width_text(report.width_seconds)),
        escape(&time(report.generated_at)),
    );
}

/// "1 hour", "15 minutes", "7 days".
fn width_text(seconds: i64) -> String {
    let (n, unit) = match seconds {
        s if s % 86_400 == 0 => (s / 86_400, "day"),
        s if s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

fn summary(out: &mut String, report: &Report) {
    let s = &report.summary;
    let d = &s.duration_ms;
    let card =
        |out: &mut String, id: &str, label: &str, value: String, data: String, detail: String| {
            let _ = write!(
                out,
                "<div class=\"card\" id=\"{id}\" data-value=\"{}\"><div class=\"label\">{}</div>\
             <div class=\"value\">{}</div><div class=\"detail\">{}</div></div>",
                escape(&data),
                escape(label),
                escape(&value),
                escape(&detail),
            );
        };
    out.push_str("<section id=\"summary\"><h2>Summary</h2><div class=\"cards\">");
    card(
        out,
        "tasks",
        "Tasks",
        count(s.tasks),
        s.tasks.to_string(),
        String::new(),
    );
    let rate = &s.success_rate;
    card(
        out,
        "success-rate",
        "Success rate",
        rate.rate.map_or("–".to_owned(), percent),
        rate.rate.map_or(String::new(), |r| r.to_string()),
        match rate.interval {
            Some(ci) => format!(
                "95% CI {:.1}–{:.1}% · {} failed, {} timed out, {} cancelled",
                ci.low * 100.0,
                ci.high * 100.0,
                rate.failure,
                rate.timeout,
                rate.cancelled
            ),
            None => "no tasks".to_owned(),
        },
    );
    let approx = if d.approximate { " (within 1%)" } else { "" };
    for (id, label, value) in [
        ("p50", "Duration p50", d.p50),
        ("p95", "Duration p95", d.p95),
    ] {
        card(
            out,
            id,
            label,
            value.map_or("–".to_owned(), millis),
            value.map_or(String::new(), |v| v.to_string()),
            format!(
                "{}{approx}",
                d.avg
                    .map_or(String::new(), |a| format!("mean {}", millis(a)))
            ),
        );
    }
    card(
        out,
        "tokens",
        "Tokens",
        count(s.tokens_total),
        s.tokens_total.to_string(),
        s.tokens_per_task
            .map_or(String::new(), |t| format!("{t:.0} per task")),
    );
    card(
        out,
        "files",
        "Files changed",
        count(s.files_changed_total),
        s.files_changed_total.to_string(),
        String::new(),
    );
    card(
        out,
        "cost",
        "Cost",
        s.cost_usd.map_or("–".to_owned(), usd),
        s.cost_usd.map_or(String::new(), |c| c.to_string()),
        if s.unpriced > 0 {
            format!("{} tasks without a cost", count(s.unpriced))
        } else {
            String::new()
        },
    );
    out.push_str("</div></section>");
}

/// A line's name in legends and tables.
fn line_name(swarm: &Option<String>) -> String {
    swarm.as_ref().map_or("all tasks".to_owned(), |s| s.clone())
}

fn rates(out: &mut String, report: &Report) {
    out.push_str("<section id=\"rates\"><h2>Success rate over time</h2>");
    let Some(svg) = charts::success_rates(report).filter(|_| report.summary.tasks > 0) else {
        out.push_str("<p class=\"note\">No tasks in this span.</p></section>");
        return;
    };
    out.push_str("<ul class=\"legend\">");
    for (i, line) in report.rates.iter().enumerate() {
        let _ = write!(
            out,
            "<li><span class=\"swatch\" style=\"background:{}\"></span>{}: {}</li>",
            charts::colour(i),
            escape(&line_name(&line.swarm)),
            escape(&rate_text(&line.overall)),
        );
    }
    out.push_str("</ul>");
    out.push_str(&svg);
    if report.swarms_not_charted > 0 {
        let _ = write!(
            out,
            "<p class=\"note\">{} more swarms are not charted; their tasks are in the line of all tasks.</p>",
            count(report.swarms_not_charted)
        );
    }
    out.push_str("<details><summary>The numbers</summary><table id=\"rate-data\">");
    out.push_str(&head(&[
        "line",
        "bucket start",
        "tasks",
        "successes",
        "rate (95% CI)",
    ]));
    out.push_str("<tbody>");
    for line in &report.rates {
        for bucket in &line.buckets {
            let BucketValue::SuccessRate(rate) = bucket.value else {
                continue;
            };
            let _ = write!(
                out,
                "<tr>{}{}{}{}{}</tr>",
                cell(line_name(&line.swarm), &line_name(&line.swarm)),
                cell(bucket.start.to_rfc3339(), &time(bucket.start)),
                cell(rate.total, &count(rate.total)),
                cell(rate.success, &count(rate.success)),
                optional_cell(rate.rate, |_| rate_text(&rate)),
            );
        }
    }
    out.push_str("</tbody></table></details></section>");
}

fn durations(out: &mut String, report: &Report) {
    out.push_str("<section id=\"durations\"><h2>Task duration over time</h2>");
    let Some(svg) = charts::durations(report).filter(|_| report.summary.tasks > 0) else {
        out.push_str("<p class=\"note\">No tasks in this span.</p></section>");
        return;
    };
    let _ = write!(
        out,
        "<ul class=\"legend\"><li><span class=\"swatch\" style=\"background:{}\"></span>p50</li>\
         <li><span class=\"swatch\" style=\"background:{}\"></span>p95</li></ul>",
        charts::colour(charts::P50_COLOUR),
        charts::colour(charts::P95_COLOUR),
    );
    out.push_str(&svg);
    out.push_str("<details><summary>The numbers</summary><table id=\"duration-data\">");
    out.push_str(&head(&["bucket start", "tasks", "p50", "p95"]));
    out.push_str("<tbody>");
    for d in &report.durations {
        let _ = write!(
            out,
            "<tr>{}{}{}{}</tr>",
            cell(d.start.to_rfc3339(), &time(d.start)),
            cell(d.p50.count, &count(d.p50.count)),
            optional_cell(d.p50.value, millis),
            optional_cell(d.p95.value, millis),
        );
    }
    out.push_str("</tbody></table></details></section>");
}

fn agent_row(out: &mut String, a: &AgentRow) {
    let per_task = (a.rate.total > 0).then(|| a.tokens as f64 / a.rate.total as f64);
    let _ = write!(
        out,
        "<tr>{}{}{}{}{}{}{}</tr>",
        cell(&a.agent_id, &a.agent_id),
        optional_cell(a.rate.rate, |_| rate_text(&a.rate)),
        cell(a.rate.total, &count(a.rate.total)),
        optional_cell(a.p95_ms, millis),
        cell(a.tokens, &count(a.tokens)),
        optional_cell(per_task, |t| format!("{t:.0}")),
        optional_cell(a.cost_usd, usd),
    );
}

/// USD to the cent, or to the micro-dollar below a cent.
fn usd(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.01 {
        format!("${v:.6}")
    } else {
        format!("${v:.2}")
    }
}

fn costs(out: &mut String, report: &Report) {
    if report.summary.cost_usd.is_none() {
        // No task has a cost: no chart of zeros.
        return;
    }
    out.push_str("<section id=\"costs\"><h2>Cost over time</h2>");
    if let Some(svg) = charts::costs(report) {
        out.push_str(&svg);
    }
    out.push_str("<details><summary>The numbers</summary><table id=\"cost-data\">");
    out.push_str(&head(&[
        "bucket start",
        "tasks with a cost",
        "without",
        "cost",
    ]));
    out.push_str("<tbody>");
    for c in &report.costs {
        let unpriced = c.cost.unpriced.unwrap_or(0);
        let _ = write!(
            out,
            "<tr>{}{}{}{}</tr>",
            cell(c.start.to_rfc3339(), &time(c.start)),
            cell(c.cost.count, &count(c.cost.count)),
            cell(unpriced, &count(unpriced)),
            optional_cell(c.cost.value, usd),
        );
    }
    out.push_str("</tbody></table></details></section>");
}

fn leaderboard(out: &mut String, report: &Report) {
    out.push_str("<section id=\"leaderboard\"><h2>Agents</h2>");
    if report.agents.is_empty() {
        out.push_str("<p class=\"note\">No agent has tasks in this selection.</p></section>");
        return;
    }
    out.push_str(
        "<p class=\"note\">The busiest agents, best first by the lower bound of their \
         success rate's 95% interval. Click a column to sort.</p>\
         <table class=\"sortable\" id=\"agents\">",
    );
    out.push_str(&head(&[
        "agent",
        "success rate (95% CI)",
        "tasks",
        "p95 duration",
        "tokens",
        "tokens per task",
        "cost",
    ]));
    out.push_str("<tbody>");
    for a in &report.agents {
        agent_row(out, a);
    }
    out.push_str("</tbody>");
    if let Some(others) = &report.other_agents {
        let _ = write!(
            out,
            "<tfoot><tr id=\"other-agents\" data-agents=\"{}\" data-tasks=\"{}\" data-success=\"{}\" data-tokens=\"{}\" data-cost-micros=\"{}\">\
             <td>{} more agents</td><td>{}</td><td>{}</td><td>–</td><td>{}</td><td></td><td>{}</td></tr></tfoot>",
            others.agents,
            others.rate.total,
            others.rate.success,
            others.tokens,
            others.cost_micros,
            count(others.agents),
            escape(&rate_text(&others.rate)),
            count(others.rate.total),
            count(others.tokens),
            usd(others.cost_micros as f64 / 1e6),
        );
    }
    out.push_str("</table></section>");
}

fn regressions(out: &mut String, report: &Report) {
    let _ = write!(
        out,
        "<section id=\"regressions\"><h2>Regressions</h2><p class=\"note\">{} against {}, \
         false discovery rate {}.</p>",
        escape(&format!(
            "{} to {}",
            time(report.current.start()),
            time(report.current.end())
        )),
        escape(&format!(
            "{} to {}",
            time(report.baseline.start()),
            time(report.baseline.end())
        )),
        percent(report.alpha),
    );
    if report.regressions.is_empty() {
        out.push_str(
            "<p id=\"no-regressions\">No agent or swarm got significantly worse.</p></section>",
        );
        return;
    }
    out.push_str("<table id=\"regression-data\">");
    out.push_str(&head(&["", "id", "what", "baseline", "current", "p", "q"]));
    out.push_str("<tbody>");
    for r in &report.regressions {
        let group = match r.group {
            GroupBy::Agent => "agent",
            GroupBy::Swarm => "swarm",
            GroupBy::Result => "result",
            GroupBy::Model => "model",
            GroupBy::MetricType => "metric type",
        };
        let (measure, what, shown): (&str, &str, fn(f64) -> String) = match r.measure {
            RegressedMeasure::SuccessRate => ("success_rate", "success rate fell", percent),
            RegressedMeasure::Duration => ("duration", "median duration rose", millis),
            RegressedMeasure::Cost => ("cost", "median cost rose", usd),
        };
        let _ = write!(
            out,
            "<tr>{}{}<td class=\"worse\" data-value=\"{measure}\">{}</td>{}{}{}{}</tr>",
            cell(group, group),
            cell(&r.id, &r.id),
            escape(what),
            cell(r.baseline, &shown(r.baseline)),
            cell(r.current, &shown(r.current)),
            cell(r.p_value, &p_text(r.p_value)),
            cell(r.q_value, &p_text(r.q_value)),
        );
    }
    out.push_str("</tbody></table></section>");
}

fn outliers(out: &mut String, report: &Report) {
    let _ = write!(
        out,
        "<section id=\"outliers\"><h2>Duration outliers</h2><p class=\"note\" data-value=\"{}\">\
         {} tasks outside their agent's Tukey fences (1.5 × IQR){}.</p>",
        report.outliers_total,
        count(report.outliers_total),
        if report.outliers_total > report.outliers.len() as u64 {
            format!("; the {} furthest out", report.outliers.len())
        } else {
            String::new()
        },
    );
    if report.outliers.is_empty() {
        out.push_str("</section>");
        return;
    }
    out.push_str("<table id=\"outlier-data\">");
    out.push_str(&head(&[
        "task",
        "agent",
        "duration",
        "agent's fences",
        "time",
    ]));
    out.push_str("<tbody>");
    for o in &report.outliers {
        let t = &o.task;
        let _ = write!(
            out,
            "<tr>{}{}{}<td>{} – {}</td>{}</tr>",
            cell(&t.task_id, &t.task_id),
            cell(&t.agent_id, &t.agent_id),
            cell(t.duration_ms, &millis(t.duration_ms as f64)),
            escape(&millis(o.low_fence.max(0.0))),
            escape(&millis(o.high_fence)),
            cell(t.timestamp.to_rfc3339(), &time(t.timestamp)),
        );
    }
    out.push_str("</tbody></table></section>");
}

fn store(out: &mut String, report: &Report) {
    let s = &report.store;
    let _ = write!(
        out,
        "<section id=\"store\"><h2>The store</h2><p class=\"note\">\
         file <span id=\"file-size\" data-value=\"{}\">{}</span> · \
         write-ahead log <span id=\"wal-size\" data-value=\"{}\">{}</span> · \
         schema version {}</p><table id=\"tiers\">",
        s.file_size,
        escape(&bytes(s.file_size)),
        s.wal_size,
        escape(&bytes(s.wal_size)),
        s.schema_version,
    );
    out.push_str(&head(&[
        "kind",
        "raw rows",
        "hourly rollups",
        "daily rollups",
        "oldest data",
        "newest raw row",
    ]));
    out.push_str("<tbody>");
    let kinds: [(&str, &TableStats); 3] = [
        ("task", &s.task_metrics),
        ("agent", &s.agent_metrics),
        ("swarm", &s.swarm_metrics),
    ];
    for (kind, t) in kinds {
        let _ = write!(
            out,
            "<tr>{}{}{}{}{}{}</tr>",
            cell(kind, kind),
            cell(t.rows, &count(t.rows)),
            cell(t.hourly_rollups, &count(t.hourly_rollups)),
            cell(t.daily_rollups, &count(t.daily_rollups)),
            cell(
                t.oldest_data().map_or(String::new(), |t| t.to_rfc3339()),
                &optional_time(t.oldest_data())
            ),
            cell(
                t.newest.map_or(String::new(), |t| t.to_rfc3339()),
                &optional_time(t.newest)
            ),
        );
    }
    out.push_str("</tbody></table></section>");
}

/// A p-value: four decimals, or in scientific notation below 0.001, or
/// "< 1e-300" when it is too small for a double to hold.
fn p_text(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.4}")
    } else if p >= 1e-300 {
        format!("{p:.1e}")
    } else {
        "< 1e-300".to_owned()
    }
}

/// A size in bytes, KiB, MiB or GiB.
fn bytes(n: u64) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", n / (1024.0 * 1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(count(999), "999");
        assert_eq!(width_text(3_600), "1 hour");
        assert_eq!(width_text(900), "15 minutes");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(p_text(0.04321), "0.0432");
        assert_eq!(p_text(0.000123), "1.2e-4");
        assert_eq!(p_text(0.0), "< 1e-300");
    }

    #[test]
    fn the_script_and_style_are_well_formed_text() {
        // Inside an XML reading of the page these must not open tags or
        // entities.
        for text in [SCRIPT, STYLE] {
            assert!(!text.contains('<') && !text.contains('&'));
        }
    }
}
