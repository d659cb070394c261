//! `swarm-metrics`: the command line over a swarm-metrics database, for
//! cron jobs and shell scripts.
//!
//! Exit codes: 0 ok, 1 operational failure (damaged database, I/O), 2 bad
//! usage or bad input.

mod args;
mod export;
mod import;
mod report;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde_json::json;
use swarm_metrics::{Error, Filter, MetricsStorage, ReportOptions, TaskResult};

use args::{parse_span, Cli, Command};

/// Why the command failed, which decides its exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage or bad input: exit 2.
    Usage(String),
    /// The database or the file system failed: exit 1.
    Operational(String),
    /// Writing to stdout failed because the reader went away: exit quietly.
    BrokenPipe,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            e if e.is_invalid_input() => Failure::Usage(e.to_string()),
            Error::DatabaseFull { .. } | Error::FileSystem { .. } => Failure::Operational(format!(
                "{e}\nhint: if the disk is full, free space on it, or delete old metrics in \
                 place with `swarm-metrics cleanup --retention-days N --in-place` (see the \
                 README, \"A full disk\")"
            )),
            e => Failure::Operational(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Operational(format!("writing output: {e}"))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("swarm-metrics: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Operational(message)) => {
            eprintln!("swarm-metrics: {message}");
            ExitCode::from(1)
        }
    }
}

/// Opens an existing database; `writable` for commands that change it.
fn open_existing(path: &Path, busy: Duration, writable: bool) -> Result<MetricsStorage, Failure> {
    // A server (postgres://…) is opened as it is: it has no file to look
    // for, and is never opened read-only.
    if MetricsStorage::names_a_server(path) {
        return Ok(MetricsStorage::builder(path).busy_timeout(busy).open()?);
    }
    if !path.exists() {
        return Err(no_such_database(path));
    }
    Ok(MetricsStorage::builder(path)
        .read_only(!writable)
        .busy_timeout(busy)
        .open()?)
}

fn print_cleanup(
    out: &mut impl Write,
    verb: &str,
    days: u32,
    report: &swarm_metrics::CleanupReport,
) -> Result<(), Failure> {
    writeln!(out, "{verb} (older than {days} days):")?;
    writeln!(out, "  task_metrics   {}", report.task_metrics)?;
    writeln!(out, "  agent_metrics  {}", report.agent_metrics)?;
    writeln!(out, "  swarm_metrics  {}", report.swarm_metrics)?;
    if report.rollups > 0 {
        writeln!(out, "  rollups        {}", report.rollups)?;
    }
    Ok(())
}

