//! How the writer turns records into rows, inside its transaction: ids
//! interned into small integers, task metrics placed by time, and the
//! agent index filled in batches.
//!
//! Task metrics stored one at a time join the agent index in batches: a
//! commit of a few stores from different agents would otherwise write one
//! agent-index page per store on top of the table's last page. Rows later
//! than the watermark in `task_index_state` are not in the index yet
//! (their `files_changed` negative: see [`stored_files`]); once
//! [`DEFAULT_INDEX_BATCH_ROWS`] (or the configured number of) such rows
//! have been stored, the transaction that stores the last of them also
//! marks them all indexed and moves the watermark to the newest row. A row
//! stored at or before the watermark, and every row of a large batch, is
//! indexed at once, so the rule "indexed exactly up to the watermark"
//! always holds. When several processes store into one file, each counts
//! the rows it stored (counting them all again after each commit of
//! another process would cost every such commit a scan): the batch then
//! grows to at most one per process before one of them indexes it all.

use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState as Fast;
use rusqlite::{params, Connection, OptionalExtension};

use crate::engine::sqlite::columns::stored_files;
use crate::engine::sqlite::prices::load_prices;
use crate::engine::sqlite::task_place::{NewestTime, Place, Placer};
use crate::engine::sqlite::usage::UsageCell;
use crate::engine::sqlite::writer::Caches;
use crate::error::{Error, Result};
use crate::model::filter::to_micros;
use crate::model::pricing::{cost_of, PriceBook};
use crate::model::record::{Entity, MetricKind, TaskMetric};
use crate::model::usage::Usage;

/// Task metrics stored one at a time that wait, at most, before joining the
/// agent index (see the module documentation).
pub(crate) const DEFAULT_INDEX_BATCH_ROWS: usize = 4096;

/// What the writer remembers about the file between transactions, for
/// the jobs of this module. Forgotten after every rollback; when another
/// connection wrote (the writer watches `PRAGMA data_version`), only what
/// another writer can change is forgotten: interned ids are never
/// deleted nor reused, and the count of unindexed rows is a threshold
/// (see the module documentation).
pub(crate) struct Cache {
    /// Unindexed task metrics after which they join the agent index.
    index_batch_rows: usize,
    /// Interned agent and swarm ids (only committed ones: cleared on any
    /// rollback).
    agents: HashMap<String, i64, Fast>,
    swarms: HashMap<String, i64, Fast>,
    /// `(swarm, agent)` pairs known to be in `agent_swarms`.
    agent_swarms: HashSet<(i64, i64), Fast>,
    /// The agent index's watermark, as `task_index_state` holds it.
    watermark: Option<i64>,
    /// How many task metrics are later than the watermark (an upper bound:
    /// deletes may have removed some).
    unindexed: Option<usize>,
    /// The newest task metric's timestamp.
    newest: NewestTime,
    /// Interned models, by model and then provider ('' for the one not
    /// named): nested, so that a lookup borrows the names.
    models: HashMap<String, HashMap<String, i64, Fast>, Fast>,
    /// The prices of the models stored so far.
    pub(crate) prices: PriceBook,
}

impl Cache {
    /// An empty cache; task metrics join the agent index once
    /// `index_batch_rows` of them wait.
    pub fn new(index_batch_rows: usize) -> Self {
        Cache {
            index_batch_rows,
            agents: HashMap::default(),
            swarms: HashMap::default(),
            agent_swarms: HashSet::default(),
            watermark: None,
            unindexed: None,
            newest: NewestTime::default(),
            models: HashMap::default(),
            prices: PriceBook::default(),
        }
    }
}

impl Caches for Cache {
    fn forget(&mut self) {
        *self = Cache::new(self.index_batch_rows);
    }

    fn others_wrote(&mut self) {
        // Another process may have moved the watermark, stored a newer
        // task, or set a price.
        self.watermark = None;
        self.newest = NewestTime::default();
        self.prices = PriceBook::default();
    }

    /// Moves the unindexed task metrics into the agent index once there
    /// are enough of them.
    fn before_commit(&mut self, conn: &Connection) -> Result<()> {
        if unindexed(conn, self)? >= self.index_batch_rows {
            index_pending(conn, self)?;
        }
        Ok(())
    }
}

