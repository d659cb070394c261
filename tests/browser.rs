//! A real browser draws the report: headless Chromium takes a screenshot
//! of the page, which must have the size asked for and show the charts.
//!
//! Chromium comes from the distribution's package; `scripts/test`
//! installs it when it is missing. `SWARM_METRICS_CHROMIUM` names another
//! binary.

#[path = "common/chromium.rs"]
mod chromium;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration as Wait, Instant};

use chrono::Duration;
use swarm_metrics::{Filter, MetricsStorage, ReportOptions, TaskMetric, TaskResult};

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 1600;

/// Screenshots `page` in headless Chromium and decodes the PNG: its
/// width, height and RGBA pixels.
fn screenshot(page: &Path, dir: &Path) -> (u32, u32, Vec<u8>) {
    let shot = dir.join("shot.png");
    // As root, Chromium only runs without its sandbox; the background
    // flags keep it from reaching out to the network at start.
    let mut child = Command::new(chromium::binary())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--window-size={WIDTH},{HEIGHT}"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Chromium starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Wait::from_secs(120) {
            let _ = child.kill();
            panic!("Chromium took more than two minutes");
        }
        std::thread::sleep(Wait::from_millis(50));
    };
    assert!(status.success(), "Chromium failed: {status}");
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&shot).expect("a screenshot"),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    pixels.truncate(info.buffer_size());
    // As RGBA, whatever the encoder chose.
    let rgba = match info.color_type {
        png::ColorType::Rgba => pixels,
        png::ColorType::Rgb => pixels
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    (info.width, info.height, rgba)
}

/// Pixels close to `colour`.
fn near(pixels: &[u8], colour: [u8; 3]) -> usize {
    pixels
        .chunks(4)
        .filter(|p| (0..3).all(|i| p[i].abs_diff(colour[i]) <= 12))
        .count()
}

#[test]
fn chromium_draws_the_report() {
    let store = MetricsStorage::temporary().unwrap();
    let now = swarm_metrics::now();
    let tasks: Vec<_> = (0..2_000u64)
        .map(|i| {
            TaskMetric::new(
                format!("t{i}"),
                format!("agent-{}", i % 5),
                100 + (i * 37) % 900,
                if i % 9 == 0 {
                    TaskResult::Failure
                } else {
                    TaskResult::Success
                },
            )
            .swarm(format!("swarm-{}", i % 2))
            .at(now - Duration::seconds(i as i64 * 40))
        })
        .collect();
    store.store_task_metrics(&tasks).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    store
        .report(&ReportOptions::new())
        .unwrap()
        .write_html(&page)
        .unwrap();

    let (width, height, pixels) = screenshot(&page, dir.path());
    assert_eq!((width, height), (WIDTH, HEIGHT));
    // Not blank: the page's background and white are far from all of it.
    let total = (width * height) as usize;
    // (Both are light grey to white: one test covers them.)
    let background = pixels
        .chunks(4)
        .filter(|p| (0..3).all(|i| p[i] >= 0xea))
        .count();
    assert!(
        total - background > total / 20,
        "only {} of {total} pixels drawn",
        total - background
    );
    // The charts' lines are there: the blue of swarm-0 and of p50, the
    // orange of swarm-1, the red of p95.
    for (name, colour) in [
        ("blue", [31, 119, 180]),
        ("orange", [255, 127, 14]),
        ("red", [214, 39, 40]),
    ] {
        let n = near(&pixels, colour);
        assert!(n > 200, "{n} {name} pixels: a chart line is missing");
    }
}

#[test]
fn chromium_draws_an_empty_report() {
    let store = MetricsStorage::temporary().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("empty.html");
    store
        .report(&ReportOptions::new().filter(Filter::new().swarm("none")))
        .unwrap()
        .write_html(&page)
        .unwrap();
    let (width, height, pixels) = screenshot(&page, dir.path());
    assert_eq!((width, height), (WIDTH, HEIGHT));
    // Text and section borders, but no chart lines.
    let dark = pixels
        .chunks(4)
        .filter(|p| p[0] < 100 && p[1] < 100 && p[2] < 100)
        .count();
    assert!(dark > 500, "{dark} dark pixels: no text drawn");
    assert!(near(&pixels, [31, 119, 180]) < 50);
}
