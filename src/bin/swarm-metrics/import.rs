//! `import`: JSON Lines into the store.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use swarm_metrics::{parse_record, Error, MetricBatch, MetricsStorage, Parsed, StreamReport};

use crate::args::{ImportFormat, OnError};
use crate::{write_json, Failure};

/// Records stored per transaction in skip mode.
const CHUNK: usize = 5_000;
/// Bad lines reported one by one; the rest are counted.
const REPORTED: usize = 20;

/// What an import did.
pub struct Outcome {
    lines: u64,
    /// OpenTelemetry spans that were not tasks (`--format otlp`).
    ignored_spans: Option<u64>,
    stored: StreamReport,
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
            let mut report = report_json(&self.stored, self.rejected.len());
            if let Some(ignored) = self.ignored_spans {
                report["ignored_spans"] = json!(ignored);
            }
            return write_json(out, &report);
        }
        writeln!(
            out,
            "imported {} metrics ({} tasks, {} agent metrics, {} swarm metrics), \
             {} already stored, rejected {} of {} lines",
            self.stored.stored(),
            self.stored.tasks.stored,
            self.stored.agent_metrics.stored,
            self.stored.swarm_metrics.stored,
            self.stored.duplicates(),
            self.rejected.len(),
            self.lines
        )?;
        if let Some(ignored) = self.ignored_spans {
            writeln!(out, "{ignored} spans were not tasks and were left out")?;
        }
        Ok(())
    }
}

/// What `import --json` prints (and `POST /ingest` answers): what was
/// stored, kind by kind, and how many lines were rejected.
pub fn report_json(stored: &StreamReport, rejected: usize) -> Value {
    json!({
        "imported": stored.stored(),
        "duplicates": stored.duplicates(),
        "rejected": rejected,
        "tasks": stored.tasks,
        "agent_metrics": stored.agent_metrics,
        "swarm_metrics": stored.swarm_metrics,
    })
}

/// Parses one line: a JSON object naming its `kind`.
pub fn parse_line(line: &str) -> Result<Parsed, String> {
    parse_record(line).map_err(|e| match e {
        // "not JSON: …", as the line's own fault.
        Error::InvalidInput {
            field: "record",
            reason,
        } => reason,
        e => e.to_string(),
    })
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

/// The tasks of one trace export on line `line`, its rejected spans as
/// bad records of that line, and how many spans were not tasks.
fn span_records(line: u64, text: &str) -> (Vec<Line>, u64) {
    let request = match swarm_metrics::otlp::decode_json(text.as_bytes()) {
        Ok(request) => request,
        Err(e) => return (vec![(line, Err(e.to_string()))], 0),
    };
    let mapped = swarm_metrics::otlp::tasks_from_spans(&request);
    let records = mapped
        .tasks
        .into_iter()
        .map(|t| (line, Ok(Parsed::Task(t))))
        .chain(mapped.rejected.iter().map(|r| (line, Err(r.to_string()))))
        .collect();
    (records, mapped.ignored)
}

/// A line's number and what it holds: a metric, or why it is bad.
type Line = (u64, Result<Parsed, String>);

/// The lines of the input, parsed one at a time.
struct Lines {
    reader: BufReader<Box<dyn Read>>,
    format: ImportFormat,
    /// Records of the last line read not yet handed out (a trace export
    /// holds many spans).
    pending: VecDeque<Line>,
    /// Spans that were not tasks.
    ignored_spans: u64,
    file: String,
    bar: ProgressBar,
    buffer: Vec<u8>,
    /// Lines read so far (the number of the last one read).
    read: u64,
}

impl Lines {
    /// The next line that is not blank, with its number, parsed; `None` at
    /// the end of the input.
    fn next_record(&mut self) -> Result<Option<Line>, Failure> {
        loop {
            if let Some(record) = self.pending.pop_front() {
                return Ok(Some(record));
            }
            self.buffer.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buffer)
                .map_err(|e| Failure::Operational(format!("{}: reading: {e}", self.file)))?;
            if n == 0 {
                return Ok(None);
            }
            self.bar.inc(n as u64);
            self.read += 1;
            // A line that is not UTF-8 is a bad line like any other:
            // reported with its number, skipped or aborting as asked.
            let text = match std::str::from_utf8(&self.buffer) {
                Ok(text) => text.trim(),
                Err(e) => {
                    let reason = format!("not valid UTF-8 (byte {})", e.valid_up_to());
                    return Ok(Some((self.read, Err(reason))));
                }
            };
            if text.is_empty() {
                continue;
            }
            match self.format {
                ImportFormat::Jsonl => return Ok(Some((self.read, parse_line(text)))),
                ImportFormat::Otlp => {
                    let (records, ignored) = span_records(self.read, text);
                    self.pending.extend(records);
                    self.ignored_spans += ignored;
                }
            }
        }
    }
}

