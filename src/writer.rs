//! The single writer and its group commit.
//!
//! SQLite lets one connection write at a time, and a connection that finds
//! the lock taken sleeps in its busy handler. So every write of this store
//! goes through one connection, and concurrent stores share its
//! transactions: a caller that finds no write under way becomes the leader,
//! takes every store queued so far, writes them all in one transaction and
//! commits once; callers that arrive meanwhile queue up and wait. Each caller
//! returns only after the commit that holds its records, so `Ok` always means
//! durable, and under load one commit (one WAL append) serves many stores.
//!
//! Each caller's records are written under their own savepoint, so one
//! failing batch is rolled back alone and never half-written.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::error::{Error, Result};
use crate::query::to_micros;
use crate::record::{AgentMetric, EntityRecord, MetricKind, SwarmMetric, TaskMetric};

/// Records waiting to be written, owned so that the leader can write them on
/// the caller's behalf.
pub(crate) enum Work {
    Tasks(Vec<TaskMetric>),
    Agents(Vec<AgentMetric>),
    Swarms(Vec<SwarmMetric>),
}

/// What a write produced.
pub(crate) enum Output {
    /// How many task metrics were new (the rest were already stored).
    Tasks(usize),
    /// The ids given to agent or swarm metrics, in order.
    Ids(Vec<i64>),
}

/// The writer connection and what it caches about the file.
pub(crate) struct WriterConnection {
    conn: Connection,
    /// Interned agent and swarm ids. Only committed entries are trusted: the
    /// cache is cleared whenever a transaction or savepoint rolls back.
    ids: HashMap<(MetricKind, String), i64>,
}

/// One caller's pending write and the slot its outcome is delivered to.
struct Job {
    work: Work,
    outcome: Mutex<Option<Outcome>>,
    ready: Condvar,
}

enum Outcome {
    Done(Result<Output>),
    /// The previous leader is done and this caller leads the next group.
    Lead,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Arc<Job>>,
    leader_active: bool,
}

/// The single writer shared by every handle of one store.
pub(crate) struct Writer {
    connection: Mutex<WriterConnection>,
    queue: Mutex<Queue>,
}

/// Locks a mutex, ignoring poisoning: the data behind these mutexes stays
/// consistent across a panic (the cache is only an optimisation and is
/// cleared on any doubt, and SQLite rolls back an unfinished transaction).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Writer {
    pub fn new(conn: Connection) -> Self {
        Writer {
            connection: Mutex::new(WriterConnection {
                conn,
                ids: HashMap::new(),
            }),
            queue: Mutex::new(Queue::default()),
        }
    }

    /// Exclusive use of the writer connection for maintenance (retention,
    /// vacuum, checkpoints). Group commits wait while it is held.
    pub fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut guard = lock(&self.connection);
        let result = f(&guard.conn);
        if result.is_err() {
            guard.ids.clear();
        }
        result
    }

    /// Writes `work` durably, sharing a transaction with concurrent callers.
    pub fn submit(&self, work: Work) -> Result<Output> {
        let job = Arc::new(Job {
            work,
            outcome: Mutex::new(None),
            ready: Condvar::new(),
        });
        let mut queue = lock(&self.queue);
        queue.pending.push(Arc::clone(&job));
        if queue.leader_active {
            drop(queue);
            let mut slot = lock(&job.outcome);
            loop {
                match slot.take() {
                    Some(Outcome::Done(result)) => return result,
                    Some(Outcome::Lead) => break,
                    None => slot = job.ready.wait(slot).unwrap_or_else(PoisonError::into_inner),
                }
            }
        } else {
            queue.leader_active = true;
            drop(queue);
        }
        self.lead(&job)
    }

    /// Writes every queued job (this caller's among them) in one
    /// transaction, hands the results out, and passes leadership on.
    fn lead(&self, own: &Arc<Job>) -> Result<Output> {
        let group = std::mem::take(&mut lock(&self.queue).pending);
        let mut results = {
            let mut writer = lock(&self.connection);
            writer.write_group(&group)
        };
        let mut own_result = None;
        for (job, result) in group.iter().zip(results.drain(..)) {
            if Arc::ptr_eq(job, own) {
                own_result = Some(result);
            } else {
                *lock(&job.outcome) = Some(Outcome::Done(result));
                job.ready.notify_one();
            }
        }
        let mut queue = lock(&self.queue);
        match queue.pending.first() {
            Some(next) => {
                *lock(&next.outcome) = Some(Outcome::Lead);
                next.ready.notify_one();
            }
            None => queue.leader_active = false,
        }
        drop(queue);
        own_result.unwrap_or_else(|| {
            Err(Error::invalid(
                "writer",
                "internal error: the leader's own job was not in its group",
            ))
        })
    }
}

