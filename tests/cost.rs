//! What tasks cost: the token rule, prices with validity dates, and the
//! cost each task is stored with, on every engine this build has (the
//! file always; PostgreSQL with the `postgres` feature, compared with the
//! file's answers).

mod common;

use chrono::{Duration, TimeZone, Utc};
use common::server::stores;
use proptest::prelude::*;
use swarm_metrics::{
    AggregationType, Error, Filter, GroupBy, MetricKind, MetricsStorage, Price, RetentionPolicy,
    TaskColumn, TaskMetric, TaskResult, Usage,
};

fn day(d: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, 0, 0, 0).unwrap()
}

fn task(id: &str, at: chrono::DateTime<Utc>, usage: Usage) -> TaskMetric {
    TaskMetric::new(id, "agent-a", 100, TaskResult::Success)
        .at(at)
        .usage(usage)
}

fn rows(store: &MetricsStorage) -> Vec<TaskMetric> {
    let mut rows = store.get_task_metrics(&Filter::new(), 1000).unwrap();
    rows.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    rows
}

const SONNET: Price = Price {
    input: 3.0,
    output: 15.0,
    cache_read: 0.3,
    cache_write: 3.75,
};

#[test]
fn usage_comes_back_completed_by_the_token_rule() {
    for s in stores() {
        let store = &s.store;
        let full = Usage::new()
            .input(3_100)
            .output(500)
            .cache_read(2_000)
            .cache_write(100)
            .model("claude-sonnet")
            .provider("anthropic");
        store
            .store_task_metrics(&[
                task("t1", day(2), full.clone()),
                task("t2", day(2), Usage::new().input(40)).tokens(100),
                task("t3", day(2), Usage::new().provider("openai")),
                task("t4", day(2), Usage::new()).tokens(7),
            ])
            .unwrap();
        let got = rows(store);
        assert_eq!(got[0].tokens_used, 3_600, "{}", s.backend);
        assert_eq!(got[0].usage, full.clone(), "{}", s.backend);
        assert_eq!(got[1].tokens_used, 100);
        assert_eq!(
            got[1].usage,
            Usage::new()
                .input(40)
                .output(60)
                .cache_read(0)
                .cache_write(0),
            "{}",
            s.backend
        );
        assert_eq!(
            got[2].usage,
            Usage::new().provider("openai"),
            "{}",
            s.backend
        );
        assert_eq!((got[3].tokens_used, got[3].usage.is_empty()), (7, true));
    }
}

#[test]
fn a_contradictory_record_is_refused_whole() {
    for s in stores() {
        let store = &s.store;
        let good = task("ok", day(2), Usage::new().input(10).output(5));
        let bad = task("bad", day(2), Usage::new().input(10).output(5)).tokens(16);
        let err = store.store_task_metrics(&[good.clone(), bad]).unwrap_err();
        match err {
            Error::InvalidInput { field, reason } => {
                assert_eq!(field, "tokens_used");
                assert!(reason.contains("10 + 5 = 15"), "{reason}");
                assert!(reason.contains("record 1"), "{reason}");
            }
            other => panic!("{}: {other}", s.backend),
        }
        let cached = task("c", day(2), Usage::new().input(10).cache_read(11));
        assert!(matches!(
            store.store_task_metric(&cached),
            Err(Error::InvalidInput {
                field: "cache_read_tokens",
                ..
            })
        ));
        assert!(rows(store).is_empty(), "{}: nothing is written", s.backend);
    }
}

