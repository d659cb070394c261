//! `import`: JSON Lines into the store.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use swarm_metrics::{parse_metric, MetricBatch, MetricKind, MetricsStorage, Parsed};

use crate::args::OnError;
use crate::{write_json, Failure};

/// Records stored per transaction.
const CHUNK: usize = 5_000;
/// Bad lines reported one by one; the rest are counted.
const REPORTED: usize = 20;

/// What an import did.
pub struct Outcome {
    lines: u64,
    imported: u64,
    duplicates: u64,
    rejected: Vec<(u64, String)>,
    on_error: OnError,
}

impl Outcome {
    /// Bad lines in abort mode: nothing was stored.
    pub fn aborted(&self) -> bool {
        self.on_error == OnError::Abort && !self.rejected.is_empty()
    }

    pub fn print(&self, out: &mut impl Write, as_json: bool) -> Result<(), Failure> {
        for (line, reason) in self.rejected.iter().take(REPORTED) {
            eprintln!("line {line}: {reason}");
        }
        if self.rejected.len() > REPORTED {
            eprintln!("... and {} more bad lines", self.rejected.len() - REPORTED);
        }
        if self.aborted() {
            eprintln!(
                "{} bad line(s): nothing was imported (use --on-error skip to store the rest)",
                self.rejected.len()
            );
        }
        if as_json {
            return write_json(
                out,
                &json!({
                    "imported": self.imported,
                    "duplicates": self.duplicates,
                    "rejected": self.rejected.len(),
                }),
            );
        }
        writeln!(
            out,
            "imported {} metrics ({} task metrics were already stored), rejected {} of {} lines",
            self.imported,
            self.duplicates,
            self.rejected.len(),
            self.lines
        )?;
        Ok(())
    }
}

/// Parses one line: a JSON object naming its `kind`.
fn parse_line(line: &str) -> Result<Parsed, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let kind = value
        .get("kind")
        .ok_or("missing \"kind\" (task, agent or swarm)")?
        .as_str()
        .ok_or("\"kind\" must be a string: task, agent or swarm")?
        .parse::<MetricKind>()
        .map_err(|e| e.to_string())?;
    parse_metric(kind, &value).map_err(|e| e.to_string())
}

fn open_input(file: &Path) -> Result<(Box<dyn Read>, Option<u64>), Failure> {
    if file.as_os_str() == "-" {
        return Ok((Box::new(std::io::stdin().lock()), None));
    }
    let f = std::fs::File::open(file)
        .map_err(|e| Failure::Operational(format!("{}: {e}", file.display())))?;
    let size = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(f), size))
}

fn progress(size: Option<u64>) -> ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match size {
        Some(bytes) => {
            let bar = ProgressBar::new(bytes);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {per_sec} {msg}")
            {
                bar.set_style(style);
            }
            bar
        }
        None => ProgressBar::new_spinner(),
    }
}

pub fn run(store: &MetricsStorage, file: &Path, on_error: OnError) -> Result<Outcome, Failure> {
    let (input, size) = open_input(file)?;
    let bar = progress(size);
    let mut outcome = Outcome {
        lines: 0,
        imported: 0,
        duplicates: 0,
        rejected: Vec::new(),
        on_error,
    };
    // In abort mode nothing may be stored before every line is known to be
    // good, so the records wait in memory; in skip mode they are stored a
    // chunk at a time as they come.
    let mut pending = MetricBatch::default();
    let mut reader = BufReader::new(input);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Failure::Operational(format!("{}: reading: {e}", file.display())))?;
        if read == 0 {
            break;
        }
        bar.inc(read as u64);
        outcome.lines += 1;
        // A line that is not UTF-8 is a bad line like any other: reported
        // with its number, skipped or aborting as asked.
        let text = match std::str::from_utf8(&line) {
            Ok(text) => text.trim(),
            Err(e) => {
                let reason = format!("not valid UTF-8 (byte {})", e.valid_up_to());
                outcome.rejected.push((outcome.lines, reason));
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        match parse_line(text) {
            Ok(Parsed::Task(t)) => pending.tasks.push(t),
            Ok(Parsed::Agent(m)) => pending.agents.push(m),
            Ok(Parsed::Swarm(m)) => pending.swarms.push(m),
            Err(reason) => outcome.rejected.push((outcome.lines, reason)),
        }
        if on_error == OnError::Skip && pending.len() >= CHUNK {
            store_chunk(store, &mut pending, &mut outcome)?;
        }
    }
    if !outcome.aborted() {
        // Abort mode stores everything now, a chunk per transaction.
        let mut all = std::mem::take(&mut pending);
        while !all.is_empty() {
            let mut chunk = MetricBatch {
                tasks: drain_front(&mut all.tasks, CHUNK),
                agents: Vec::new(),
                swarms: Vec::new(),
            };
            let room = CHUNK.saturating_sub(chunk.len());
            chunk.agents = drain_front(&mut all.agents, room);
            let room = CHUNK.saturating_sub(chunk.len());
            chunk.swarms = drain_front(&mut all.swarms, room);
            store_chunk(store, &mut chunk, &mut outcome)?;
            bar.set_message(format!("{} stored", outcome.imported));
        }
    }
    bar.finish_and_clear();
    Ok(outcome)
}

fn drain_front<T>(items: &mut Vec<T>, n: usize) -> Vec<T> {
    let n = n.min(items.len());
    items.drain(..n).collect()
}

fn store_chunk(
    store: &MetricsStorage,
    chunk: &mut MetricBatch,
    outcome: &mut Outcome,
) -> Result<(), Failure> {
    if chunk.is_empty() {
        return Ok(());
    }
    let report = store.store_batch(chunk)?;
    let new = report.new_tasks + report.agent_ids.len() + report.swarm_ids.len();
    outcome.imported += new as u64;
    outcome.duplicates += (chunk.tasks.len() - report.new_tasks) as u64;
    *chunk = MetricBatch::default();
    Ok(())
}