impl WriterConnection {
    /// One transaction for the whole group; one savepoint per job when
    /// there are several, so that a failing job is undone alone.
    fn write_group(&mut self, group: &[Arc<Job>]) -> Vec<Result<Output>> {
        let tx = match Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                return group
                    .iter()
                    .map(|_| Err(copy_error("begin write", &e)))
                    .collect()
            }
        };
        let mut ids = std::mem::take(&mut self.ids);
        let mut rolled_back = false;
        let mut results = Vec::with_capacity(group.len());
        for job in group {
            let result = if group.len() == 1 {
                write_job(&tx, &mut ids, &job.work)
            } else {
                write_job_in_savepoint(&tx, &mut ids, &job.work, &mut rolled_back)
            };
            results.push(result);
        }
        let commit = if group.len() == 1 && results[0].is_err() {
            rolled_back = true;
            tx.rollback().map_err(|e| copy_error("roll back", &e))
        } else {
            tx.commit().map_err(|e| copy_error("commit", &e))
        };
        if let Err(e) = commit {
            rolled_back = true;
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(copy_error_of(&e));
            }
        }
        if !rolled_back {
            self.ids = ids;
        }
        results
    }
}

fn write_job_in_savepoint(
    tx: &Connection,
    ids: &mut HashMap<(MetricKind, String), i64>,
    work: &Work,
    rolled_back: &mut bool,
) -> Result<Output> {
    tx.execute_batch("SAVEPOINT job")
        .map_err(Error::sqlite("begin batch"))?;
    match write_job(tx, ids, work) {
        Ok(output) => {
            tx.execute_batch("RELEASE job")
                .map_err(Error::sqlite("end batch"))?;
            Ok(output)
        }
        Err(e) => {
            *rolled_back = true;
            ids.clear();
            // If even the rollback fails, the commit that follows fails too
            // and every job of the group reports it.
            let _ = tx.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(e)
        }
    }
}

fn write_job(
    conn: &Connection,
    ids: &mut HashMap<(MetricKind, String), i64>,
    work: &Work,
) -> Result<Output> {
    match work {
        Work::Tasks(tasks) => insert_tasks(conn, ids, tasks).map(Output::Tasks),
        Work::Agents(metrics) => {
            let records = metrics.iter().map(AgentMetric::entity);
            insert_entities(conn, ids, MetricKind::Agent, records).map(Output::Ids)
        }
        Work::Swarms(metrics) => {
            let records = metrics.iter().map(SwarmMetric::entity);
            insert_entities(conn, ids, MetricKind::Swarm, records).map(Output::Ids)
        }
    }
}

