//! What tasks cost: `prices` (set, list, import) and the questions
//! `cost-per-success` and `tokens`.

use std::io::Write;

use serde_json::json;
use swarm_metrics::{MetricsStorage, Price, PriceEntry};

use crate::args::{CostPerSuccessArgs, PriceSetArgs, PricesArgs, PricesCommand, TokensArgs};
use crate::parse::{parse_day_or_time, parse_span};
use crate::print::{json_array, table, table_of};
use crate::{write_json, Context, Failure};

/// Runs one `prices` subcommand.
pub fn prices(cx: &Context, args: PricesArgs, out: &mut impl Write) -> Result<(), Failure> {
    let store = MetricsStorage::builder(&cx.db)
        .busy_timeout(cx.busy)
        .open()?;
    match args.command {
        PricesCommand::Set(args) => set(&store, args, cx.json, out),
        PricesCommand::List => list(&store, cx.json, out),
        PricesCommand::Import { file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                Failure::Operational(format!("{}: cannot read: {e}", file.display()))
            })?;
            let entries = swarm_metrics::parse_prices(&text)
                .map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?;
            store.set_prices(&entries)?;
            if cx.json {
                return write_json(out, &json!({ "set": entries.len() }));
            }
            writeln!(out, "set {} prices", entries.len())?;
            Ok(())
        }
        PricesCommand::Recompute { since } => {
            let since = parse_span("--since", &since)?;
            let report = store.recompute_costs(swarm_metrics::now() - since)?;
            if cx.json {
                return write_json(out, &report);
            }
            writeln!(
                out,
                "re-priced {} tasks ({} of them now without a price); {} billed tasks kept \
                 their bill; {} tasks and {} rollups in the range are folded and keep the \
                 cost they had",
                report.repriced,
                report.now_unpriced,
                report.billed,
                report.folded_tasks,
                report.folded_rollups
            )?;
            Ok(())
        }
    }
}

fn set(
    store: &MetricsStorage,
    args: PriceSetArgs,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let entry = PriceEntry {
        from: parse_day_or_time("--from", &args.from)?,
        model: args.model,
        price: Price {
            input: args.input,
            output: args.output,
            cache_read: args.cache_read,
            cache_write: args.cache_write,
        },
    };
    store.set_price(&entry.model, entry.from, entry.price)?;
    if as_json {
        return write_json(out, &entry);
    }
    writeln!(
        out,
        "set the price of {} from {}",
        entry.model,
        entry.from.to_rfc3339()
    )?;
    Ok(())
}

/// `prices list`.
pub fn list(store: &MetricsStorage, as_json: bool, out: &mut impl Write) -> Result<(), Failure> {
    let prices = store.prices()?;
    if as_json {
        return json_array(out, &prices, |p| json!(p));
    }
    table_of(
        out,
        &[
            "model",
            "from",
            "input",
            "output",
            "cache_read",
            "cache_write",
        ],
        &prices,
        |p| {
            vec![
                p.model.clone(),
                p.from.to_rfc3339(),
                p.price.input.to_string(),
                p.price.output.to_string(),
                p.price.cache_read.to_string(),
                p.price.cache_write.to_string(),
            ]
        },
    )
}

/// USD as the tables show it: to the micro-dollar.
fn usd(v: f64) -> String {
    format!("{v:.6}")
}

/// `cost-per-success`.
pub fn cost_per_success(
    store: &MetricsStorage,
    CostPerSuccessArgs { filter, by }: CostPerSuccessArgs,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let f = filter.filter()?;
    let lines = store.cost_per_success(by.map(Into::into), &f)?;
    if as_json {
        if by.is_none() {
            return write_json(out, &lines[0]);
        }
        return json_array(out, &lines, |line| json!(line));
    }
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l.id.clone().unwrap_or_else(|| "-".into()),
                usd(l.cost_usd),
                l.successes.to_string(),
                l.cost_per_success_usd.map_or_else(|| "-".into(), usd),
                l.unpriced.to_string(),
            ]
        })
        .collect();
    table(
        out,
        &[
            "id",
            "cost_usd",
            "successes",
            "cost_per_success_usd",
            "unpriced",
        ],
        &rows,
    )
}

/// `tokens`.
pub fn tokens(
    store: &MetricsStorage,
    TokensArgs { filter }: TokensArgs,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let t = store.tokens_by_type(&filter.filter()?)?;
    if as_json {
        return write_json(out, &t);
    }
    let rows: Vec<Vec<String>> = [
        ("tasks", t.tasks),
        ("with_breakdown", t.with_breakdown),
        ("total", t.total),
        ("input", t.input),
        ("output", t.output),
        ("cache_read", t.cache_read),
        ("cache_write", t.cache_write),
        ("unsplit", t.unsplit),
    ]
    .iter()
    .map(|(name, n)| vec![(*name).to_owned(), n.to_string()])
    .collect();
    table(out, &["", "tokens"], &rows)
}