/// The interned integer for an agent or swarm id, created on first use.
pub(crate) fn intern(
    conn: &Connection,
    cache: &mut Cache,
    kind: MetricKind,
    name: &str,
) -> Result<i64> {
    let (map, select, insert) = match kind {
        MetricKind::Swarm => (
            &mut cache.swarms,
            "SELECT id FROM swarms WHERE name = ?1",
            "INSERT INTO swarms (name) VALUES (?1) RETURNING id",
        ),
        _ => (
            &mut cache.agents,
            "SELECT id FROM agents WHERE name = ?1",
            "INSERT INTO agents (name) VALUES (?1) RETURNING id",
        ),
    };
    if let Some(&id) = map.get(name) {
        return Ok(id);
    }
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
    map.insert(name.to_owned(), id);
    Ok(id)
}

/// The interned id of a task's model and provider, created on first use;
/// 0 when it names neither.
fn intern_model(conn: &Connection, cache: &mut Cache, usage: &Usage) -> Result<u64> {
    if usage.model.is_none() && usage.provider.is_none() {
        return Ok(0);
    }
    let model = usage.model.as_deref().unwrap_or_default();
    let provider = usage.provider.as_deref().unwrap_or_default();
    if let Some(&id) = cache.models.get(model).and_then(|p| p.get(provider)) {
        return Ok(id as u64);
    }
    let found: Option<i64> = conn
        .prepare_cached("SELECT id FROM models WHERE model = ?1 AND provider = ?2")
        .and_then(|mut s| s.query_row((model, provider), |r| r.get(0)).optional())
        .map_err(Error::sqlite("look up model"))?;
    let id = match found {
        Some(id) => id,
        None => conn
            .prepare_cached("INSERT INTO models (model, provider) VALUES (?1, ?2) RETURNING id")
            .and_then(|mut s| s.query_row((model, provider), |r| r.get(0)))
            .map_err(Error::sqlite("intern model"))?,
    };
    cache
        .models
        .entry(model.to_owned())
        .or_default()
        .insert(provider.to_owned(), id);
    // Ids count up from 1 (an INTEGER PRIMARY KEY never hands out 0).
    Ok(u64::try_from(id).unwrap_or(0))
}

/// The usage blob of `task` (its usage and trace ids), stamped `at`
/// (µs), priced by the book.
fn usage_blob(
    conn: &Connection,
    cache: &mut Cache,
    task: &TaskMetric,
    at: i64,
) -> Result<(u64, Option<Vec<u8>>)> {
    let tokens = task.resolved_tokens()?;
    if task.usage.is_empty() && task.trace.is_none() {
        return Ok((tokens.total, None));
    }
    if let Some(model) = task.usage.priced_model(tokens) {
        load_prices(conn, &mut cache.prices, model)?;
    }
    let cell = UsageCell {
        model: intern_model(conn, cache, &task.usage)?,
        split: tokens.split,
        cost: cost_of(&task.usage, tokens, at, &cache.prices)?,
        trace: task.trace,
    };
    Ok((tokens.total, cell.encode()))
}

/// Stores a task metric where `task_place` put it.
const INSERT_TASK: &str = "\
INSERT INTO task_metrics
    (timestamp, seq, task_id, agent, swarm, duration_ms, result, tokens_used, files_changed,
     usage)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// Records that `agent` ran tasks in `swarm`, which swarm queries use to
/// find the swarm's tasks through the agent index.
fn link_agent_swarm(conn: &Connection, cache: &mut Cache, agent: i64, swarm: i64) -> Result<()> {
    if cache.agent_swarms.contains(&(swarm, agent)) {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO agent_swarms (swarm, agent) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )
    .and_then(|mut s| s.execute((swarm, agent)))
    .map_err(Error::sqlite("store task metrics"))?;
    cache.agent_swarms.insert((swarm, agent));
    Ok(())
}

/// The agent index's watermark: task metrics up to it are in the index.
fn watermark(conn: &Connection, cache: &mut Cache) -> Result<i64> {
    if let Some(watermark) = cache.watermark {
        return Ok(watermark);
    }
    let watermark = conn
        .prepare_cached("SELECT watermark FROM task_index_state")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(Error::sqlite("read the index watermark"))?;
    cache.watermark = Some(watermark);
    Ok(watermark)
}