#[test]
fn each_task_is_priced_at_the_price_of_its_day() {
    for s in stores() {
        let store = &s.store;
        store.set_price("claude-sonnet", day(1), SONNET).unwrap();
        // Corrected from the 10th: half the price.
        let half = Price {
            input: 1.5,
            output: 7.5,
            cache_read: 0.15,
            cache_write: 1.875,
        };
        store.set_price("claude-sonnet", day(10), half).unwrap();
        let usage = Usage::new()
            .model("claude-sonnet")
            .input(3_100)
            .output(500)
            .cache_read(2_000)
            .cache_write(100);
        let tasks = [
            // Before any price: none.
            task("a", day(1) - Duration::microseconds(1), usage.clone()),
            task("b", day(1), usage.clone()),
            task("c", day(10) - Duration::microseconds(1), usage.clone()),
            task("d", day(10), usage.clone()),
            // The bill wins over the price.
            task("e", day(12), usage.clone().cost(0.5)),
            // No breakdown: no cost.
            task("f", day(12), Usage::new().model("claude-sonnet")).tokens(1_000),
            // A model without a price.
            task("g", day(12), Usage::new().model("other").input(1).output(1)),
        ];
        // One at a time and as a batch take different paths on a server.
        store.store_task_metric(&tasks[0]).unwrap();
        store.store_task_metrics(&tasks[1..]).unwrap();
        let costs: Vec<Option<f64>> = rows(store).iter().map(|t| t.usage.cost_usd).collect();
        // 1,000 uncached × 3 + 500 × 15 + 2,000 × 0.3 + 100 × 3.75 µ$.
        let full = 0.011_475;
        let halved = 0.005_738; // 5,737.5 µ$, rounded half up
        assert_eq!(
            costs,
            vec![
                None,
                Some(full),
                Some(full),
                Some(halved),
                Some(0.5),
                None,
                None
            ],
            "{}",
            s.backend
        );
        // A batch of 16 or more goes straight into the table on a server,
        // priced on the way: the same costs. Stored again, with one new
        // task, only that one is new; a task twice in one batch, once.
        let big: Vec<TaskMetric> = (0..3)
            .flat_map(|round| {
                tasks.iter().map(move |t| {
                    let mut t = t.clone();
                    t.task_id = format!("{}-{round}", t.task_id);
                    t
                })
            })
            .collect();
        assert_eq!(store.store_task_metrics(&big).unwrap(), 21, "{}", s.backend);
        let of = |suffix: &str| -> Vec<Option<f64>> {
            rows(store)
                .iter()
                .filter(|t| t.task_id.ends_with(suffix))
                .map(|t| t.usage.cost_usd)
                .collect()
        };
        for round in 0..3 {
            assert_eq!(of(&format!("-{round}")), costs, "{}", s.backend);
        }
        let mut again = big.clone();
        again.push(task("h", day(11), usage.clone()));
        assert_eq!(
            store.store_task_metrics(&again).unwrap(),
            1,
            "{}",
            s.backend
        );
        let mut twice = big[..15].to_vec();
        twice.iter_mut().for_each(|t| t.task_id.push_str("-x"));
        twice.push(twice[3].clone());
        assert_eq!(
            store.store_task_metrics(&twice).unwrap(),
            15,
            "{}",
            s.backend
        );
        let all = rows(store);
        let cost_of = |id: &str| {
            all.iter()
                .find(|t| t.task_id == id)
                .map(|t| t.usage.cost_usd)
        };
        let copies: Vec<&TaskMetric> = all.iter().filter(|t| t.task_id.ends_with("-x")).collect();
        assert_eq!(copies.len(), 15, "{}", s.backend);
        for copy in copies {
            let original = copy.task_id.trim_end_matches("-x");
            assert_eq!(
                Some(copy.usage.cost_usd),
                cost_of(original),
                "{}",
                s.backend
            );
        }
        let prices = store.prices().unwrap();
        assert_eq!(prices.len(), 2);
        assert_eq!((prices[0].from, prices[0].price), (day(1), SONNET));
        assert_eq!((prices[1].from, prices[1].price), (day(10), half));
        // Setting the same start again replaces it.
        store.set_price("claude-sonnet", day(10), SONNET).unwrap();
        assert_eq!(store.prices().unwrap()[1].price, SONNET);
    }
}

#[test]
fn bad_prices_are_refused() {
    let store = MetricsStorage::temporary().unwrap();
    for (price, field) in [
        (
            Price {
                input: -1.0,
                ..SONNET
            },
            "input",
        ),
        (
            Price {
                output: f64::NAN,
                ..SONNET
            },
            "output",
        ),
        (
            Price {
                cache_read: 2e6,
                ..SONNET
            },
            "cache_read",
        ),
    ] {
        match store.set_price("m", day(1), price) {
            Err(Error::InvalidInput { field: got, .. }) => assert_eq!(got, field),
            other => panic!("{other:?}"),
        }
    }
    assert!(store.set_price(" ", day(1), SONNET).is_err());
    assert!(store.prices().unwrap().is_empty());
}

#[test]
fn usage_is_json_beside_the_other_fields() {
    let t = task(
        "t",
        day(2),
        Usage::new().input(10).output(5).model("m").cost(0.25),
    );
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["input_tokens"], 10);
    assert_eq!(json["model"], "m");
    assert_eq!(json["cost_usd"], 0.25);
    assert!(json.get("provider").is_none(), "unset fields are left out");
    let back: TaskMetric = serde_json::from_value(json).unwrap();
    assert_eq!(back, t);
    let plain = serde_json::to_value(TaskMetric::new("t", "a", 1, TaskResult::Success)).unwrap();
    assert!(plain.get("input_tokens").is_none());
    let typo = serde_json::json!({
        "task_id": "t", "agent_id": "a", "duration_ms": 1, "result": "success",
        "input_tokenz": 3
    });
    assert!(serde_json::from_value::<TaskMetric>(typo).is_err());
}

/// One random task of a cost case: agent, result, hours ago, input,
/// output, cache reads, how it is priced (0: the model's price, 1: a bill
/// in micro-dollars, 2: a model without a price, 3: no usage).
type CostTask = (u32, usize, i64, u64, u64, u64, u8, u64);

fn cost_task_strategy() -> impl Strategy<Value = CostTask> {
    (
        0..3u32,
        0..4usize,
        0..(30 * 24i64),
        0..50_000u64,
        0..8_000u64,
        0..100u64,
        0..4u8,
        0..2_000_000u64,
    )
}

/// The price the cases use (USD per million tokens), and its cost of a
/// breakdown in micro-dollars rounded half up, written out here as the
/// model of the store's rule.
const MODEL_PRICE: Price = Price {
    input: 2.5,
    output: 10.0,
    cache_read: 1.25,
    cache_write: 0.0,
};

fn model_cost(input: u64, output: u64, cache_read: u64) -> u64 {
    // Rates in micro-dollars per million tokens.
    let pico = (input - cache_read) * 2_500_000 + output * 10_000_000 + cache_read * 1_250_000;
    (pico + 500_000) / 1_000_000
}

