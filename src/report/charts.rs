//! The report's charts, drawn by plotters as SVG. Text is left to the
//! browser (SVG `<text>`), so no font is loaded here.

use chrono::{DateTime, Utc};
use plotters::prelude::*;

use super::text::{escape, millis};
use plotters::coord::types::RangedCoordf64;

use super::{DurationPoint, RateLine, Report};
use crate::query::analytics::BucketValue;

/// The charts' size in pixels; the page scales them down to fit.
const SIZE: (u32, u32) = (960, 340);

/// Line colours, the first for all tasks; more lines than colours reuse
/// them.
const COLOURS: [RGBColor; 8] = [
    RGBColor(33, 37, 41),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

/// The colour of line `i`, shared by the chart and the page's legend.
pub(super) fn colour(i: usize) -> String {
    let RGBColor(r, g, b) = COLOURS[i % COLOURS.len()];
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// A point in time as the charts' x coordinate: seconds since 1970.
fn x_of(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

/// The x range of a report's charts, and where a bucket's point goes (its
/// middle).
struct Axis {
    from: f64,
    to: f64,
    half_width: f64,
}

impl Axis {
    fn of(report: &Report) -> Option<Axis> {
        let span = report.span?;
        let width = report.width_seconds as f64;
        // Whole buckets: from the first bucket's start to the last's end.
        let from = (x_of(span.start()) / width).floor() * width;
        let to = ((x_of(span.end()) / width).floor() + 1.0) * width;
        Some(Axis {
            from,
            to,
            half_width: width / 2.0,
        })
    }

    fn point(&self, start: DateTime<Utc>) -> f64 {
        x_of(start) + self.half_width
    }

    /// A tick label: dates for spans of days, times within them.
    fn label(&self, x: f64) -> String {
        let Some(t) = DateTime::from_timestamp(x as i64, 0) else {
            return String::new();
        };
        let span = self.to - self.from;
        if span > 4.0 * 86_400.0 {
            t.format("%Y-%m-%d").to_string()
        } else if span > 86_400.0 {
            t.format("%m-%d %H:%M").to_string()
        } else if span > 600.0 {
            t.format("%H:%M").to_string()
        } else {
            t.format("%H:%M:%S").to_string()
        }
    }
}

/// Consecutive runs of `Some` points, so that lines break at buckets
/// without data instead of bridging them.
fn runs<T: Copy>(points: impl IntoIterator<Item = Option<T>>) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = vec![Vec::new()];
    for p in points {
        match p {
            Some(p) => out.last_mut().map_or((), |run| run.push(p)),
            None if out.last().is_some_and(|run| !run.is_empty()) => out.push(Vec::new()),
            None => {}
        }
    }
    out.retain(|run| !run.is_empty());
    out
}

/// One chart's SVG, made fit to sit inside the page: without the XML
/// namespace declaration (HTML needs none, and the page names no address)
/// and labelled for screen readers.
fn finish_svg(svg: String, label: &str) -> String {
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
        .replacen(
            "<svg ",
            &format!("<svg role=\"img\" aria-label=\"{}\" ", escape(label)),
            1,
        )
}

/// Draws with `draw` on a fresh SVG canvas; a chart that cannot be drawn
/// becomes a note instead (it never stops the page).
fn svg(label: &str, draw: impl FnOnce(&Root<'_>) -> Result<(), String>) -> String {
    let mut out = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(&root).and_then(|()| root.present().map_err(|e| e.to_string()))
    };
    match drawn {
        Ok(()) => finish_svg(out, label),
        Err(e) => format!(
            "<p class=\"note\">The chart could not be drawn: {}</p>",
            escape(&e)
        ),
    }
}

/// The SVG canvas a chart is drawn on.
type Root<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// A chart over time: x the axis' span, y `0..top`.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws `error`'s message instead of failing the page.
fn message(error: DrawingAreaErrorKind<std::io::Error>) -> String {
    error.to_string()
}

/// A white chart over `axis` and `0..top` with its grid, time labels
/// below and `label_y`'s labels on the left.
fn chart_on<'a, 'b>(
    root: &'a Root<'b>,
    axis: &Axis,
    top: f64,
    label_y: &dyn Fn(&f64) -> String,
) -> Result<Chart<'a, 'b>, String> {
    root.fill(&WHITE).map_err(message)?;
    let mut chart = ChartBuilder::on(root)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(72)
        .build_cartesian_2d(axis.from..axis.to, 0f64..top)
        .map_err(message)?;
    let label_x = |x: &f64| axis.label(*x);
    chart
        .configure_mesh()
        .x_labels(7)
        .y_labels(6)
        .x_label_formatter(&label_x)
        .y_label_formatter(label_y)
        .light_line_style(RGBColor(238, 238, 238))
        .draw()
        .map_err(message)?;
    Ok(chart)
}

/// One run of consecutive points: a line, or a dot when it is one point.
fn draw_run(
    chart: &mut Chart<'_, '_>,
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    width: u32,
) -> Result<(), String> {
    if let [single] = points[..] {
        chart
            .draw_series(std::iter::once(Circle::new(single, 3, colour.filled())))
            .map_err(message)?;
    } else {
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(width)))
            .map_err(message)?;
    }
    Ok(())
}

