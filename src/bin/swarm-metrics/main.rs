//! `swarm-metrics`: the command line over a swarm-metrics database, for
//! cron jobs and shell scripts.
//!
//! Exit codes: 0 ok, 1 operational failure (damaged database, I/O), 2 bad
//! usage or bad input.

mod alerts;
mod args;
mod cost;
mod export;
mod import;
mod maintain;
mod parse;
mod print;
mod questions;
mod select;
mod serve;
mod transfer;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use swarm_metrics::{Error, MetricsStorage};

use args::{Cli, Command};

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
pub fn open_existing(
    path: &Path,
    busy: Duration,
    writable: bool,
) -> Result<MetricsStorage, Failure> {
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

/// The failure of a command that needs an existing file.
pub fn no_such_database(path: &Path) -> Failure {
    Failure::Operational(format!(
        "{}: no such database (import metrics first, or pass --db)",
        path.display()
    ))
}

/// What every command is given: the global options.
pub struct Context {
    /// The database file, or a server's URL.
    pub db: PathBuf,
    /// Print one JSON document instead of a table.
    pub json: bool,
    /// How long to wait for another process's write lock.
    pub busy: Duration,
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let cx = Context {
        db: cli.db,
        json: cli.json,
        busy: Duration::from_secs(cli.busy_timeout),
    };
    let out = &mut out;
    let code = match cli.command {
        Command::Cleanup(args) => maintain::cleanup(&cx, args, out).map(|()| ExitCode::SUCCESS),
        Command::Vacuum(args) => maintain::vacuum(&cx, args, out).map(|()| ExitCode::SUCCESS),
        Command::Check => maintain::check(&cx.db, cx.json, out),
        Command::Stats => maintain::stats(&cx, out).map(|()| ExitCode::SUCCESS),
        Command::Import(args) => transfer::import(&cx, args, out),
        Command::Export(args) => transfer::export(&cx, args, out).map(|()| ExitCode::SUCCESS),
        Command::Copy(args) => transfer::copy(&cx, args, out).map(|()| ExitCode::SUCCESS),
        Command::Report(args) => transfer::page(&cx, args, out).map(|()| ExitCode::SUCCESS),
        Command::Health(args) => maintain::health(&cx, args, out),
        Command::Alerts(args) => alerts::run(&cx, args, out),
        Command::Serve(args) => serve::run(&cx, args),
        Command::Prices(args) => cost::prices(&cx, args, out).map(|()| ExitCode::SUCCESS),
        Command::Question(question) => {
            let store = open_existing(&cx.db, cx.busy, false)?;
            questions::answer(&store, question, cx.json, out).map(|()| ExitCode::SUCCESS)
        }
    }?;
    out.flush()?;
    Ok(code)
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
