//! Finding the key of a task metric about to be stored (see
//! [`task_key`](crate::task_key)): after every stored row, or among the
//! rows of its microsecond, in task-id order.
//!
//! Metrics reported now are later than everything stored, and take the
//! first key of their microsecond with no look-up. Any other is looked for
//! among the rows of its microsecond: found, it is a retry and is not
//! stored again; otherwise the rows with larger task ids move up one key
//! to make room, so that key order stays (timestamp, task id) order.

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::task_key::{first_key, last_key, PER_MICROSECOND};

/// Where a task metric goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// A free key, in task-id order among the rows of its microsecond.
    At(i64),
    /// A metric with the same timestamp and task id is stored already.
    Stored,
}

/// The largest key stored, remembered by the writer between stores.
#[derive(Debug, Default)]
pub(crate) struct NewestKey(Option<Option<i64>>);

impl NewestKey {
    fn get(&mut self, conn: &Connection) -> Result<Option<i64>> {
        if let Some(newest) = self.0 {
            return Ok(newest);
        }
        let newest = conn
            .prepare_cached("SELECT max(time_key) FROM task_metrics")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(Error::sqlite("store task metrics"))?;
        self.0 = Some(newest);
        Ok(newest)
    }

    /// Records that `key` is stored now.
    pub fn stored(&mut self, key: i64) {
        if let Some(newest) = &mut self.0 {
            *newest = Some(newest.map_or(key, |n| n.max(key)));
        }
    }
}