/// Success rate over time: a line per [`RateLine`] with its 95% band.
pub(super) fn success_rates(report: &Report) -> Option<String> {
    let axis = Axis::of(report)?;
    let label = "Success rate over time, with 95% confidence bands";
    Some(svg(label, |root| {
        let percent = |y: &f64| format!("{:.0}%", y * 100.0);
        let mut chart = chart_on(root, &axis, 1.0, &percent)?;
        // Bands first, lines over them; the line of all tasks last, on top.
        for (i, line) in report.rates.iter().enumerate().rev() {
            let colour = COLOURS[i % COLOURS.len()];
            for run in runs(rate_points(&axis, line)) {
                let band: Vec<(f64, f64)> = run
                    .iter()
                    .map(|p| (p.0, p.2))
                    .chain(run.iter().rev().map(|p| (p.0, p.3)))
                    .collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(band, colour.mix(0.12))))
                    .map_err(message)?;
            }
        }
        for (i, line) in report.rates.iter().enumerate().rev() {
            let width = if i == 0 { 3 } else { 2 };
            for run in runs(rate_points(&axis, line)) {
                let points = run.iter().map(|p| (p.0, p.1)).collect();
                draw_run(&mut chart, points, COLOURS[i % COLOURS.len()], width)?;
            }
        }
        Ok(())
    }))
}

/// The points of one rate line: (x, rate, low, high) for buckets with
/// tasks, `None` for the others.
fn rate_points<'a>(
    axis: &'a Axis,
    line: &'a RateLine,
) -> impl Iterator<Item = Option<(f64, f64, f64, f64)>> + 'a {
    line.buckets.iter().map(|b| match b.value {
        BucketValue::SuccessRate(rate) => {
            let r = rate.rate?;
            let (low, high) = rate.interval.map_or((r, r), |ci| (ci.low, ci.high));
            Some((axis.point(b.start), r, low, high))
        }
        _ => None,
    })
}

/// Duration p50 and p95 over time.
pub(super) fn durations(report: &Report) -> Option<String> {
    let axis = Axis::of(report)?;
    let top = report
        .durations
        .iter()
        .filter_map(|d| d.p95.value)
        .fold(0f64, f64::max);
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    Some(svg("Task duration p50 and p95 over time", |root| {
        let label_y = |y: &f64| millis(*y);
        let mut chart = chart_on(root, &axis, top, &label_y)?;
        let p95 = |d: &DurationPoint| d.p95.value;
        let p50 = |d: &DurationPoint| d.p50.value;
        for (value, colour) in [(&p95 as &dyn Fn(_) -> _, P95_COLOUR), (&p50, P50_COLOUR)] {
            let points = report
                .durations
                .iter()
                .map(|d| value(d).map(|v| (axis.point(d.start), v)));
            for run in runs(points) {
                draw_run(&mut chart, run, COLOURS[colour], 2)?;
            }
        }
        Ok(())
    }))
}

/// What the tasks of each bucket cost.
pub(super) fn costs(report: &Report) -> Option<String> {
    let axis = Axis::of(report)?;
    let top = report
        .costs
        .iter()
        .filter_map(|c| c.cost.value)
        .fold(0f64, f64::max);
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    Some(svg("Cost per bucket over time, in USD", |root| {
        let label_y = |y: &f64| format!("${y:.2}");
        let mut chart = chart_on(root, &axis, top, &label_y)?;
        let points = report
            .costs
            .iter()
            .map(|c| c.cost.value.map(|v| (axis.point(c.start), v)));
        for run in runs(points) {
            draw_run(&mut chart, run, COLOURS[COST_COLOUR], 2)?;
        }
        Ok(())
    }))
}

/// The colour of the cost line.
const COST_COLOUR: usize = 2;

/// The legend colour of the duration lines, for the page.
pub(super) const P50_COLOUR: usize = 1;
/// See [`P50_COLOUR`].
pub(super) const P95_COLOUR: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_break_at_gaps() {
        let r = runs([None, Some(1), Some(2), None, None, Some(3), None]);
        assert_eq!(r, vec![vec![1, 2], vec![3]]);
        assert!(runs::<i32>([None, None]).is_empty());
    }
}