pub fn run(
    store: &MetricsStorage,
    file: &Path,
    on_error: OnError,
    format: ImportFormat,
) -> Result<Outcome, Failure> {
    let (input, size) = open_input(file)?;
    let mut lines = Lines {
        reader: BufReader::new(input),
        format,
        pending: VecDeque::new(),
        ignored_spans: 0,
        file: file.display().to_string(),
        bar: progress(size),
        buffer: Vec::new(),
        read: 0,
    };
    let mut outcome = Outcome {
        lines: 0,
        ignored_spans: None,
        stored: StreamReport::default(),
        rejected: Vec::new(),
        on_error,
    };
    match on_error {
        OnError::Abort => import_whole(store, &mut lines, &mut outcome)?,
        OnError::Skip => import_good_lines(store, &mut lines, &mut outcome)?,
    }
    outcome.lines = lines.read;
    if format == ImportFormat::Otlp {
        outcome.ignored_spans = Some(lines.ignored_spans);
    }
    lines.bar.finish_and_clear();
    Ok(outcome)
}

/// Abort mode: the file in one transaction, all or nothing. At the first
/// bad line the transaction is rolled back, and the rest of the file is
/// only read, to report its bad lines too.
fn import_whole(
    store: &MetricsStorage,
    lines: &mut Lines,
    outcome: &mut Outcome,
) -> Result<(), Failure> {
    let mut failure = None;
    let mut records = std::iter::from_fn(|| match lines.next_record() {
        Ok(Some((_, Ok(metric)))) => Some(Ok(metric)),
        Ok(Some((line, Err(reason)))) => {
            outcome.rejected.push((line, reason));
            Some(Err(Error::InvalidInput {
                field: "input",
                reason: format!("bad line {line}"),
            }))
        }
        Ok(None) => None,
        Err(e) => {
            failure = Some(e);
            Some(Err(Error::InvalidInput {
                field: "input",
                reason: "unreadable".to_owned(),
            }))
        }
    });
    let stored = store.store_stream(&mut records);
    if let Some(failure) = failure {
        return Err(failure);
    }
    match stored {
        Ok(stored) => outcome.stored = stored,
        Err(_) if !outcome.rejected.is_empty() => {
            while let Some((line, parsed)) = lines.next_record()? {
                if let Err(reason) = parsed {
                    outcome.rejected.push((line, reason));
                }
            }
        }
        Err(e) => {
            return Err(match Failure::from(e) {
                Failure::Operational(message) => Failure::Operational(format!(
                    "{message}\nnothing of this import was stored (it is stored whole or not at \
                     all)"
                )),
                other => other,
            })
        }
    }
    Ok(())
}

/// Skip mode: good lines are stored a chunk per transaction as they come,
/// bad ones reported. A failed write names what was stored before it.
fn import_good_lines(
    store: &MetricsStorage,
    lines: &mut Lines,
    outcome: &mut Outcome,
) -> Result<(), Failure> {
    let mut chunk = MetricBatch::default();
    let bar = lines.bar.clone();
    let store_chunk = |chunk: &mut MetricBatch, outcome: &mut Outcome| {
        let result = store.store_batch(chunk);
        match result {
            Ok(report) => {
                outcome.stored.add(chunk, &report);
                *chunk = MetricBatch::default();
                bar.set_message(format!("{} stored", outcome.stored.stored()));
                Ok(())
            }
            Err(e) => Err(Failure::Operational(format!(
                "{e}\n{} metrics of this import were stored before the failure ({} already \
                 stored); run the same import again to store the rest",
                outcome.stored.stored(),
                outcome.stored.duplicates()
            ))),
        }
    };
    while let Some((line, parsed)) = lines.next_record()? {
        match parsed {
            Ok(Parsed::Task(t)) => chunk.tasks.push(t),
            Ok(Parsed::Agent(m)) => chunk.agents.push(m),
            Ok(Parsed::Swarm(m)) => chunk.swarms.push(m),
            Err(reason) => outcome.rejected.push((line, reason)),
        }
        if chunk.len() >= CHUNK {
            store_chunk(&mut chunk, outcome)?;
        }
    }
    store_chunk(&mut chunk, outcome)
}