/// The interned integer for an agent or swarm id, created on first use.
fn intern(
    conn: &Connection,
    ids: &mut HashMap<(MetricKind, String), i64>,
    kind: MetricKind,
    name: &str,
) -> Result<i64> {
    if let Some(&id) = ids.get(&(kind, name.to_owned())) {
        return Ok(id);
    }
    let (select, insert) = match kind {
        MetricKind::Swarm => (
            "SELECT id FROM swarms WHERE name = ?1",
            "INSERT INTO swarms (name) VALUES (?1) RETURNING id",
        ),
        _ => (
            "SELECT id FROM agents WHERE name = ?1",
            "INSERT INTO agents (name) VALUES (?1) RETURNING id",
        ),
    };
    let found = conn
        .prepare_cached(select)
        .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
        .map_err(Error::sqlite("look up id"))?;
    let id = match found {
        Some(id) => id,
        None => conn
            .prepare_cached(insert)
            .and_then(|mut s| s.query_row([name], |r| r.get(0)))
            .map_err(Error::sqlite("intern id"))?,
    };
    ids.insert((kind, name.to_owned()), id);
    Ok(id)
}

const INSERT_TASK: &str = "\
INSERT INTO task_metrics
    (timestamp, seq, task_id, agent, swarm, duration_ms, result, tokens_used, files_changed)
VALUES
    (?1, coalesce((SELECT max(seq) + 1 FROM task_metrics WHERE timestamp = ?1), 0),
     ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT (task_id, timestamp) DO NOTHING";

fn insert_tasks(
    conn: &Connection,
    ids: &mut HashMap<(MetricKind, String), i64>,
    tasks: &[TaskMetric],
) -> Result<usize> {
    let mut inserted = 0;
    for task in tasks {
        let agent = intern(conn, ids, MetricKind::Agent, &task.agent_id)?;
        let swarm = match &task.swarm_id {
            Some(name) => Some(intern(conn, ids, MetricKind::Swarm, name)?),
            None => None,
        };
        // Validated before submission: every count fits an i64.
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let mut stmt = conn
            .prepare_cached(INSERT_TASK)
            .map_err(Error::sqlite("store task metrics"))?;
        inserted += stmt
            .execute(params![
                to_micros(task.timestamp),
                task.task_id,
                agent,
                swarm,
                count(task.duration_ms),
                task.result.code(),
                count(task.tokens_used),
                count(task.files_changed),
            ])
            .map_err(Error::sqlite("store task metrics"))?;
    }
    Ok(inserted)
}

fn insert_entities<'a>(
    conn: &Connection,
    ids: &mut HashMap<(MetricKind, String), i64>,
    kind: MetricKind,
    records: impl Iterator<Item = Result<EntityRecord<'a>>>,
) -> Result<Vec<i64>> {
    let sql = match kind {
        MetricKind::Swarm => {
            "INSERT INTO swarm_metrics (swarm, metric_type, value, metadata, timestamp) \
             VALUES (?1, ?2, ?3, ?4, ?5)"
        }
        _ => {
            "INSERT INTO agent_metrics (agent, metric_type, value, metadata, timestamp) \
             VALUES (?1, ?2, ?3, ?4, ?5)"
        }
    };
    let operation = match kind {
        MetricKind::Swarm => "store swarm metrics",
        _ => "store agent metrics",
    };
    let mut out = Vec::new();
    for record in records {
        let record = record?;
        let id = intern(conn, ids, kind, record.id)?;
        let metadata = record.metadata.map(|m| m.to_string());
        let mut stmt = conn.prepare_cached(sql).map_err(Error::sqlite(operation))?;
        stmt.execute(params![
            id,
            record.metric_type.code(),
            record.value,
            metadata,
            to_micros(record.timestamp),
        ])
        .map_err(Error::sqlite(operation))?;
        out.push(conn.last_insert_rowid());
    }
    Ok(out)
}

/// rusqlite errors are not `Clone`; a commit failure is reported to every
/// caller of the group, so it is rebuilt from its code and message.
fn copy_error(operation: &'static str, e: &rusqlite::Error) -> Error {
    let source = match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            rusqlite::Error::SqliteFailure(*code, msg.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    };
    Error::Sqlite { operation, source }
}

fn copy_error_of(e: &Error) -> Error {
    match e {
        Error::Sqlite { operation, source } => copy_error(operation, source),
        other => Error::Sqlite {
            operation: "commit",
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                Some(other.to_string()),
            ),
        },
    }
}
