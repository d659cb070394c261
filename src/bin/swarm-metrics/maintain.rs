//! The commands that keep a store in shape: `cleanup`, `vacuum`, `check`
//! and `stats`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use serde_json::json;
use swarm_metrics::{CleanupReport, Error, Health, HealthOptions, MetricsStorage};

use crate::args::{CleanupArgs, HealthArgs, VacuumArgs};
use crate::parse;
use crate::parse::parse_span;
use crate::{no_such_database, open_existing, print, write_json, Context, Failure};

/// `cleanup`: plain, tiered (`--policy`) or, on a full disk, in place.
pub fn cleanup(cx: &Context, args: CleanupArgs, out: &mut impl Write) -> Result<(), Failure> {
    if args.in_place {
        return cleanup_in_place(cx, args.retention_days, out);
    }
    let CleanupArgs {
        retention_days,
        policy,
        vacuum,
        dry_run,
        in_place: _,
    } = args;
    let store = open_existing(&cx.db, cx.busy, !dry_run)?;
    if let Some(policy) = policy {
        let policy = parse::parse_policy(&policy)?;
        let report = store.apply_retention(&policy)?;
        if vacuum {
            store.incremental_vacuum(None)?;
        }
        if cx.json {
            write_json(out, &report)?;
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
        let retention_days = retention_days.unwrap_or(swarm_metrics::DEFAULT_RETENTION_DAYS);
        let report = if dry_run {
            store.count_old_metrics(retention_days)?
        } else {
            store.cleanup_old_metrics(retention_days)?
        };
        if vacuum && !dry_run {
            store.incremental_vacuum(None)?;
        }
        if cx.json {
            write_json(out, &report)?;
        } else {
            let verb = if dry_run { "would delete" } else { "deleted" };
            print_cleanup(out, verb, retention_days, &report)?;
        }
    }
    store.close()?;
    Ok(())
}

/// `cleanup --in-place`: deletes and vacuums without the WAL.
fn cleanup_in_place(
    cx: &Context,
    retention_days: Option<u32>,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let days = retention_days.unwrap_or(swarm_metrics::DEFAULT_RETENTION_DAYS);
    let report = MetricsStorage::cleanup_in_place(&cx.db, days)?;
    if cx.json {
        write_json(out, &report)?;
    } else {
        print_cleanup(out, "deleted in place", days, &report.deleted)?;
        writeln!(
            out,
            "{}: {} bytes -> {} bytes",
            cx.db.display(),
            report.size.bytes_before,
            report.size.bytes_after
        )?;
    }
    Ok(())
}

/// `vacuum`: in steps, or the whole file rebuilt (`--full`).
pub fn vacuum(cx: &Context, args: VacuumArgs, out: &mut impl Write) -> Result<(), Failure> {
    let VacuumArgs { incremental, full } = args;
    let store = open_existing(&cx.db, cx.busy, true)?;
    // The store's own name: a server's without its password.
    let name = store.path().display().to_string();
    let report = if full {
        store.vacuum()?
    } else {
        store.incremental_vacuum(incremental)?
    };
    store.close()?;
    if cx.json {
        write_json(out, &report)?;
    } else {
        writeln!(
            out,
            "vacuumed {name}: {} bytes -> {} bytes",
            report.bytes_before, report.bytes_after
        )?;
    }
    Ok(())
}

/// `stats`: rows per table, spans, sizes and schema version.
pub fn stats(cx: &Context, out: &mut impl Write) -> Result<(), Failure> {
    let store = open_existing(&cx.db, cx.busy, false)?;
    stats_of(&store, cx.json, out)
}

/// `stats` of an open store.
pub fn stats_of(store: &MetricsStorage, json: bool, out: &mut impl Write) -> Result<(), Failure> {
    let stats = store.stats()?;
    if json {
        write_json(out, &stats)?;
    } else {
        print::stats(out, &stats)?;
    }
    Ok(())
}

fn print_cleanup(
    out: &mut impl Write,
    verb: &str,
    days: u32,
    report: &CleanupReport,
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

/// `check`: exit 1 when the file is damaged or not a store at all.
pub fn check(path: &Path, json: bool, out: &mut impl Write) -> Result<ExitCode, Failure> {
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

/// What `health`'s arguments ask to check.
pub fn health_options(args: &HealthArgs) -> Result<HealthOptions, Failure> {
    let mut options =
        HealthOptions::new().stale_after(parse_span("--stale-after", &args.stale_after)?);
    if let Some(policy) = &args.policy {
        options = options.retention(parse::parse_policy(policy)?);
    }
    Ok(options)
}

/// `health`: exit 1 when a check fails, or the store cannot be opened.
pub fn health(cx: &Context, args: HealthArgs, out: &mut impl Write) -> Result<ExitCode, Failure> {
    let options = health_options(&args)?;
    let health = match open_existing(&cx.db, cx.busy, false) {
        Ok(store) => store.health(&options),
        Err(Failure::Usage(message)) => return Err(Failure::Usage(message)),
        Err(Failure::Operational(reason)) => Health::unreachable(reason),
        Err(Failure::BrokenPipe) => return Err(Failure::BrokenPipe),
    };
    if cx.json {
        write_json(out, &health)?;
    } else {
        for check in &health.checks {
            let verdict = if check.ok { "ok" } else { "FAIL" };
            writeln!(out, "{verdict:<4}  {:<20}  {}", check.name, check.figure)?;
        }
        writeln!(
            out,
            "{}",
            if health.healthy {
                "healthy"
            } else {
                "not healthy"
            }
        )?;
    }
    out.flush()?;
    Ok(if health.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
