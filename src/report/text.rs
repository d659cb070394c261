//! Text as the page and the charts both show it: escaped for markup,
//! durations in readable units, times, and the cells and heads of tables.

use std::fmt::Write;

use chrono::{DateTime, Utc};

/// `text` with the five characters XML treats specially escaped, for
/// element text and quoted attributes alike.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Milliseconds in the unit that reads best: "850 ms", "1.25 s", "2.5 min",
/// "1.2 h".
pub(super) fn millis(ms: f64) -> String {
    if ms < 1_000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.2} s", ms / 1_000.0)
    } else if ms < 3_600_000.0 {
        format!("{:.1} min", ms / 60_000.0)
    } else {
        format!("{:.1} h", ms / 3_600_000.0)
    }
}

pub(super) fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub(super) fn optional_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "–".to_owned(), time)
}

/// A table cell: `text` shown, `value` kept for sorting and checking.
pub(super) fn cell(value: impl std::fmt::Display, text: &str) -> String {
    format!(
        "<td data-value=\"{}\">{}</td>",
        escape(&value.to_string()),
        escape(text)
    )
}

/// A table's header row.
pub(super) fn head(columns: &[&str]) -> String {
    let mut out = String::from("<thead><tr>");
    for c in columns {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(c));
    }
    out.push_str("</tr></thead>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_elements_and_attributes() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(millis(850.0), "850 ms");
        assert_eq!(millis(1_250.0), "1.25 s");
        assert_eq!(millis(150_000.0), "2.5 min");
        assert_eq!(millis(5_400_000.0), "1.5 h");
    }
}
