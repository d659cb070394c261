//! The report's Alerts section: the alerts pending, firing or recovering,
//! and the last transitions, each with the figures that decided it.

use std::fmt::Write;

use super::text::{cell, head, optional_time, time};
use super::Report;

pub(super) fn alerts(out: &mut String, report: &Report) {
    out.push_str("<section id=\"alerts\"><h2>Alerts</h2>");
    let group = |g: &Option<String>| g.clone().unwrap_or_else(|| "all".to_owned());
    if report.alerts.is_empty() {
        out.push_str("<p class=\"note\">No alert is pending or firing.</p>");
    } else {
        out.push_str("<table id=\"alert-states\">");
        out.push_str(&head(&["rule", "group", "state", "since", "figures"]));
        out.push_str("<tbody>");
        for a in &report.alerts {
            let since = a.standing.active_since;
            let _ = write!(
                out,
                "<tr>{}{}{}{}{}</tr>",
                cell(&a.rule, &a.rule),
                cell(group(&a.group), &group(&a.group)),
                cell(a.standing.state, a.standing.state.as_str()),
                cell(
                    since.map_or(String::new(), |t| t.to_rfc3339()),
                    &optional_time(since)
                ),
                cell(a.figures.tasks, &a.figures.describe()),
            );
        }
        out.push_str("</tbody></table>");
    }
    if !report.alert_transitions.is_empty() {
        out.push_str("<h3>Last transitions</h3><table id=\"alert-transitions\">");
        out.push_str(&head(&["time", "rule", "group", "from", "to", "figures"]));
        out.push_str("<tbody>");
        for t in &report.alert_transitions {
            let _ = write!(
                out,
                "<tr>{}{}{}{}{}{}</tr>",
                cell(t.at.to_rfc3339(), &time(t.at)),
                cell(&t.rule, &t.rule),
                cell(group(&t.group), &group(&t.group)),
                cell(t.from, t.from.as_str()),
                cell(t.to, t.to.as_str()),
                cell(t.figures.tasks, &t.figures.describe()),
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
}
