//! Many threads storing at once: no busy or locked error reaches a caller,
//! group commits keep every batch whole, and the counts come out exact.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Duration;
use swarm_metrics::{
    AgentMetric, AggregationType, Error, Filter, MetricKind, MetricType, MetricsStorage,
    TaskMetric, TaskResult,
};

const THREADS: usize = 8;
const STORES_PER_THREAD: usize = 1_500;

#[test]
fn concurrent_single_stores_with_a_reader_and_cleanup_lose_nothing() {
    let store = MetricsStorage::temporary().unwrap();
    // Old rows for the cleanup thread to delete while writers run.
    let old = swarm_metrics::now() - Duration::days(60);
    let stale: Vec<_> = (0..20_000)
        .map(|i| TaskMetric::new(format!("old-{i}"), "agent-old", 5, TaskResult::Failure).at(old))
        .collect();
    store.store_task_metrics(&stale).unwrap();

    let writers_done = AtomicBool::new(false);
    let (deleted, reads) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = &store;
                s.spawn(move || {
                    for i in 0..STORES_PER_THREAD {
                        let result = if i % 4 == 0 {
                            TaskResult::Failure
                        } else {
                            TaskResult::Success
                        };
                        let task =
                            TaskMetric::new(format!("t{t}-{i}"), format!("agent-{t}"), 10, result)
                                .swarm(format!("swarm-{}", t % 2));
                        assert!(store.store_task_metric(&task).unwrap());
                    }
                })
            })
            .collect();
        let reader = s.spawn(|| {
            let mut reads = 0;
            while !writers_done.load(Ordering::Relaxed) {
                store
                    .get_task_metrics(&Filter::new().agent("agent-3"), 100)
                    .unwrap();
                store.success_rate(&Filter::new().swarm("swarm-1")).unwrap();
                reads += 1;
            }
            reads
        });
        let cleaner = s.spawn(|| store.cleanup_old_metrics(30).unwrap());
        for w in writers {
            w.join().unwrap();
        }
        writers_done.store(true, Ordering::Relaxed);
        (cleaner.join().unwrap(), reader.join().unwrap())
    });
    assert_eq!(deleted.task_metrics, 20_000);
    assert!(reads > 0);

    let total = THREADS * STORES_PER_THREAD;
    let all = store.success_rate(&Filter::new()).unwrap();
    assert_eq!(all.total as usize, total);
    assert_eq!(all.failure as usize, total / 4);
    for t in 0..THREADS {
        let agent = store
            .success_rate(&Filter::new().agent(format!("agent-{t}")))
            .unwrap();
        assert_eq!(agent.total as usize, STORES_PER_THREAD);
    }
    let swarm0 = store.success_rate(&Filter::new().swarm("swarm-0")).unwrap();
    assert_eq!(swarm0.total as usize, total / 2);
}

#[test]
fn a_failing_batch_in_a_shared_commit_is_undone_alone() {
    let store = MetricsStorage::temporary().unwrap();
    // A trigger makes SQLite itself refuse any agent metric of value 13, a
    // failure that validation cannot foresee (like a full disk).
    {
        let conn = rusqlite::Connection::open(store.path()).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER refuse_13 BEFORE INSERT ON agent_metrics WHEN NEW.value = 13 \
             BEGIN SELECT RAISE(ABORT, 'value 13 refused'); END;",
        )
        .unwrap();
    }
    let outcomes: Vec<(bool, Result<Vec<i64>, Error>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .flat_map(|t| (0..40).map(move |b| (t, b)))
            .collect::<Vec<_>>()
            .chunks(40)
            .map(|jobs| {
                let store = &store;
                let jobs = jobs.to_vec();
                s.spawn(move || {
                    jobs.into_iter()
                        .map(|(t, b)| {
                            let poisoned = (t + b) % 7 == 0;
                            let batch: Vec<_> = (0..10)
                                .map(|i| {
                                    let value = if poisoned && i == 9 { 13.0 } else { i as f64 };
                                    AgentMetric::new(
                                        format!("agent-{t}"),
                                        MetricType::AgentThroughput,
                                        value,
                                    )
                                })
                                .collect();
                            (poisoned, store.store_agent_metrics(&batch))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut expected_rows = 0;
    for (poisoned, outcome) in &outcomes {
        match outcome {
            Ok(ids) => {
                assert!(!poisoned, "a poisoned batch was stored");
                assert_eq!(ids.len(), 10);
                expected_rows += 10;
            }
            Err(err) => {
                assert!(poisoned, "a good batch failed: {err}");
                assert!(err.to_string().contains("value 13 refused"), "{err}");
            }
        }
    }
    let count = store
        .aggregate_metrics(MetricKind::Agent, AggregationType::Count, &Filter::new())
        .unwrap();
    assert_eq!(count.count, expected_rows);
    // Every stored batch is whole: values 0..=9 each once per batch.
    let sum = store
        .aggregate_metrics(MetricKind::Agent, AggregationType::Sum, &Filter::new())
        .unwrap();
    assert_eq!(sum.value, Some(45.0 * (expected_rows / 10) as f64));
}
