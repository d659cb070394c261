//! Many threads storing at once: no busy or locked error reaches a caller,
//! group commits keep every batch whole, and every answer is exact, also
//! those read while writers and a cleaner run. The `consistent` tests run
//! on every backend the build has.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::Duration;
use common::server::stores;
use swarm_metrics::{
    AgentMetric, AggregationType, BucketValue, EmptyBuckets, Error, Filter, GroupBy, Measure,
    MetricKind, MetricType, MetricsStorage, RetentionPolicy, SuccessRate, TaskMetric, TaskResult,
    TimeRange,
};

const THREADS: usize = 8;
const STORES_PER_THREAD: usize = 20_000;

/// What a reader may see of one writer's tasks while it stores: the first
/// `n` of them, for some `n` from what the writer had stored (and been
/// told so) before the read began to what it had stored after the read
/// ended, plus the one store it may have had committed but not yet
/// returned; with the outcome counts of exactly those tasks (task `i` has
/// result `ALL[i % 4]`).
fn check_prefix(rate: &SuccessRate, before: u64, after: u64, who: &str) {
    let n = rate.total;
    assert!(
        (before..=after + 1).contains(&n),
        "{who}: read {n} tasks, but {before} to {after} were stored"
    );
    let of = |k: u64| (n + 3 - k) / 4;
    assert_eq!(
        (rate.success, rate.failure, rate.timeout, rate.cancelled),
        (of(0), of(1), of(2), of(3)),
        "{who}: outcome counts of {n} tasks"
    );
}

/// Writer `w`'s task `i`: on agent `agent-{w}`, lasting `i` ms, with
/// result `ALL[i % 4]` (what [`check_prefix`] expects).
fn writer_task(w: usize, i: usize) -> TaskMetric {
    TaskMetric::new(
        format!("w{w}-{i}"),
        format!("agent-{w}"),
        i as u64,
        TaskResult::ALL[i % 4],
    )
}

/// Stores writer `w`'s tasks one at a time while `go` holds, counting each
/// in `stored` once the store has returned. Any error, busy or locked
/// included, fails the test.
fn store_while(store: &MetricsStorage, w: usize, stored: &AtomicU64, go: impl Fn() -> bool) {
    let mut i = 0;
    while go() {
        assert!(store.store_task_metric(&writer_task(w, i)).unwrap());
        stored.fetch_add(1, Ordering::SeqCst);
        i += 1;
    }
}

/// Once the writers have stopped: writer `w`'s agent `agent-{w}` has
/// exactly the tasks it stored, with their outcomes.
fn check_every_writer(store: &MetricsStorage, stored: &[AtomicU64]) {
    for (w, n) in stored.iter().enumerate() {
        let n = n.load(Ordering::SeqCst);
        let agent = format!("agent-{w}");
        check_prefix(
            &store.success_rate(&Filter::new().agent(&agent)).unwrap(),
            n,
            n,
            &agent,
        );
    }
}