fn no_such_database(path: &Path) -> Failure {
    Failure::Operational(format!(
        "{}: no such database (import metrics first, or pass --db)",
        path.display()
    ))
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let json = cli.json;
    let busy = Duration::from_secs(cli.busy_timeout);
    match cli.command {
        Command::Cleanup {
            retention_days,
            in_place: true,
            ..
        } => {
            let days = retention_days.unwrap_or(swarm_metrics::DEFAULT_RETENTION_DAYS);
            let report = MetricsStorage::cleanup_in_place(&cli.db, days)?;
            if json {
                write_json(&mut out, &report)?;
            } else {
                print_cleanup(&mut out, "deleted in place", days, &report.deleted)?;
                writeln!(
                    out,
                    "{}: {} bytes -> {} bytes",
                    cli.db.display(),
                    report.size.bytes_before,
                    report.size.bytes_after
                )?;
            }
        }
        Command::Cleanup {
            retention_days,
            policy,
            vacuum,
            dry_run,
            in_place: false,
        } => {
            let store = open_existing(&cli.db, busy, !dry_run)?;
            if let Some(policy) = policy {
                let policy = args::parse_policy(&policy)?;
                let report = store.apply_retention(&policy)?;
                if vacuum {
                    store.incremental_vacuum(None)?;
                }
                if json {
                    write_json(&mut out, &report)?;
                } else {
                    writeln!(out, "tiered retention:")?;
                    writeln!(
                        out,
                        "  raw rows folded into hourly rollups  {}",
                        report.raw_folded
                    )?;
                    writeln!(
                        out,
                        "  hourly rollups folded into daily     {}",
                        report.hourly_folded
                    )?;
                    writeln!(
                        out,
                        "  daily rollups dropped                {}",
                        report.daily_dropped
                    )?;
                }
            } else {
                let retention_days =
                    retention_days.unwrap_or(swarm_metrics::DEFAULT_RETENTION_DAYS);
                let report = if dry_run {
                    store.count_old_metrics(retention_days)?
                } else {
                    store.cleanup_old_metrics(retention_days)?
                };
                if vacuum && !dry_run {
                    store.incremental_vacuum(None)?;
                }
                if json {
                    write_json(&mut out, &report)?;
                } else {
                    let verb = if dry_run { "would delete" } else { "deleted" };
                    print_cleanup(&mut out, verb, retention_days, &report)?;
                }
            }
            store.close()?;
        }
        Command::Vacuum { incremental, full } => {
            let store = open_existing(&cli.db, busy, true)?;
            // The store's own name: a server's without its password.
            let name = store.path().display().to_string();
            let report = if full {
                store.vacuum()?
            } else {
                store.incremental_vacuum(incremental)?
            };
            store.close()?;
            if json {
                write_json(&mut out, &report)?;
            } else {
                writeln!(
                    out,
                    "vacuumed {name}: {} bytes -> {} bytes",
                    report.bytes_before, report.bytes_after
                )?;
            }
        }
        Command::Check => return check(&cli.db, json, &mut out),
        Command::Stats => {
            let store = open_existing(&cli.db, busy, false)?;
            let stats = store.stats()?;
            if json {
                write_json(&mut out, &stats)?;
            } else {
                report::stats(&mut out, &stats)?;
            }
        }
        Command::Import { file, on_error } => {
            let store = MetricsStorage::builder(&cli.db).busy_timeout(busy).open()?;
            let outcome = import::run(&store, &file, on_error)?;
            outcome.print(&mut out, json)?;
            out.flush()?;
            // What the report says is stored is committed; closing only
            // folds the WAL into the file, and may fail on a full disk.
            store.close().map_err(|e| match Failure::from(e) {
                Failure::Operational(message) | Failure::Usage(message) => {
                    Failure::Operational(format!(
                        "{message}\nthe import is stored as reported; only closing the store \
                         (copying its WAL into the file) failed"
                    ))
                }
                Failure::BrokenPipe => Failure::BrokenPipe,
            })?;
            if outcome.aborted() {
                return Ok(ExitCode::from(2));
            }
        }
        Command::Export {
            range,
            kind,
            format,
        } => {
            let store = open_existing(&cli.db, busy, false)?;
            export::run(
                &store,
                &mut out,
                kind.map(Into::into),
                range.range()?,
                format,
            )?;
        }
        Command::Copy { from, to } => {
            let source = open_existing(&from, busy, false)?;
            let target = MetricsStorage::builder(&to).busy_timeout(busy).open()?;
            let report = source.copy_to(&target)?;
            let target_name = target.path().display().to_string();
            target.close()?;
            if json {
                write_json(&mut out, &report)?;
            } else {
                // The target's own name for itself: a server without its
                // password.
                writeln!(
                    out,
                    "copied {} metrics into {} ({} were there already)",
                    report.stored(),
                    target_name,
                    report.duplicates()
                )?;
                let rollups = report.rollups;
                if rollups.stored + rollups.duplicates > 0 {
                    writeln!(
                        out,
                        "copied {} rollups ({} were there already)",
                        rollups.stored, rollups.duplicates
                    )?;
                }
            }
        }
        Command::Report {
            html,
            range,
            agent,
            swarm,
            result,
            width,
            current,
            baseline,
            alpha,
            top,
            title,
        } => {
            if html.is_none() && !json {
                return Err(Failure::Usage(
                    "report needs --html FILE for the page (or --json for its numbers)".to_owned(),
                ));
            }
            let filter = Filter {
                agent_id: agent,
                swarm_id: swarm,
                result: result
                    .as_deref()
                    .map(str::parse::<TaskResult>)
                    .transpose()?,
                time_range: range.range()?,
                ..Filter::new()
            };
            let mut options = ReportOptions::new()
                .filter(filter)
                .windows(
                    parse_span("--current", &current)?,
                    parse_span("--baseline", &baseline)?,
                )
                .alpha(alpha)
                .top_agents(top);
            if let Some(width) = width {
                options = options.width(parse_span("--width", &width)?);
            }
            if let Some(title) = title {
                options = options.title(title);
            }
            let store = open_existing(&cli.db, busy, false)?;
            let report = store.report(&options)?;
            if let Some(path) = &html {
                report.write_html(path)?;
            }
            if json {
                write_json(&mut out, &report)?;
            } else if let Some(path) = &html {
                writeln!(
                    out,
                    "wrote {} ({} tasks, {} agents)",
                    path.display(),
                    report.summary.tasks,
                    report.agents.len() as u64 + report.other_agents.map_or(0, |o| o.agents)
                )?;
            }
        }
        command => {
            let store = open_existing(&cli.db, busy, false)?;
            report::question(&store, command, json, &mut out)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `check`: exit 1 when the file is damaged or not a store at all.
fn check(path: &Path, json: bool, out: &mut impl Write) -> Result<ExitCode, Failure> {
    let server = MetricsStorage::names_a_server(path);
    if !server && !path.exists() {
        return Err(no_such_database(path));
    }
    // A server is opened as it is (never read-only), and named as it
    // names itself: without its password.
    let opened = MetricsStorage::builder(path).read_only(!server).open();
    let name = match &opened {
        Ok(store) => store.path().display().to_string(),
        Err(_) if server => "the server".to_owned(),
        Err(_) => path.display().to_string(),
    };
    let outcome = opened.and_then(|store| Ok((store.integrity_check()?, store.schema_version()?)));
    // Only what SQLite finds wrong inside the file is damage; a file that
    // cannot be read (a full disk, permissions) was not checked.
    let verdict = match outcome {
        Ok((problems, version)) if problems.is_empty() => Verdict::Ok(version),
        Ok((problems, _)) => Verdict::Damaged(problems),
        Err(e @ (Error::NotADatabase { .. } | Error::CorruptRow { .. })) => {
            Verdict::Damaged(vec![e.to_string()])
        }
        Err(e) => Verdict::Unchecked(e.to_string()),
    };
    if json {
        let report = match &verdict {
            Verdict::Ok(version) => json!({"ok": true, "schema_version": version, "problems": []}),
            Verdict::Damaged(problems) => {
                json!({"ok": false, "schema_version": null, "problems": problems})
            }
            Verdict::Unchecked(reason) => {
                json!({"ok": false, "checked": false, "schema_version": null, "error": reason})
            }
        };
        write_json(out, &report)?;
    } else {
        match &verdict {
            Verdict::Ok(version) => writeln!(out, "{name}: ok (schema version {version})")?,
            Verdict::Damaged(problems) => {
                writeln!(out, "{name}: damaged")?;
                for problem in problems {
                    writeln!(out, "  {problem}")?;
                }
            }
            Verdict::Unchecked(reason) => {
                writeln!(out, "{name}: could not be checked")?;
                writeln!(out, "  {reason}")?;
            }
        }
    }
    out.flush()?;
    Ok(match verdict {
        Verdict::Ok(_) => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

/// What `check` found.
enum Verdict {
    /// Healthy, at this schema version.
    Ok(i64),
    /// SQLite or the schema check found these problems inside the file.
    Damaged(Vec<String>),
    /// The file could not be read to check it, for this reason.
    Unchecked(String),
}

/// A value that cannot be shown as JSON (only non-finite numbers, which the
/// store never holds).
pub fn json_error(e: serde_json::Error) -> Failure {
    Failure::Operational(format!("cannot write JSON: {e}"))
}

/// Writes `value` as one JSON document and a newline.
pub fn write_json(out: &mut impl Write, value: &impl serde::Serialize) -> Result<(), Failure> {
    serde_json::to_writer(&mut *out, value).map_err(|e| {
        if e.is_io() {
            Failure::from(std::io::Error::from(e))
        } else {
            json_error(e)
        }
    })?;
    writeln!(out)?;
    Ok(())
}