/// The tasks of a case, each with the cost the model gives it.
fn cost_case(tasks: &[CostTask], now: chrono::DateTime<Utc>) -> Vec<(TaskMetric, Option<u64>)> {
    tasks
        .iter()
        .enumerate()
        .map(
            |(i, &(agent, result, hours, input, output, cached, how, bill))| {
                let cache_read = cached.min(input);
                let usage = Usage::new()
                    .input(input)
                    .output(output)
                    .cache_read(cache_read);
                let (usage, cost) = match how {
                    0 => (
                        usage.model("m"),
                        Some(model_cost(input, output, cache_read)),
                    ),
                    1 => (usage.model("m").cost(bill as f64 / 1e6), Some(bill)),
                    2 => (usage.model("unpriced"), None),
                    _ => (Usage::new(), None),
                };
                let task = TaskMetric::new(
                    format!("t{i}"),
                    format!("agent-{agent}"),
                    10,
                    TaskResult::ALL[result],
                )
                .at(now - Duration::hours(hours) - Duration::minutes(i as i64 % 60))
                .usage(usage);
                (task, cost)
            },
        )
        .collect()
}

/// Every cost answer of the store against the model: the sum, count,
/// unpriced count, extremes and median of the whole selection and of each
/// agent, exact to the micro-dollar.
fn assert_costs(store: &MetricsStorage, model: &[(TaskMetric, Option<u64>)], when: &str) {
    let costs = Filter::new().column(TaskColumn::Cost);
    let check = |filter: &Filter, selected: Vec<&(TaskMetric, Option<u64>)>, what: &str| {
        let priced: Vec<u64> = selected.iter().filter_map(|(_, c)| *c).collect();
        let unpriced = (selected.len() - priced.len()) as u64;
        let sum = store
            .aggregate_metrics(MetricKind::Task, AggregationType::Sum, filter)
            .unwrap();
        let want = (!priced.is_empty()).then(|| priced.iter().sum::<u64>() as f64 / 1e6);
        assert_eq!(sum.value, want, "{when} {what}: sum");
        assert_eq!(sum.count, priced.len() as u64, "{when} {what}: count");
        assert_eq!(sum.unpriced, Some(unpriced), "{when} {what}: unpriced");
        let max = store
            .aggregate_metrics(MetricKind::Task, AggregationType::Max, filter)
            .unwrap();
        let want = priced.iter().max().map(|m| *m as f64 / 1e6);
        assert_eq!(max.value, want, "{when} {what}: max");
        let median = store.percentile(MetricKind::Task, 0.5, filter).unwrap();
        let mut sorted: Vec<f64> = priced.iter().map(|c| *c as f64).collect();
        sorted.sort_by(f64::total_cmp);
        let want = match sorted.len() {
            0 => None,
            n => {
                let rank = 0.5 * (n - 1) as f64;
                let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
                Some((sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)) / 1e6)
            }
        };
        match (median.value, want) {
            (Some(got), Some(want)) => {
                assert!(
                    (got - want).abs() <= 1e-12 * want.max(1.0),
                    "{when} {what}: median {got} {want}"
                )
            }
            (got, want) => assert_eq!(got, want, "{when} {what}: median"),
        }
        assert_eq!(
            median.unpriced,
            Some(unpriced),
            "{when} {what}: median's unpriced"
        );
    };
    check(&costs, model.iter().collect(), "all");
    // Tokens by type, and cost per success, against the same model.
    let tokens = store.tokens_by_type(&Filter::new()).unwrap();
    let split: Vec<_> = model
        .iter()
        .filter_map(|(t, _)| t.usage.input_tokens.map(|i| (i, t)))
        .collect();
    assert_eq!(tokens.tasks, model.len() as u64, "{when}: tasks");
    assert_eq!(
        tokens.with_breakdown,
        split.len() as u64,
        "{when}: with breakdown"
    );
    let input: u64 = split.iter().map(|(i, _)| i).sum();
    let output: u64 = split
        .iter()
        .map(|(_, t)| t.usage.output_tokens.unwrap())
        .sum();
    let cache_read: u64 = split
        .iter()
        .map(|(_, t)| t.usage.cache_read_tokens.unwrap())
        .sum();
    assert_eq!(
        (tokens.input, tokens.output),
        (input, output),
        "{when}: input, output"
    );
    assert_eq!(
        (tokens.cache_read, tokens.cache_write),
        (cache_read, 0),
        "{when}: cache"
    );
    assert_eq!(
        (tokens.total, tokens.unsplit),
        (input + output, 0),
        "{when}: total"
    );
    let summary = store.summary(&Filter::new()).unwrap();
    let priced_total: Vec<u64> = model.iter().filter_map(|(_, c)| *c).collect();
    assert_eq!(
        summary.cost_usd,
        (!priced_total.is_empty()).then(|| priced_total.iter().sum::<u64>() as f64 / 1e6),
        "{when}: summary's cost"
    );
    assert_eq!(
        summary.unpriced,
        (model.len() - priced_total.len()) as u64,
        "{when}: summary"
    );
    let per = store.cost_per_success(None, &Filter::new()).unwrap();
    let priced: u64 = model.iter().filter_map(|(_, c)| *c).sum();
    let successes = model
        .iter()
        .filter(|(t, _)| t.result == TaskResult::Success)
        .count() as u64;
    assert_eq!(per.len(), 1);
    assert_eq!(
        per[0].cost_usd,
        priced as f64 / 1e6,
        "{when}: cost per success"
    );
    assert_eq!(per[0].successes, successes, "{when}: successes");
    assert_eq!(
        per[0].cost_per_success_usd,
        (successes > 0).then(|| priced as f64 / 1e6 / successes as f64),
        "{when}: per success"
    );
    let by_agent = store
        .cost_per_success(Some(GroupBy::Agent), &Filter::new())
        .unwrap();
    for line in &by_agent {
        let of_agent = |t: &TaskMetric| Some(t.agent_id.as_str()) == line.id.as_deref();
        let cost: u64 = model
            .iter()
            .filter(|(t, _)| of_agent(t))
            .filter_map(|(_, c)| *c)
            .sum();
        let unpriced = model
            .iter()
            .filter(|(t, c)| of_agent(t) && c.is_none())
            .count() as u64;
        assert_eq!(
            (line.cost_usd, line.unpriced),
            (cost as f64 / 1e6, unpriced),
            "{when}: {line:?}"
        );
    }
    let by_agent = store
        .aggregate_by(
            MetricKind::Task,
            AggregationType::Sum,
            GroupBy::Agent,
            &costs,
        )
        .unwrap();
    for agent in 0..3 {
        let name = format!("agent-{agent}");
        let selected: Vec<_> = model.iter().filter(|(t, _)| t.agent_id == name).collect();
        check(&costs.clone().agent(&name), selected.clone(), &name);
        let group = by_agent
            .iter()
            .find(|g| g.key.as_deref() == Some(name.as_str()));
        match group {
            Some(g) => {
                let priced: Vec<u64> = selected.iter().filter_map(|(_, c)| *c).collect();
                let want = (!priced.is_empty()).then(|| priced.iter().sum::<u64>() as f64 / 1e6);
                assert_eq!(g.value.value, want, "{when} {name}: grouped sum");
                assert_eq!(
                    g.value.unpriced,
                    Some((selected.len() - priced.len()) as u64),
                    "{when} {name}: grouped unpriced"
                );
            }
            None => assert!(selected.is_empty(), "{when} {name}: group missing"),
        }
    }
}