/// How many task metrics are not in the agent index yet.
pub(crate) fn unindexed(conn: &Connection, cache: &mut Cache) -> Result<usize> {
    if let Some(n) = cache.unindexed {
        return Ok(n);
    }
    let watermark = watermark(conn, cache)?;
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM task_metrics WHERE timestamp > ?1")
        .and_then(|mut s| s.query_row([watermark], |r| r.get(0)))
        .map_err(Error::sqlite("count unindexed metrics"))?;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    cache.unindexed = Some(n);
    Ok(n)
}

/// Puts every task metric later than the watermark into the agent index
/// and moves the watermark to the newest one.
pub(crate) fn index_pending(conn: &Connection, cache: &mut Cache) -> Result<()> {
    let old = watermark(conn, cache)?;
    let newest: Option<i64> = conn
        .prepare_cached("SELECT max(timestamp) FROM task_metrics")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(Error::sqlite("index task metrics"))?;
    if let Some(new) = newest.filter(|&new| new > old) {
        set_watermark(conn, cache, old, new)?;
    }
    cache.unindexed = Some(0);
    Ok(())
}

/// Marks the task metrics after `old` up to `new` indexed and records
/// `new` as the watermark.
fn set_watermark(conn: &Connection, cache: &mut Cache, old: i64, new: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE task_metrics SET files_changed = ~files_changed \
         WHERE timestamp > ?1 AND timestamp <= ?2 AND files_changed < 0",
    )
    .and_then(|mut s| s.execute([old, new]))
    .map_err(Error::sqlite("index task metrics"))?;
    record_watermark(conn, cache, new)
}

/// Records `new` as the watermark; every task metric up to it must be in
/// the agent index.
fn record_watermark(conn: &Connection, cache: &mut Cache, new: i64) -> Result<()> {
    conn.prepare_cached("UPDATE task_index_state SET watermark = ?1")
        .and_then(|mut s| s.execute([new]))
        .map_err(Error::sqlite("index task metrics"))?;
    cache.watermark = Some(new);
    Ok(())
}

pub(crate) fn insert_tasks(
    conn: &Connection,
    cache: &mut Cache,
    tasks: &[TaskMetric],
) -> Result<usize> {
    // A batch of a whole index group or more indexes its rows at once: the
    // rows waiting before it join the index first, so that all of them can
    // be indexed and the watermark moved past them at the end. A smaller
    // batch waits with the single stores: a group of 4096 rows costs the
    // agent index about one page write per agent, where each batch of
    // 1,000 indexed at once wrote most of those pages again (1M tasks of
    // 100 agents in batches of 1,000: 170,000 rows/s indexed at once,
    // 200,000 in groups of 4096).
    let eager = tasks.len() >= cache.index_batch_rows;
    if eager && unindexed(conn, cache)? > 0 {
        index_pending(conn, cache)?;
    }
    let watermark = watermark(conn, cache)?;
    let mut newest = watermark;
    let mut inserted = 0;
    // A retried store of a task metric already stored (same timestamp and
    // task id) is found and ignored.
    let mut placer = Placer::new(conn, watermark, tasks.len() > 1);
    let mut stmt = conn
        .prepare_cached(INSERT_TASK)
        .map_err(Error::sqlite("store task metrics"))?;
    for task in tasks {
        let timestamp = to_micros(task.timestamp);
        let seq = match placer.place(&mut cache.newest, timestamp, &task.task_id)? {
            Place::At(seq) => seq,
            Place::Stored => continue,
        };
        let agent = intern(conn, cache, MetricKind::Agent, &task.agent_id)?;
        let swarm = match &task.swarm_id {
            Some(name) => {
                let swarm = intern(conn, cache, MetricKind::Swarm, name)?;
                link_agent_swarm(conn, cache, agent, swarm)?;
                Some(swarm)
            }
            None => None,
        };
        // Validated before submission: every count fits an i64.
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let indexed = eager || timestamp <= watermark;
        let (tokens_used, usage) = usage_blob(conn, cache, task, timestamp)?;
        stmt.execute(params![
            timestamp,
            seq,
            task.task_id,
            agent,
            swarm,
            count(task.duration_ms),
            task.result.code(),
            count(tokens_used),
            stored_files(count(task.files_changed), indexed),
            usage,
        ])
        .map_err(Error::sqlite("store task metrics"))?;
        inserted += 1;
        if !indexed {
            cache.unindexed = cache.unindexed.map(|n| n + 1);
        }
        newest = newest.max(timestamp);
    }
    if eager && newest > watermark {
        // Every row up to `newest` is indexed now: the earlier ones by
        // index_pending, this batch's as they were stored.
        record_watermark(conn, cache, newest)?;
    }
    Ok(inserted)
}