#[test]
fn eight_writers_a_reader_and_a_cleaner_see_exact_answers_and_lose_nothing() {
    let store = MetricsStorage::temporary().unwrap();
    // Old rows for the cleaner to delete while writers run.
    let old = swarm_metrics::now() - Duration::days(90);
    let stale: Vec<_> = (0..30_000)
        .map(|i| TaskMetric::new(format!("old-{i}"), "old-agent", 1, TaskResult::Success).at(old))
        .collect();
    store.store_task_metrics(&stale).unwrap();

    // How many tasks each writer has stored (acknowledged) so far.
    let stored: Vec<AtomicU64> = (0..THREADS).map(|_| AtomicU64::new(0)).collect();
    let done = AtomicBool::new(false);
    let (cleaned, reads) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..THREADS)
            .map(|w| {
                let (store, stored) = (&store, &stored);
                s.spawn(move || {
                    for i in 0..STORES_PER_THREAD {
                        let task = writer_task(w, i).swarm(format!("swarm-{}", w % 3));
                        // Any error, busy or locked included, fails the test.
                        assert!(store.store_task_metric(&task).unwrap());
                        stored[w].fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let reader = s.spawn(|| {
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                let w = reads % THREADS;
                let before = stored[w].load(Ordering::SeqCst);
                let agent = format!("agent-{w}");
                let rate = store.success_rate(&Filter::new().agent(&agent)).unwrap();
                let rows = store
                    .get_task_metrics(&Filter::new().agent(&agent), 50)
                    .unwrap();
                let after = stored[w].load(Ordering::SeqCst);
                check_prefix(&rate, before, after, &agent);
                // The newest rows are the writer's last ones, newest first.
                let newest = rows.first().map_or(0, |t| t.duration_ms + 1);
                assert!(
                    (before..=after + 1).contains(&newest),
                    "{agent}: newest row {newest}, stored {before}..{after}, rate {}, rows {:?}",
                    rate.total,
                    rows.iter()
                        .take(8)
                        .map(|t| (t.duration_ms, t.timestamp.timestamp_micros()))
                        .collect::<Vec<_>>()
                );
                assert!(rows
                    .windows(2)
                    .all(|p| p[0].duration_ms == p[1].duration_ms + 1));
                reads += 1;
            }
            reads
        });
        let cleaner = s.spawn(|| {
            let mut deleted = 0;
            while !done.load(Ordering::SeqCst) {
                deleted += store.cleanup_old_metrics(30).unwrap().task_metrics;
            }
            deleted
        });
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        (cleaner.join().unwrap(), reader.join().unwrap())
    });
    assert_eq!(cleaned, 30_000);
    assert!(reads > 0);
    let total = (THREADS * STORES_PER_THREAD) as u64;
    let all = store.success_rate(&Filter::new()).unwrap();
    assert_eq!(all.total, total);
    assert_eq!(all.cancelled, total / 4);
    for w in 0..THREADS {
        let agent = format!("agent-{w}");
        let n = STORES_PER_THREAD as u64;
        let rate = store.success_rate(&Filter::new().agent(&agent)).unwrap();
        check_prefix(&rate, n, n, &agent);
    }
    let swarm0 = store.success_rate(&Filter::new().swarm("swarm-0")).unwrap();
    assert_eq!(swarm0.total, 3 * STORES_PER_THREAD as u64);
    assert!(store.integrity_check().unwrap().is_empty());
}

/// The load of `store_single_4t_under_reads` for a few seconds: four
/// threads storing one task at a time, two readers without a pause, and
/// tiered retention folding a month of history meanwhile. Every read is
/// exact: all-time counts (raw rows and rollups together) are the history
/// plus a prefix of each writer's stores; an agent's rows are its
/// writer's newest.
#[test]
fn writers_beside_readers_and_retention_keep_every_answer_exact() {
    const WRITERS: usize = 4;
    const HISTORY: u64 = 20_000;
    let store = MetricsStorage::temporary().unwrap();
    let now = swarm_metrics::now();
    let history: Vec<_> = (0..HISTORY)
        .map(|i| {
            TaskMetric::new(format!("h-{i}"), "history", 5, TaskResult::Success)
                .at(now - Duration::seconds(i as i64 * 130 + 1))
        })
        .collect();
    store.store_task_metrics(&history).unwrap();

    let stored: Vec<AtomicU64> = (0..WRITERS).map(|_| AtomicU64::new(0)).collect();
    let done = AtomicBool::new(false);
    let run_for = std::time::Duration::from_secs(3);
    let (reads, folds) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (store, stored) = (&store, &stored);
                s.spawn(move || {
                    let clock = std::time::Instant::now();
                    store_while(store, w, &stored[w], || clock.elapsed() < run_for);
                })
            })
            .collect();
        let sum = |stored: &[AtomicU64]| stored.iter().map(|n| n.load(Ordering::SeqCst)).sum();
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let (store, stored, done) = (&store, &stored, &done);
                s.spawn(move || {
                    let mut reads = 0;
                    while !done.load(Ordering::SeqCst) {
                        if r == 0 {
                            let before: u64 = sum(stored);
                            let all = store.success_rate(&Filter::new()).unwrap();
                            let after: u64 = sum(stored);
                            let live = all.total - HISTORY;
                            assert!(
                                (before..=after + WRITERS as u64).contains(&live),
                                "read {live} live tasks, {before} to {after} stored"
                            );
                        } else {
                            let w = reads % WRITERS;
                            let agent = format!("agent-{w}");
                            // Counted before the range is taken, so that every
                            // task counted lies inside it.
                            let before = stored[w].load(Ordering::SeqCst);
                            let hour = TimeRange::last(Duration::hours(1)).unwrap();
                            let filter = Filter::new().agent(&agent).range(hour);
                            let rate = store.success_rate(&Filter::new().agent(&agent)).unwrap();
                            let rows = store.get_task_metrics(&filter, 20).unwrap();
                            let after = stored[w].load(Ordering::SeqCst);
                            check_prefix(&rate, before, after, &agent);
                            let newest = rows.first().map_or(0, |t| t.duration_ms + 1);
                            assert!((before..=after + 1).contains(&newest), "{agent}");
                        }
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        let retention = s.spawn(|| {
            let mut folded = 0;
            while !done.load(Ordering::SeqCst) {
                let report = store.apply_retention(&RetentionPolicy::default()).unwrap();
                folded += report.raw_folded;
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            folded
        });
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        let reads: Vec<usize> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        (reads, retention.join().unwrap())
    });
    assert!(reads.iter().all(|n| *n > 0), "{reads:?}");
    // History older than the raw horizon (7 days, aligned to the hour) was
    // folded, and is still counted.
    assert!(folds > 0);
    let live: u64 = stored.iter().map(|n| n.load(Ordering::SeqCst)).sum();
    let all = store.success_rate(&Filter::new()).unwrap();
    assert_eq!(all.total, HISTORY + live);
    let old = store.success_rate(&Filter::new().agent("history")).unwrap();
    assert_eq!((old.total, old.success), (HISTORY, HISTORY));
    check_every_writer(&store, &stored);
    assert!(store.integrity_check().unwrap().is_empty());
}

/// The WAL's checkpoint sequence number (bytes 12 to 15 of its header,
/// big-endian): each start of the log over advances it. `None` while the
/// file is missing or shorter than a header.
fn wal_sequence(path: &std::path::Path) -> Option<u32> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let header = std::fs::read(std::path::PathBuf::from(wal)).ok()?;
    let bytes: [u8; 4] = header.get(12..16)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// The log starts over while two readers read without a pause: the
/// background checkpoint finds a moment between reads (or holds new reads
/// back for a moment), and never needs the readers to stop. Writers run
/// until the log has started over three times (or a minute passed, which
/// fails); every read meanwhile and the final count are exact.
#[test]
fn the_log_starts_over_while_readers_read_without_a_pause() {
    const WRITERS: usize = 4;
    const RESTARTS: u32 = 3;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let store = MetricsStorage::open(&path).unwrap();
    let stored: Vec<AtomicU64> = (0..WRITERS).map(|_| AtomicU64::new(0)).collect();
    let done = AtomicBool::new(false);
    let restarts = std::thread::scope(|s| {
        for (w, stored) in stored.iter().enumerate() {
            let (store, done) = (&store, &done);
            s.spawn(move || store_while(store, w, stored, || !done.load(Ordering::SeqCst)));
        }
        for r in 0..2 {
            let (store, stored, done) = (&store, &stored, &done);
            s.spawn(move || {
                let mut reads = 0;
                while !done.load(Ordering::SeqCst) {
                    let w = (reads + r) % WRITERS;
                    let agent = format!("agent-{w}");
                    let before = stored[w].load(Ordering::SeqCst);
                    let rate = store.success_rate(&Filter::new().agent(&agent)).unwrap();
                    let after = stored[w].load(Ordering::SeqCst);
                    check_prefix(&rate, before, after, &agent);
                    reads += 1;
                }
            });
        }
        let clock = std::time::Instant::now();
        let first = loop {
            if let Some(sequence) = wal_sequence(&path) {
                break sequence;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        let mut restarts = 0;
        while restarts < RESTARTS && clock.elapsed() < std::time::Duration::from_secs(60) {
            if let Some(sequence) = wal_sequence(&path) {
                restarts = sequence.wrapping_sub(first);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        done.store(true, Ordering::SeqCst);
        restarts
    });
    assert!(
        restarts >= RESTARTS,
        "the log started over {restarts} times under reads"
    );
    check_every_writer(&store, &stored);
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

/// The answers of one `consistent` call, read twice around writes and
/// retention that happen in between.
#[test]
fn a_consistent_read_adds_up_while_writers_and_retention_run() {
    for backend in stores() {
        a_consistent_read_adds_up_while_writers_and_retention_run_in(&backend.store);
    }
}

fn a_consistent_read_adds_up_while_writers_and_retention_run_in(store: &MetricsStorage) {
    // Old tasks, one every 10 minutes for ~20 days, for retention to fold
    // into hourly rollups in small chunks while the readers read.
    let old_start = swarm_metrics::now() - Duration::days(60);
    let old: Vec<_> = (0..3_000)
        .map(|i| {
            TaskMetric::new(
                format!("old-{i}"),
                format!("old-agent-{}", i % 7),
                10 + i as u64 % 90,
                TaskResult::ALL[i % 4],
            )
            .at(old_start + Duration::minutes(10 * i as i64))
        })
        .collect();
    store.store_task_metrics(&old).unwrap();
    let policy = RetentionPolicy {
        chunk_rows: 25,
        ..RetentionPolicy::default()
    };
    let stored = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let checked = std::thread::scope(|s| {
        for w in 0..2 {
            let (stored, done) = (&stored, &done);
            s.spawn(move || {
                let mut i = 0;
                while !done.load(Ordering::SeqCst) {
                    let task = TaskMetric::new(
                        format!("new-{w}-{i}"),
                        format!("new-{w}"),
                        5,
                        TaskResult::ALL[i % 4],
                    );
                    assert!(store.store_task_metric(&task).unwrap());
                    stored.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
            });
        }
        let reader = s.spawn(|| {
            let mut checked = 0u64;
            let mut saw_writes_inside = 0u64;
            while !done.load(Ordering::SeqCst) {
                let before = stored.load(Ordering::SeqCst);
                store
                    .consistent(|store| {
                        let all = store.success_rate(&Filter::new())?;
                        let by_agent = store.success_rate_by(GroupBy::Agent, &Filter::new())?;
                        // Let the writers store (and retention fold) a
                        // little between the reads of the snapshot.
                        let waited = std::time::Instant::now();
                        while stored.load(Ordering::SeqCst) < before + 3
                            && waited.elapsed() < std::time::Duration::from_secs(2)
                        {
                            std::thread::yield_now();
                        }
                        let summary = store.summary(&Filter::new())?;
                        let series = store.series(
                            MetricKind::Task,
                            Measure::SuccessRate,
                            Duration::days(1),
                            &Filter::new(),
                            EmptyBuckets::Skip,
                        )?;
                        let again = store.success_rate(&Filter::new())?;
                        assert_eq!(again, all, "the same question twice in one snapshot");
                        assert!(all.total >= 3_000 + before, "{} tasks", all.total);
                        let sum = |f: fn(&SuccessRate) -> u64| -> u64 {
                            by_agent.iter().map(|g| f(&g.value)).sum()
                        };
                        assert_eq!(sum(|r| r.total), all.total, "agents add up");
                        assert_eq!(sum(|r| r.success), all.success, "agents' successes");
                        assert_eq!(summary.tasks, all.total, "summary");
                        let series_total: u64 = series
                            .iter()
                            .map(|b| match b.value {
                                BucketValue::SuccessRate(r) => r.total,
                                _ => panic!("a success-rate series holds rates"),
                            })
                            .sum();
                        assert_eq!(series_total, all.total, "series adds up");
                        Ok(())
                    })
                    .unwrap();
                if stored.load(Ordering::SeqCst) > before + 2 {
                    saw_writes_inside += 1;
                }
                checked += 1;
            }
            assert!(
                saw_writes_inside > 0,
                "writes never landed inside a snapshot"
            );
            checked
        });
        let report = store.apply_retention(&policy).unwrap();
        assert!(report.task_metrics.raw_folded > 0, "{report:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
        done.store(true, Ordering::SeqCst);
        reader.join().unwrap()
    });
    assert!(checked > 0);
    // Afterwards, a fresh read sees every store.
    let all = store.success_rate(&Filter::new()).unwrap();
    assert_eq!(all.total, 3_000 + stored.load(Ordering::SeqCst));
}

#[test]
fn a_consistent_read_nests_and_does_not_see_its_own_stores() {
    for backend in stores() {
        a_consistent_read_nests_and_does_not_see_its_own_stores_in(&backend.store);
    }
}

fn a_consistent_read_nests_and_does_not_see_its_own_stores_in(store: &MetricsStorage) {
    let task = |i: u32| TaskMetric::new(format!("t-{i}"), "a", 1, TaskResult::Success);
    store.store_task_metric(&task(0)).unwrap();
    let (inside, nested) = store
        .consistent(|s| {
            s.store_task_metric(&task(1))?;
            let inside = s.success_rate(&Filter::new())?.total;
            let nested = s.consistent(|s| s.success_rate(&Filter::new()))?.total;
            Ok((inside, nested))
        })
        .unwrap();
    assert_eq!((inside, nested), (1, 1));
    assert_eq!(store.success_rate(&Filter::new()).unwrap().total, 2);
    // An error from inside comes out, and the store reads fresh after it.
    let err = store
        .consistent(|s| -> swarm_metrics::Result<()> {
            s.get_task_metrics(&Filter::new(), 0)?;
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    store.store_task_metric(&task(2)).unwrap();
    assert_eq!(store.success_rate(&Filter::new()).unwrap().total, 3);
}

/// Callers that wait for a group commit take their results in turns and
/// wake one another: none may be left waiting. Eight threads storing one
/// task at a time, together in time order as concurrent agents do, round
/// after round, all return, and every task is there.
#[test]
fn single_stores_from_eight_threads_all_return() {
    const ROUNDS: usize = 3;
    const EACH: usize = 2_500;
    let store = MetricsStorage::temporary().unwrap();
    let start = swarm_metrics::now() - Duration::hours(1);
    let tasks: Vec<TaskMetric> = (0..ROUNDS * THREADS * EACH)
        .map(|i| {
            TaskMetric::new(
                format!("task-{i}"),
                format!("agent-{}", i % 100),
                1,
                TaskResult::Success,
            )
            .swarm(format!("swarm-{}", i % 10))
            .at(start + Duration::microseconds(i as i64 * 100))
        })
        .collect();
    let (store, tasks) = (std::sync::Arc::new(store), std::sync::Arc::new(tasks));
    let (done, finished) = std::sync::mpsc::channel();
    // Not scoped: a caller left waiting must fail the test, not hang it.
    std::thread::spawn({
        let (store, tasks) = (store.clone(), tasks.clone());
        move || {
            for round in tasks.chunks(THREADS * EACH) {
                std::thread::scope(|threads| {
                    for w in 0..THREADS {
                        let store = &store;
                        threads.spawn(move || {
                            for task in round.iter().skip(w).step_by(THREADS) {
                                store.store_task_metric(task).unwrap();
                            }
                        });
                    }
                });
            }
            done.send(()).unwrap();
        }
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("single stores from eight threads did not all return");
    let all = store.success_rate(&Filter::new()).unwrap();
    assert_eq!(all.total, tasks.len() as u64);
}