/// The key for a task metric of microsecond `us` and `task_id`, making
/// room for it among the rows of that microsecond if need be. Must run in
/// the write transaction that stores it.
pub(crate) fn place(
    conn: &Connection,
    newest: &mut NewestKey,
    us: i64,
    task_id: &str,
) -> Result<Place> {
    let first = first_key(us);
    if newest.get(conn)?.is_none_or(|n| first > n) {
        return Ok(Place::At(first));
    }
    let operation = "store task metrics";
    let mut rows: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT time_key, task_id FROM task_metrics \
             WHERE time_key BETWEEN ?1 AND ?2 ORDER BY time_key",
        )
        .and_then(|mut s| {
            s.query_map((first, last_key(us)), |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(Error::sqlite(operation))?;
    // Keys follow task ids within a microsecond: find the new one's place.
    let at = rows.partition_point(|(_, id)| id.as_str() < task_id);
    if rows.get(at).is_some_and(|(_, id)| id == task_id) {
        return Ok(Place::Stored);
    }
    if rows.len() >= PER_MICROSECOND as usize {
        return Err(Error::invalid(
            "timestamp",
            format!(
                "{PER_MICROSECOND} task metrics are stored with the timestamp of task \
                 {task_id:?} already, as many as one microsecond can hold"
            ),
        ));
    }
    let Some(&(last, _)) = rows.last() else {
        return Ok(Place::At(first));
    };
    if at == rows.len() && last < last_key(us) {
        return Ok(Place::At(last + 1));
    }
    // Retention may have left a gap below the rows (it deletes by key), so
    // there may be no free key above them: pack them from the first key.
    if last == last_key(us) {
        for (i, (key, _)) in rows.iter_mut().enumerate() {
            let packed = first + i as i64;
            if *key != packed {
                move_row(conn, *key, packed)?;
                *key = packed;
            }
        }
    }
    // Move the larger task ids up one key, the largest first, so that each
    // moves into a free key.
    for &(key, _) in rows[at..].iter().rev() {
        move_row(conn, key, key + 1)?;
    }
    newest.stored(rows.last().map_or(first, |(key, _)| key + 1));
    Ok(Place::At(match rows.get(at) {
        Some(&(key, _)) => key,
        None => rows.last().map_or(first, |(key, _)| key + 1),
    }))
}

/// Gives the row at key `from` the free key `to` (of the same microsecond).
fn move_row(conn: &Connection, from: i64, to: i64) -> Result<()> {
    conn.prepare_cached("UPDATE task_metrics SET time_key = ?2 WHERE time_key = ?1")
        .and_then(|mut s| s.execute((from, to)))
        .map_err(Error::sqlite("store task metrics"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        crate::open::schema::create_for_test(&conn);
        conn.execute("INSERT INTO agents (id, name) VALUES (1, 'a')", [])
            .unwrap();
        conn
    }

    /// Places and stores `task_id` at microsecond `us`, as the writer does.
    fn put(conn: &Connection, newest: &mut NewestKey, us: i64, task_id: &str) -> Place {
        let place = place(conn, newest, us, task_id).unwrap();
        if let Place::At(key) = place {
            conn.execute(
                "INSERT INTO task_metrics \
                 (time_key, task_id, result, duration_ms, tokens_used, files_changed, agent) \
                 VALUES (?1, ?2, 0, 1, 0, 0, 1)",
                (key, task_id),
            )
            .unwrap();
            newest.stored(key);
        }
        place
    }

    /// The task ids of microsecond `us` in key order, and whether the keys
    /// decode to `us`.
    fn ids_at(conn: &Connection, us: i64) -> Vec<String> {
        let mut stmt = conn
            .prepare(
                "SELECT task_id, timestamp FROM task_metrics \
                 WHERE time_key BETWEEN ?1 AND ?2 ORDER BY time_key",
            )
            .unwrap();
        stmt.query_map((first_key(us), last_key(us)), |r| {
            assert_eq!(r.get::<_, i64>(1)?, us);
            r.get(0)
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    }

    #[test]
    fn rows_of_a_microsecond_keep_task_id_order_whatever_the_store_order() {
        let conn = store();
        let mut newest = NewestKey::default();
        assert_eq!(put(&conn, &mut newest, 5, "m"), Place::At(first_key(5)));
        put(&conn, &mut newest, 9, "later");
        for id in ["z", "a", "q", "b"] {
            assert!(matches!(put(&conn, &mut newest, 5, id), Place::At(_)));
        }
        assert_eq!(ids_at(&conn, 5), ["a", "b", "m", "q", "z"]);
        assert_eq!(ids_at(&conn, 9), ["later"]);
        // Retries are found wherever they sit, with a cold cache too.
        for id in ["a", "m", "z"] {
            assert_eq!(put(&conn, &mut NewestKey::default(), 5, id), Place::Stored);
        }
        assert_eq!(put(&conn, &mut newest, 9, "later"), Place::Stored);
    }

    #[test]
    fn rows_left_at_the_top_of_a_microsecond_are_packed_to_make_room() {
        let conn = store();
        let mut newest = NewestKey::default();
        // Rows as a chunked delete may leave them: the last keys only.
        for (i, id) in ["c", "d"].iter().enumerate() {
            conn.execute(
                "INSERT INTO task_metrics \
                 (time_key, task_id, result, duration_ms, tokens_used, files_changed, agent) \
                 VALUES (?1, ?2, 0, 1, 0, 0, 1)",
                (last_key(3) - 1 + i as i64, id),
            )
            .unwrap();
        }
        put(&conn, &mut newest, 3, "e");
        put(&conn, &mut newest, 3, "a");
        assert_eq!(ids_at(&conn, 3), ["a", "c", "d", "e"]);
    }

    #[test]
    fn a_full_microsecond_refuses_one_more_by_name() {
        let conn = store();
        let mut newest = NewestKey::default();
        for i in 0..PER_MICROSECOND {
            put(&conn, &mut newest, -7, &format!("t{i:04}"));
        }
        assert_eq!(ids_at(&conn, -7).len(), PER_MICROSECOND as usize);
        let err = place(&conn, &mut newest, -7, "t").unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "timestamp",
                ..
            }
        ));
        // A retry of a stored one is still recognised.
        assert_eq!(put(&conn, &mut newest, -7, "t0005"), Place::Stored);
    }
}