/// Agent or swarm metrics as the writer stored them.
#[derive(Debug, Default)]
pub(crate) struct StoredEntities {
    /// Each metric's id, in order: the stored row's, for a retry.
    pub ids: Vec<i64>,
    /// How many were new (the rest were already stored).
    pub new: usize,
}

/// Stores agent or swarm metrics; a retried store of a metric already
/// stored (same id, metric type, timestamp and value) is ignored and
/// answers with the stored row's id.
pub(crate) fn insert_entities<E: Entity>(
    conn: &Connection,
    cache: &mut Cache,
    metrics: &[E],
) -> Result<StoredEntities> {
    let mut stored = StoredEntities {
        ids: Vec::with_capacity(metrics.len()),
        new: 0,
    };
    for metric in metrics {
        let (id, new) = insert_entity(conn, cache, metric)?;
        stored.ids.push(id);
        stored.new += usize::from(new);
    }
    Ok(stored)
}

/// Stores one agent or swarm metric: its id, and whether it was new. The
/// writer holds the write lock, so nothing can come between the look-up
/// and the insert.
pub(crate) fn insert_entity<E: Entity>(
    conn: &Connection,
    cache: &mut Cache,
    metric: &E,
) -> Result<(i64, bool)> {
    let record = metric.record();
    let (find, insert, operation) = match record.kind {
        MetricKind::Swarm => (
            "SELECT metric_id FROM swarm_metrics \
             WHERE swarm = ?1 AND metric_type = ?2 AND timestamp = ?3 AND value = ?4",
            "INSERT INTO swarm_metrics (swarm, metric_type, timestamp, value, metadata) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            "store swarm metrics",
        ),
        _ => (
            "SELECT metric_id FROM agent_metrics \
             WHERE agent = ?1 AND metric_type = ?2 AND timestamp = ?3 AND value = ?4",
            "INSERT INTO agent_metrics (agent, metric_type, timestamp, value, metadata) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            "store agent metrics",
        ),
    };
    let id = intern(conn, cache, record.kind, record.id)?;
    // The identity binds as ?1..?4 in both statements.
    let (metric_type, timestamp) = (record.metric_type.code(), to_micros(record.timestamp));
    let stored: Option<i64> = conn
        .prepare_cached(find)
        .and_then(|mut stmt| {
            stmt.query_row(params![id, metric_type, timestamp, record.value], |r| {
                r.get(0)
            })
            .optional()
        })
        .map_err(Error::sqlite(operation))?;
    if let Some(metric_id) = stored {
        return Ok((metric_id, false));
    }
    let metadata = record.metadata.map(|m| m.to_string());
    conn.prepare_cached(insert)
        .and_then(|mut stmt| {
            stmt.execute(params![id, metric_type, timestamp, record.value, metadata])
        })
        .map_err(Error::sqlite(operation))?;
    Ok((conn.last_insert_rowid(), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sharing_a_timestamp_are_kept_and_retries_ignored() {
        let conn = Connection::open_in_memory().unwrap();
        crate::engine::sqlite::open::schema::create_for_test(&conn);
        let mut cache = Cache::new(DEFAULT_INDEX_BATCH_ROWS);
        let tasks: Vec<TaskMetric> = ["t1", "t2", "t1"]
            .iter()
            .map(|id| {
                TaskMetric::new(*id, "a", 1, crate::TaskResult::Success)
                    .at(chrono::DateTime::from_timestamp(1_000, 0).unwrap())
            })
            .collect();
        // t1 and t2 share a timestamp; the second t1 is a retry.
        assert_eq!(insert_tasks(&conn, &mut cache, &tasks).unwrap(), 2);
        let ids: Vec<String> = conn
            .prepare("SELECT task_id FROM task_metrics")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(ids, ["t1", "t2"]);
        // The same again, with a cold cache: all retries.
        assert_eq!(insert_tasks(&conn, &mut Cache::new(1), &tasks).unwrap(), 0);
    }
}
