//! What tasks cost: the token rule, prices with validity dates, and the
//! cost each task is stored with, on every engine this build has (the
//! file always; PostgreSQL with the `postgres` feature, compared with the
//! file's answers).

mod common;

use chrono::{Duration, TimeZone, Utc};
use common::server::stores;
use swarm_metrics::{Error, Filter, MetricsStorage, Price, TaskMetric, TaskResult, Usage};

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