fn costs_survive_retention(store: &MetricsStorage, tasks: &[CostTask]) {
    let now = swarm_metrics::now();
    store
        .set_price("m", now - Duration::days(400), MODEL_PRICE)
        .unwrap();
    let model = cost_case(tasks, now);
    let batch: Vec<TaskMetric> = model.iter().map(|(t, _)| t.clone()).collect();
    store.store_task_metrics(&batch).unwrap();
    assert_costs(store, &model, "raw");
    let policy = RetentionPolicy {
        raw: Some(Duration::days(2)),
        hourly: Some(Duration::days(10)),
        daily: None,
        chunk_rows: 50,
    };
    store.apply_retention(&policy).unwrap();
    assert_costs(store, &model, "after retention");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Costs are exact to the micro-dollar before and after retention
    /// folds the raw rows into hourly and daily rollups, on every engine.
    #[test]
    fn cost_answers_are_exact_before_and_after_retention(
        tasks in prop::collection::vec(cost_task_strategy(), 0..150)
    ) {
        for s in stores() {
            costs_survive_retention(&s.store, &tasks);
        }
    }
}

#[test]
fn rollups_of_many_tasks_keep_cost_sums_exact() {
    // Past 512 tasks an hour, a rollup keeps statistics: sums stay exact.
    let tasks: Vec<CostTask> = (0..1_200)
        .map(|i| {
            (
                i % 3,
                (i % 4) as usize,
                72,
                10_000 + u64::from(i),
                900,
                50,
                (i % 4) as u8,
                1_234 * u64::from(i),
            )
        })
        .collect();
    for s in stores() {
        costs_survive_retention(&s.store, &tasks);
    }
}

#[test]
fn recompute_prices_raw_tasks_again_and_counts_the_folded_ones() {
    for s in stores() {
        let store = &s.store;
        let now = swarm_metrics::now();
        let usage = Usage::new().model("m").input(1_000_000).output(0);
        let tasks = [
            // Folded by the retention below: keeps having no cost.
            task("old", now - Duration::days(5), usage.clone()),
            task("new", now - Duration::hours(1), usage.clone()),
            task("billed", now - Duration::hours(1), usage.clone().cost(0.5)),
            task(
                "other",
                now - Duration::hours(1),
                Usage::new().model("x").input(5),
            ),
        ];
        store.store_task_metrics(&tasks).unwrap();
        store
            .apply_retention(&RetentionPolicy {
                raw: Some(Duration::days(2)),
                ..RetentionPolicy::default()
            })
            .unwrap();
        let costs = Filter::new().column(TaskColumn::Cost);
        let sum = |store: &MetricsStorage| {
            store
                .aggregate_metrics(MetricKind::Task, AggregationType::Sum, &costs)
                .unwrap()
        };
        assert_eq!(
            (sum(store).value, sum(store).unpriced),
            (Some(0.5), Some(3))
        );
        store
            .set_price(
                "m",
                now - Duration::days(30),
                Price {
                    input: 2.0,
                    ..Price::default()
                },
            )
            .unwrap();
        let report = store.recompute_costs(now - Duration::days(30)).unwrap();
        assert_eq!(
            (report.repriced, report.now_unpriced, report.billed),
            (2, 1, 1),
            "{}: {report:?}",
            s.backend
        );
        assert_eq!(
            (report.folded_tasks, report.folded_rollups),
            (1, 1),
            "{}",
            s.backend
        );
        // 1M input tokens at 2 USD; the bill kept; the folded task and the
        // model without a price stay unpriced.
        let after = sum(store);
        assert_eq!(
            (after.value, after.unpriced),
            (Some(2.5), Some(2)),
            "{}",
            s.backend
        );
        // Running it again changes nothing.
        assert_eq!(
            store.recompute_costs(now - Duration::days(30)).unwrap(),
            report
        );
        assert_eq!(sum(store), after);
    }
}

