//! Where a task metric about to be stored goes: its `seq` among the rows
//! of its microsecond (the key is `(timestamp, seq)`), or nowhere, when the
//! same task id is stored at that microsecond already (a retry).
//!
//! Metrics reported now are later than everything stored and need no
//! look-up at all. Any other is looked for among the rows of its
//! microsecond: through the task-id index when they are indexed (the
//! microsecond is at or before the index watermark), or else by reading
//! them, and there are few of those (rows past the watermark join the
//! index every few thousand). Rows of one store call that share a
//! microsecond nobody stored before are checked in memory: a batch of
//! thousands of tasks stamped alike costs no more than any other.

use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState as Fast;
use rusqlite::Connection;

use crate::error::{Error, Result};

/// Where a task metric goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// The row's `seq`, free among the rows of its microsecond.
    At(i64),
    /// A metric with the same timestamp and task id is stored already.
    Stored,
}

/// The newest timestamp stored, remembered by the writer between stores
/// (`None` until read).
#[derive(Debug, Default)]
pub(crate) struct NewestTime(Option<Option<i64>>);

impl NewestTime {
    fn get(&mut self, conn: &Connection) -> Result<Option<i64>> {
        if let Some(newest) = self.0 {
            return Ok(newest);
        }
        let newest = conn
            .prepare_cached("SELECT max(timestamp) FROM task_metrics")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(Error::sqlite("store task metrics"))?;
        self.0 = Some(newest);
        Ok(newest)
    }

    fn stored(&mut self, us: i64) {
        if let Some(newest) = &mut self.0 {
            *newest = Some(newest.map_or(us, |n| n.max(us)));
        }
    }
}

/// The rows of a microsecond that was empty when this store call first
/// met it: all of them are this call's.
struct Fresh {
    next: i64,
    ids: HashSet<String, Fast>,
}

/// Places the task metrics of one store call, inside its transaction.
pub(crate) struct Placer<'c> {
    conn: &'c Connection,
    /// The index watermark: rows up to it are in the task-id index, and
    /// only they.
    watermark: i64,
    fresh: HashMap<i64, Fresh, Fast>,
    /// Whether more tasks follow, so that fresh microseconds are worth
    /// remembering.
    remember: bool,
}

impl<'c> Placer<'c> {
    /// A placer for a call whose rows are indexed iff they are at or
    /// before `watermark`, or all of them, if the call moves the
    /// watermark past them at its end (only rows after every stored row
    /// are then past the watermark, and those are all this call's).
    /// `remember` says whether the call stores more than one task.
    pub fn new(conn: &'c Connection, watermark: i64, remember: bool) -> Self {
        Placer {
            conn,
            watermark,
            fresh: HashMap::default(),
            remember,
        }
    }

    /// Where the task metric of microsecond `us` and `task_id` goes. The
    /// caller stores it there (or not, for [`Place::Stored`]) before it
    /// places the next one.
    pub fn place(&mut self, newest: &mut NewestTime, us: i64, task_id: &str) -> Result<Place> {
        if let Some(group) = self.fresh.get_mut(&us) {
            if !group.ids.insert(task_id.to_owned()) {
                return Ok(Place::Stored);
            }
            group.next += 1;
            return Ok(Place::At(group.next - 1));
        }
        let empty = newest.get(self.conn)?.is_none_or(|n| us > n);
        let next = if empty {
            0
        } else {
            if self.stored(us, task_id)? {
                return Ok(Place::Stored);
            }
            self.next_seq(us)?
        };
        if next == 0 && self.remember {
            let mut ids = HashSet::default();
            ids.insert(task_id.to_owned());
            self.fresh.insert(us, Fresh { next: 1, ids });
        }
        newest.stored(us);
        Ok(Place::At(next))
    }

