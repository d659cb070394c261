//! The commands that move metrics in and out: `import`, `export`, `copy`,
//! and the one-file HTML `report`.

use std::io::Write;
use std::process::ExitCode;

use swarm_metrics::{Filter, MetricsStorage, Report, ReportOptions};

use crate::args::{CopyArgs, ExportArgs, ImportArgs, ReportArgs};
use crate::parse::parse_span;
use crate::{export, import, open_existing, write_json, Context, Failure};

/// `import`: exit 2 when a bad line aborted it.
pub fn import(cx: &Context, args: ImportArgs, out: &mut impl Write) -> Result<ExitCode, Failure> {
    let ImportArgs {
        file,
        on_error,
        format,
    } = args;
    let store = MetricsStorage::builder(&cx.db)
        .busy_timeout(cx.busy)
        .open()?;
    let outcome = import::run(&store, &file, on_error, format)?;
    outcome.print(out, cx.json)?;
    out.flush()?;
    // What the report says is stored is committed; closing only
    // folds the WAL into the file, and may fail on a full disk.
    store.close().map_err(|e| match Failure::from(e) {
        Failure::Operational(message) | Failure::Usage(message) => Failure::Operational(format!(
            "{message}\nthe import is stored as reported; only closing the store \
                 (copying its WAL into the file) failed"
        )),
        Failure::BrokenPipe => Failure::BrokenPipe,
    })?;
    if outcome.aborted() {
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// `export`: JSON Lines, CSV or Prometheus text on stdout.
pub fn export(cx: &Context, args: ExportArgs, out: &mut impl Write) -> Result<(), Failure> {
    let ExportArgs {
        range,
        kind,
        format,
    } = args;
    let store = open_existing(&cx.db, cx.busy, false)?;
    export::run(&store, out, kind.map(Into::into), range.range()?, format)?;
    Ok(())
}

/// `copy`: every metric of one store into another.
pub fn copy(cx: &Context, args: CopyArgs, out: &mut impl Write) -> Result<(), Failure> {
    let CopyArgs { from, to } = args;
    let source = open_existing(&from, cx.busy, false)?;
    let target = MetricsStorage::builder(&to).busy_timeout(cx.busy).open()?;
    let report = source.copy_to(&target)?;
    let target_name = target.path().display().to_string();
    target.close()?;
    if cx.json {
        write_json(out, &report)?;
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
    Ok(())
}

/// `report`: the HTML page, its numbers as JSON, or both.
pub fn page(cx: &Context, args: ReportArgs, out: &mut impl Write) -> Result<(), Failure> {
    if args.html.is_none() && !cx.json {
        return Err(Failure::Usage(
            "report needs --html FILE for the page (or --json for its numbers)".to_owned(),
        ));
    }
    let html = args.html.clone();
    let store = open_existing(&cx.db, cx.busy, false)?;
    let report = report_of(&store, args)?;
    if let Some(path) = &html {
        report.write_html(path)?;
    }
    if cx.json {
        write_json(out, &report)?;
    } else if let Some(path) = &html {
        writeln!(
            out,
            "wrote {} ({} tasks, {} agents)",
            path.display(),
            report.summary.tasks,
            report.agents.len() as u64 + report.other_agents.map_or(0, |o| o.agents)
        )?;
    }
    Ok(())
}

/// The report `report`'s arguments ask for (all but `--html`).
pub fn report_of(store: &MetricsStorage, args: ReportArgs) -> Result<Report, Failure> {
    let ReportArgs {
        html: _,
        range,
        select,
        width,
        current,
        baseline,
        alpha,
        top,
        title,
    } = args;
    let filter = select.apply(Filter {
        time_range: range.range()?,
        ..Filter::new()
    })?;
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
    Ok(store.report(&options)?)
}