#[test]
fn the_command_line_shows_what_the_library_computes() {
    use assert_cmd::Command;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    // The command line on `db`, `stdin` given it; its output, once it
    // succeeded.
    let cli = |db: &std::path::Path, args: &[&str], stdin: &str| {
        let out = Command::cargo_bin("swarm-metrics")
            .unwrap()
            .arg("--db")
            .arg(db)
            .args(args)
            .write_stdin(stdin)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    };
    let run = |args: &[&str]| cli(&db, args, "");
    let prices = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/prices.toml");
    let lines = [
        r#"{"kind":"task","task_id":"a","agent_id":"a1","duration_ms":5,"result":"success","input_tokens":12000,"output_tokens":800,"cache_read_tokens":4000,"model":"gpt-4o","timestamp":"2026-03-01T10:00:00Z"}"#,
        r#"{"kind":"task","task_id":"b","agent_id":"a1","duration_ms":5,"result":"failure","input_tokens":3000,"output_tokens":100,"model":"claude-sonnet-4","timestamp":"2026-03-01T11:00:00Z"}"#,
        r#"{"kind":"task","task_id":"c","agent_id":"a2","duration_ms":5,"result":"success","tokens_used":50,"model":"gpt-4o","timestamp":"2026-03-01T12:00:00Z"}"#,
        r#"{"kind":"task","task_id":"d","agent_id":"a2","duration_ms":5,"result":"success","input_tokens":10,"output_tokens":10,"cost_usd":0.25,"timestamp":"2026-03-01T12:00:00Z"}"#,
    ];
    run(&["prices", "import", prices]);
    let listed: serde_json::Value =
        serde_json::from_str(&run(&["--json", "prices", "list"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 4);
    cli(&db, &["import", "-"], &lines.join("\n"));
    // a: 8,000 uncached × 2.5 + 800 × 10 + 4,000 × 1.25 = 33,000 µ$;
    // b: 3,000 × 3 + 100 × 15 = 10,500 µ$; c: no breakdown; d: billed.
    let store = MetricsStorage::open(&db).unwrap();
    let costs = Filter::new().column(TaskColumn::Cost);
    let library = store
        .aggregate_metrics(MetricKind::Task, AggregationType::Sum, &costs)
        .unwrap();
    assert_eq!(library.value, Some(0.0435 + 0.25));
    let answer: serde_json::Value = serde_json::from_str(&run(&[
        "--json",
        "aggregate",
        "--agg",
        "sum",
        "--metric-type",
        "task_cost",
    ]))
    .unwrap();
    assert_eq!(answer["value"].as_f64(), library.value, "{answer}");
    assert_eq!(answer["unpriced"], 1, "{answer}");
    let per: serde_json::Value =
        serde_json::from_str(&run(&["--json", "cost-per-success", "--by", "agent"])).unwrap();
    let lib = store
        .cost_per_success(Some(GroupBy::Agent), &Filter::new())
        .unwrap();
    assert_eq!(per, serde_json::to_value(&lib).unwrap());
    assert_eq!(per[0]["id"], "a1");
    assert_eq!(per[0]["cost_per_success_usd"], 0.0435);
    assert_eq!(per[1]["unpriced"], 1);
    let tokens: serde_json::Value = serde_json::from_str(&run(&["--json", "tokens"])).unwrap();
    assert_eq!(
        tokens,
        serde_json::to_value(store.tokens_by_type(&Filter::new()).unwrap()).unwrap()
    );
    assert_eq!(tokens["cache_read"], 4000);
    // The rows come back with their usage.
    let rows = run(&["--json", "query", "--task", "a"]);
    assert!(rows.contains(r#""cost_usd":0.033"#), "{rows}");
    // Prometheus shows the same costs per agent, swarm and model.
    let text = run(&["export", "--format", "prometheus"]);
    for line in [
        r#"swarm_cost_usd{agent="a1",swarm="",model="gpt-4o"} 0.033"#,
        r#"swarm_cost_usd{agent="a1",swarm="",model="claude-sonnet-4"} 0.0105"#,
        r#"swarm_tasks_unpriced{agent="a2",swarm="",model="gpt-4o"} 1"#,
        r#"swarm_cost_usd{agent="a2",swarm="",model=""} 0.25"#,
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    // An export imported elsewhere keeps every task's usage and cost.
    let jsonl = run(&["export", "--format", "jsonl"]);
    let copy = dir.path().join("copy.db");
    cli(&copy, &["import", "-"], &jsonl);
    let copied = MetricsStorage::open(&copy).unwrap();
    assert_eq!(
        copied
            .aggregate_metrics(MetricKind::Task, AggregationType::Sum, &costs)
            .unwrap(),
        library
    );
    assert_eq!(
        copied.tokens_by_type(&Filter::new()).unwrap(),
        store.tokens_by_type(&Filter::new()).unwrap()
    );
}

#[test]
fn per_model_answers_hold_within_the_raw_horizon() {
    for s in stores() {
        let store = &s.store;
        let now = swarm_metrics::now();
        store
            .set_price(
                "m1",
                now - Duration::days(30),
                Price {
                    input: 1.0,
                    ..Price::default()
                },
            )
            .unwrap();
        store
            .set_price(
                "m2",
                now - Duration::days(30),
                Price {
                    input: 2.0,
                    ..Price::default()
                },
            )
            .unwrap();
        let usage = |model: &str| Usage::new().model(model).provider("p").input(1_000_000);
        let tasks = [
            task("a", now - Duration::hours(1), usage("m1")),
            task("b", now - Duration::hours(2), usage("m1").provider("q")),
            task("c", now - Duration::hours(1), usage("m2")),
            task("d", now - Duration::hours(1), Usage::new().provider("p")),
            // Folded below: its model is not kept.
            task("e", now - Duration::days(5), usage("m2")),
        ];
        store.store_task_metrics(&tasks).unwrap();
        let check = |want: &[(Option<&str>, f64, u64)], when: &str| {
            let lines = store
                .cost_per_success(Some(GroupBy::Model), &Filter::new())
                .unwrap();
            let got: Vec<(Option<&str>, f64, u64)> = lines
                .iter()
                .map(|l| (l.id.as_deref(), l.cost_usd, l.successes))
                .collect();
            assert_eq!(got, want, "{} {when}", s.backend);
            let costs = Filter::new().column(TaskColumn::Cost);
            let sums = store
                .aggregate_by(
                    MetricKind::Task,
                    AggregationType::Sum,
                    GroupBy::Model,
                    &costs,
                )
                .unwrap();
            let sums: Vec<(Option<&str>, Option<f64>)> = sums
                .iter()
                .map(|g| (g.key.as_deref(), g.value.value))
                .collect();
            let want: Vec<(Option<&str>, Option<f64>)> = want
                .iter()
                .map(|(k, c, _)| (*k, (*c > 0.0).then_some(*c)))
                .collect();
            assert_eq!(sums, want, "{} {when}", s.backend);
        };
        // One model from two providers is one line; no model is None.
        check(
            &[(None, 0.0, 1), (Some("m1"), 2.0, 2), (Some("m2"), 4.0, 2)],
            "raw",
        );
        store
            .apply_retention(&RetentionPolicy {
                raw: Some(Duration::days(2)),
                ..RetentionPolicy::default()
            })
            .unwrap();
        check(
            &[(None, 2.0, 2), (Some("m1"), 2.0, 2), (Some("m2"), 2.0, 1)],
            "folded",
        );
    }
}

#[test]
fn cost_alert_rules_fire_on_spend_over_the_budget() {
    let rules = swarm_metrics::Rules::from_toml_str(
        r#"
        [[rule]]
        name = "spend"
        kind = "cost"
        group_by = "agent"
        window = "1h"
        above_usd = 1.5
        "#,
    )
    .unwrap();
    assert!(swarm_metrics::Rules::from_toml_str(
        "[[rule]]\nname = \"x\"\nkind = \"cost\"\nwindow = \"1h\"\nabove_ms = 3"
    )
    .is_err());
    for s in stores() {
        let store = &s.store;
        let now = swarm_metrics::now();
        let billed = |id: &str, agent: &str, usd: f64, minutes: i64| {
            TaskMetric::new(id, agent, 1, TaskResult::Success)
                .at(now - Duration::minutes(minutes))
                .usage(Usage::new().cost(usd))
        };
        store
            .store_task_metrics(&[
                billed("a1", "big", 1.0, 10),
                billed("a2", "big", 0.75, 20),
                // Outside the window.
                billed("a3", "small", 5.0, 90),
                billed("a4", "small", 0.5, 5),
                TaskMetric::new("a5", "small", 1, TaskResult::Success)
                    .at(now - Duration::minutes(5)),
            ])
            .unwrap();
        let findings = store.alert_findings(&rules, now).unwrap();
        let of = |agent: &str| {
            findings
                .iter()
                .find(|f| f.group.as_deref() == Some(agent))
                .unwrap_or_else(|| panic!("{}: no finding for {agent}", s.backend))
        };
        assert_eq!(
            of("big").verdict,
            swarm_metrics::Verdict::Holds,
            "{}",
            s.backend
        );
        assert_eq!(of("big").figures.cost_usd, Some(1.75));
        assert_eq!(
            of("small").verdict,
            swarm_metrics::Verdict::Clear,
            "{}",
            s.backend
        );
        assert_eq!(
            (
                of("small").figures.cost_usd,
                of("small").figures.unpriced,
                of("small").figures.tasks
            ),
            (Some(0.5), Some(1), 2)
        );
        assert!(of("big")
            .figures
            .describe()
            .contains("cost $1.75 of 2 tasks"));
    }
}

#[test]
fn agents_rank_by_what_a_success_costs() {
    for s in stores() {
        let store = &s.store;
        let now = swarm_metrics::now();
        let t = |id: &str, agent: &str, result: TaskResult, usd: Option<f64>| {
            let usage = usd.map_or_else(Usage::new, |usd| Usage::new().cost(usd));
            TaskMetric::new(id, agent, 1, result)
                .at(now - Duration::minutes(5))
                .usage(usage)
        };
        store
            .store_task_metrics(&[
                t("1", "cheap", TaskResult::Success, Some(0.125)),
                t("2", "cheap", TaskResult::Success, Some(0.125)),
                t("3", "cheap", TaskResult::Failure, None),
                t("4", "pricey", TaskResult::Success, Some(0.5)),
                t("5", "pricey", TaskResult::Failure, Some(0.5)),
                t("6", "failing", TaskResult::Failure, Some(0.25)),
                t("7", "unpriced", TaskResult::Success, None),
            ])
            .unwrap();
        let ranking = |order| {
            store
                .rank_agents(
                    swarm_metrics::RankBy::CostPerSuccess,
                    order,
                    10,
                    1,
                    &Filter::new(),
                )
                .unwrap()
                .into_iter()
                .map(|r| (r.agent_id, r.score, r.unpriced))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ranking(swarm_metrics::Order::BestFirst),
            vec![
                ("cheap".to_owned(), 0.125, Some(1)),
                ("pricey".to_owned(), 1.0, Some(0)),
                ("failing".to_owned(), f64::INFINITY, Some(0)),
            ],
            "{}",
            s.backend
        );
        assert_eq!(ranking(swarm_metrics::Order::WorstFirst)[0].0, "failing");
    }
}

#[test]
fn the_report_shows_the_costs_the_library_computes() {
    for s in stores() {
        let store = &s.store;
        let now = swarm_metrics::now();
        let tasks: Vec<TaskMetric> = (0..40)
            .map(|i| {
                let usage = match i % 4 {
                    0 => Usage::new(),
                    n => Usage::new().cost(f64::from(n) * 0.125 + f64::from(i) * 1e-6),
                };
                TaskMetric::new(
                    format!("t{i}"),
                    format!("agent-{}", i % 3),
                    10,
                    TaskResult::Success,
                )
                .at(now - Duration::minutes(i64::from(i) * 7))
                .usage(usage)
            })
            .collect();
        store.store_task_metrics(&tasks).unwrap();
        let report = store.report(&swarm_metrics::ReportOptions::new()).unwrap();
        let costs = Filter::new().column(TaskColumn::Cost);
        let total = store
            .aggregate_metrics(MetricKind::Task, AggregationType::Sum, &costs)
            .unwrap();
        assert_eq!(report.summary.cost_usd, total.value, "{}", s.backend);
        assert_eq!(report.summary.unpriced, 10);
        for row in &report.agents {
            let own = store
                .aggregate_metrics(
                    MetricKind::Task,
                    AggregationType::Sum,
                    &costs.clone().agent(&row.agent_id),
                )
                .unwrap();
            assert_eq!(row.cost_usd, own.value, "{} {}", s.backend, row.agent_id);
        }
        // Every bucket of the chart together is the whole, to the micro-dollar.
        let micros: i64 = report
            .costs
            .iter()
            .map(|c| (c.cost.value.unwrap_or(0.0) * 1e6).round() as i64)
            .sum();
        assert_eq!(
            micros,
            (total.value.unwrap() * 1e6).round() as i64,
            "{}",
            s.backend
        );
        let unpriced: u64 = report
            .costs
            .iter()
            .map(|c| c.cost.unpriced.unwrap_or(0))
            .sum();
        assert_eq!(unpriced, 10);
        let page = report.to_html();
        assert!(
            page.contains(&format!(
                "id=\"cost\" data-value=\"{}\"",
                total.value.unwrap()
            )),
            "{}",
            s.backend
        );
        assert!(page.contains("<section id=\"costs\"><h2>Cost over time</h2>"));
    }
}

#[test]
fn the_generic_json_calls_carry_usage() {
    for s in stores() {
        let store = &s.store;
        store
            .store_metric(
                MetricKind::Task,
                &serde_json::json!({
                    "task_id": "t", "agent_id": "a", "duration_ms": 5, "result": "success",
                    "input_tokens": 100, "output_tokens": 20, "model": "m", "cost_usd": 0.02
                }),
            )
            .unwrap();
        let err = store
            .store_metric(
                MetricKind::Task,
                &serde_json::json!({
                    "task_id": "u", "agent_id": "a", "duration_ms": 5, "result": "success",
                    "tokens_used": 3, "input_tokens": 100
                }),
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "input_tokens",
                    ..
                }
            ),
            "{err}"
        );
        let rows = store
            .query_metrics(MetricKind::Task, &serde_json::json!({}), None, 10)
            .unwrap();
        assert_eq!(rows.len(), 1, "{}", s.backend);
        assert_eq!(rows[0]["tokens_used"], 120);
        assert_eq!(rows[0]["output_tokens"], 20);
        assert_eq!(rows[0]["model"], "m");
        assert_eq!(rows[0]["cost_usd"], 0.02);
    }
}

#[test]
fn compare_weighs_the_costs_of_two_selections() {
    for s in stores() {
        let store = &s.store;
        let now = swarm_metrics::now();
        let mut tasks = Vec::new();
        for i in 0..12 {
            let at = now - Duration::minutes(i);
            // a's tasks cost 0.10–0.21, b's 0.50–0.61; one of a's has none.
            let a_usage = if i == 0 {
                Usage::new()
            } else {
                Usage::new().cost(0.1 + i as f64 * 0.01)
            };
            tasks.push(
                TaskMetric::new(format!("a{i}"), "a", 10, TaskResult::Success)
                    .at(at)
                    .usage(a_usage),
            );
            let b_result = if i % 2 == 0 {
                TaskResult::Success
            } else {
                TaskResult::Failure
            };
            tasks.push(
                TaskMetric::new(format!("b{i}"), "b", 10, b_result)
                    .at(at)
                    .usage(Usage::new().cost(0.5 + i as f64 * 0.01)),
            );
        }
        store.store_task_metrics(&tasks).unwrap();
        let c = store
            .compare(&Filter::new().agent("a"), &Filter::new().agent("b"))
            .unwrap();
        let cost = c.cost.expect("both sides have costs");
        let sum = |from: f64, n: i64| {
            (0..n)
                .map(|i| ((from + i as f64 * 0.01) * 1e6).round() as u64)
                .sum::<u64>() as f64
                / 1e6
        };
        assert_eq!(cost.total_a, sum(0.11, 11), "{}", s.backend);
        assert_eq!(cost.total_b, sum(0.5, 12), "{}", s.backend);
        assert_eq!((cost.unpriced_a, cost.unpriced_b), (1, 0));
        assert_eq!(cost.per_success_a, Some(cost.total_a / 12.0));
        assert_eq!(cost.per_success_b, Some(cost.total_b / 6.0));
        assert_eq!((cost.median_a, cost.median_b), (0.16, 0.555));
        assert!(cost.p_value < 0.001, "{cost:?}");
        // Without costs on a side there is nothing to compare.
        let none = store
            .compare(
                &Filter::new().agent("a").task("a0"),
                &Filter::new().agent("b"),
            )
            .unwrap();
        assert_eq!(none.cost, None);
        assert!(serde_json::to_value(&none).unwrap().get("cost").is_none());
    }
}

#[test]
fn regressions_find_the_agent_whose_tasks_cost_more() {
    let rules = swarm_metrics::Rules::from_toml_str(
        r#"
        [[rule]]
        name = "worse"
        kind = "regression"
        group_by = "agent"
        window = "1h"
        baseline = "1d"
        min_tasks = 5
        "#,
    )
    .unwrap();
    for s in stores() {
        let store = &s.store;
        let now = swarm_metrics::now();
        let mut tasks = Vec::new();
        // Both agents succeed as often and take as long in both windows;
        // only `pricier`'s tasks cost three times more in the last hour.
        for i in 0..30i64 {
            for (window, at) in [
                ("now", now - Duration::minutes(1 + i)),
                ("then", now - Duration::hours(3) - Duration::minutes(i)),
            ] {
                let result = if i % 10 == 0 {
                    TaskResult::Failure
                } else {
                    TaskResult::Success
                };
                let cost = 0.1 + i as f64 * 0.001;
                let pricier_cost = if window == "now" { cost * 3.0 } else { cost };
                tasks.push(
                    TaskMetric::new(format!("s-{window}-{i}"), "steady", 100 + i as u64, result)
                        .swarm("s1")
                        .at(at)
                        .usage(Usage::new().cost(cost)),
                );
                tasks.push(
                    TaskMetric::new(format!("p-{window}-{i}"), "pricier", 100 + i as u64, result)
                        .swarm("s2")
                        .at(at)
                        .usage(Usage::new().cost(pricier_cost)),
                );
            }
        }
        // A task without a cost changes the counts, not the costs tested.
        tasks.push(
            TaskMetric::new("p-unpriced", "pricier", 115, TaskResult::Success)
                .swarm("s2")
                .at(now - Duration::minutes(40)),
        );
        store.store_task_metrics(&tasks).unwrap();
        let current = swarm_metrics::TimeRange::new(now - Duration::hours(1), now).unwrap();
        let baseline =
            swarm_metrics::TimeRange::new(now - Duration::hours(25), now - Duration::hours(1))
                .unwrap();
        let found = store.regressions(current, baseline, 0.05).unwrap();
        let what: Vec<(GroupBy, &str, swarm_metrics::RegressedMeasure)> = found
            .iter()
            .map(|r| (r.group, r.id.as_str(), r.measure))
            .collect();
        use swarm_metrics::RegressedMeasure::Cost;
        assert_eq!(
            what,
            [
                (GroupBy::Agent, "pricier", Cost),
                (GroupBy::Swarm, "s2", Cost)
            ],
            "{}",
            s.backend
        );
        let micros = |usd: f64| (usd * 1e6).round() as u64;
        let median = |scale: f64| {
            let mut costs: Vec<u64> = (0..30)
                .map(|i| micros((0.1 + i as f64 * 0.001) * scale))
                .collect();
            costs.sort_unstable();
            (costs[14] + costs[15]) as f64 / 2e6
        };
        let r = &found[0];
        assert_eq!(
            (r.baseline, r.current),
            (median(1.0), median(3.0)),
            "{}",
            s.backend
        );
        assert!(r.q_value <= 0.05 && r.p_value <= r.q_value, "{r:?}");
        let cost = r.comparison.cost.expect("both windows have costs");
        let total = |scale: f64| {
            (0..30)
                .map(|i| micros((0.1 + i as f64 * 0.001) * scale))
                .sum::<u64>() as f64
                / 1e6
        };
        assert_eq!((cost.total_a, cost.total_b), (total(3.0), total(1.0)));
        assert_eq!((cost.unpriced_a, cost.unpriced_b), (1, 0));
        assert_eq!(cost.per_success_a, Some(total(3.0) / 28.0));
        // The regression rule watches success rates and durations: a rise
        // in cost alone does not fire it.
        let findings = store.alert_findings(&rules, now).unwrap();
        assert_eq!(findings.len(), 2, "{}", s.backend);
        for f in &findings {
            assert_eq!(
                f.verdict,
                swarm_metrics::Verdict::Clear,
                "{}: {f:?}",
                s.backend
            );
        }
    }
}