    /// Whether `task_id` is stored at microsecond `us`.
    fn stored(&self, us: i64, task_id: &str) -> Result<bool> {
        let sql = if us <= self.watermark {
            "SELECT EXISTS (SELECT 1 FROM task_metrics \
             WHERE task_id = ?2 AND timestamp = ?1 AND files_changed >= 0)"
        } else {
            "SELECT EXISTS (SELECT 1 FROM task_metrics WHERE timestamp = ?1 AND task_id = ?2)"
        };
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.query_row((us, task_id), |r| r.get(0)))
            .map_err(Error::sqlite("store task metrics"))
    }

    /// The first `seq` after the rows of microsecond `us`.
    fn next_seq(&self, us: i64) -> Result<i64> {
        self.conn
            .prepare_cached(
                "SELECT coalesce(max(seq) + 1, 0) FROM task_metrics WHERE timestamp = ?1",
            )
            .and_then(|mut s| s.query_row([us], |r| r.get(0)))
            .map_err(Error::sqlite("store task metrics"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sqlite::rows::{insert_tasks, Cache};
    use crate::engine::sqlite::writer::Caches;
    use crate::{TaskMetric, TaskResult};

    /// Stores `tasks` as one writer transaction does: how many were new.
    fn put(conn: &Connection, cache: &mut Cache, tasks: &[TaskMetric]) -> usize {
        let new = insert_tasks(conn, cache, tasks).unwrap();
        cache.before_commit(conn).unwrap();
        new
    }

    fn store() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        crate::engine::sqlite::open::schema::create_for_test(&conn);
        conn
    }

    fn task(id: &str, us: i64) -> TaskMetric {
        TaskMetric::new(id, "a", 1, TaskResult::Success)
            .at(chrono::DateTime::from_timestamp_micros(us).unwrap())
    }

    /// `(timestamp, seq, task_id, indexed)` of every row, in key order.
    fn rows(conn: &Connection) -> Vec<(i64, i64, String, bool)> {
        conn.prepare("SELECT timestamp, seq, task_id, files_changed >= 0 FROM task_metrics")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn a_microsecond_holds_any_number_of_tasks_and_retries_are_found_everywhere() {
        let conn = store();
        // Index groups of 4: rows past the watermark, and rows before it,
        // are both looked up.
        let mut cache = Cache::new(4);
        let first: Vec<_> = (0..3).map(|i| task(&format!("t{i}"), 10)).collect();
        assert_eq!(put(&conn, &mut cache, &first), 3);
        // Unindexed rows of microsecond 10: retries found by reading them.
        assert_eq!(put(&conn, &mut cache, &first[1..]), 0);
        assert_eq!(put(&conn, &mut Cache::new(4), &first[..1]), 0);
        // A later microsecond, then an earlier one: both fill the group.
        let more = [task("u", 20), task("t9", 10), task("t3", 10)];
        assert_eq!(put(&conn, &mut cache, &more), 3);
        // Six rows joined the index at the fourth; retries of indexed rows
        // are found through the task-id index, with a cold cache too.
        let stored = rows(&conn);
        assert!(stored.iter().all(|r| r.3), "{stored:?}");
        let retry = [task("t0", 10), task("t9", 10), task("u", 20)];
        assert_eq!(put(&conn, &mut Cache::new(4), &retry), 0);
        assert_eq!(put(&conn, &mut cache, &retry), 0);
        // The same task id at another microsecond is another metric.
        assert_eq!(put(&conn, &mut cache, &[task("u", 10)]), 1);
        let seqs: Vec<(i64, i64)> = rows(&conn).iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(
            seqs,
            [
                (10, 0),
                (10, 1),
                (10, 2),
                (10, 3),
                (10, 4),
                (10, 5),
                (20, 0)
            ]
        );
    }

    #[test]
    fn a_batch_stamped_alike_is_checked_in_memory() {
        let conn = store();
        let mut cache = Cache::new(4096);
        let mut batch: Vec<_> = (0..5000).map(|i| task(&format!("t{i}"), 7)).collect();
        // Repeats inside the batch are stored once.
        batch.extend((0..10).map(|i| task(&format!("t{i}"), 7)));
        assert_eq!(put(&conn, &mut cache, &batch), 5000);
        assert_eq!(put(&conn, &mut cache, &batch), 0);
        let stored = rows(&conn);
        assert_eq!(stored.len(), 5000);
        assert_eq!(stored.last().unwrap().1, 4999);
    }
}
