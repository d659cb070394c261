//! One group of jobs in one write transaction: begin (waiting for other
//! processes in short steps), run each job, commit; on a failure, roll
//! back and run the group again with a savepoint per job.

use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode};

use super::checkpoint::{take_wal_pages, watch_wal, Checkpointer, RESTART_WAIT_MAX};
use super::{Caches, Job, JobFn, Output, WriterOptions};
use crate::error::{Error, Result};

/// Longest pause between two attempts to take the write lock from another
/// process: short, so that a writer gets in between the chunks of another
/// process's maintenance (which pauses longer than this between chunks).
const LOCK_POLL_MAX: Duration = Duration::from_millis(1);

/// Longest the writer holds back for a restart of the log: its wait for
/// other processes' readers, and the copy of what the passive checkpoint
/// before it left.
const RESTART_HOLD_MAX: Duration = RESTART_WAIT_MAX.saturating_mul(2);

/// The writer connection and its caches.
pub(super) struct WriterConnection<C> {
    conn: Connection,
    pub caches: C,
    /// `PRAGMA data_version` when the caches were last known good.
    data_version: Option<i64>,
    checkpointer: Option<Checkpointer>,
    /// How long to wait for another process's write lock.
    busy_timeout: Duration,
}

impl<C: Caches> WriterConnection<C> {
    /// The writer over `conn`, with the WAL watched when background
    /// checkpoints take over. SQLite's own busy handler is turned off on
    /// it: [`begin`](Self::begin) waits for the write lock in short steps
    /// instead of SQLite's up to 100 ms sleeps, which can miss every gap
    /// between another process's transactions.
    pub fn new(conn: Connection, caches: C, options: WriterOptions) -> Result<Self> {
        conn.busy_timeout(Duration::ZERO)
            .map_err(Error::sqlite("set busy timeout"))?;
        if options.checkpointer.is_some() {
            watch_wal(&conn);
        }
        Ok(WriterConnection {
            conn,
            caches,
            data_version: None,
            checkpointer: options.checkpointer,
            busy_timeout: options.busy_timeout,
        })
    }

    /// Stops background checkpoints (before the final one, on close).
    pub fn stop_checkpointer(&mut self) {
        if let Some(mut checkpointer) = self.checkpointer.take() {
            checkpointer.stop();
        }
    }

    /// Runs `f` on the connection outside any transaction, for maintenance
    /// (vacuum, checkpoints), with SQLite's busy handler waiting up to the
    /// busy timeout; the caches are forgotten afterwards, since maintenance
    /// may have changed anything.
    pub fn maintain<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.conn
            .busy_timeout(self.busy_timeout)
            .map_err(Error::sqlite("set busy timeout"))?;
        let result = f(&self.conn);
        let reset = self
            .conn
            .busy_timeout(Duration::ZERO)
            .map_err(Error::sqlite("set busy timeout"));
        self.caches.forget();
        let value = result?;
        reset?;
        Ok(value)
    }

    /// Writes a group in one transaction: first without savepoints; if a
    /// job fails, again with one savepoint per job.
    pub fn write_group(&mut self, group: &[&Job<'_, C>]) -> Vec<Result<Output>> {
        if let Err(e) = self.begin() {
            return group.iter().map(|_| Err(copy_error(&e))).collect();
        }
        let results: Vec<Result<Output>> = group
            .iter()
            .map(|job| (job.work)(&self.conn, &mut self.caches))
            .collect();
        if results.iter().all(Result::is_ok) {
            return self.commit(results);
        }
        self.rollback();
        if group.len() == 1 {
            return results;
        }
        if let Err(e) = self.begin() {
            return group.iter().map(|_| Err(copy_error(&e))).collect();
        }
        let results = group
            .iter()
            .map(|job| self.write_in_savepoint(&job.work))
            .collect();
        self.commit(results)
    }

    fn begin(&mut self) -> Result<()> {
        if !self.conn.is_autocommit() {
            // Only after a panic mid-write: end what it left open.
            self.rollback();
        }
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.wait_for_restart(RESTART_HOLD_MAX);
        }
        self.take_write_lock()?;
        let version: i64 = self
            .conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(Error::sqlite("begin write"))?;
        if self.data_version != Some(version) {
            // Another connection wrote: what the caches know may be stale.
            self.caches.others_wrote();
            self.data_version = Some(version);
        }
        Ok(())
    }

    /// `BEGIN IMMEDIATE`, retried in steps of at most [`LOCK_POLL_MAX`]
    /// while another process holds the write lock, up to the busy timeout.
    fn take_write_lock(&mut self) -> Result<()> {
        // Only a lock found taken starts the clock: stores pay nothing.
        let mut deadline = None;
        let mut pause = Duration::from_micros(50);
        loop {
            let begun = self
                .conn
                .prepare_cached("BEGIN IMMEDIATE")
                .and_then(|mut s| s.execute([]));
            match begun {
                Err(e)
                    if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                        && Instant::now()
                            < *deadline
                                .get_or_insert_with(|| Instant::now() + self.busy_timeout) =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(LOCK_POLL_MAX);
                }
                other => return other.map(drop).map_err(Error::sqlite("begin write")),
            }
        }
    }

    /// Runs one job in a transaction of its own, never retried: for work
    /// too long to copy or to run twice (a streamed import). Its writes
    /// are committed if it returns `Ok` and rolled back otherwise.
    pub fn write_alone<T>(
        &mut self,
        job: impl FnOnce(&Connection, &mut C) -> Result<T>,
    ) -> Result<T> {
        self.begin()?;
        match job(&self.conn, &mut self.caches) {
            Ok(output) => self.finish().map(|()| output),
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// Commits, after the caches' last words; if either fails, every job
    /// of the group fails with it.
    fn commit(&mut self, mut results: Vec<Result<Output>>) -> Vec<Result<Output>> {
        if let Err(e) = self.finish() {
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(copy_error(&e));
            }
        }
        results
    }

    /// Commits the open transaction after the caches' last words, or rolls
    /// it back when either fails.
    fn finish(&mut self) -> Result<()> {
        let commit = self.caches.before_commit(&self.conn).and_then(|()| {
            self.conn
                .prepare_cached("COMMIT")
                .and_then(|mut s| s.execute([]))
                .map_err(Error::sqlite("commit"))
        });
        // Taken in any case, so that no later commit on this thread sees it.
        let wal_pages = take_wal_pages();
        match commit {
            Ok(_) => {
                if let (Some(checkpointer), Some(pages)) = (&self.checkpointer, wal_pages) {
                    checkpointer.note_commit(pages);
                }
                Ok(())
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    fn rollback(&mut self) {
        // Fails only when SQLite already rolled back (it does on some I/O
        // errors); either way no transaction remains.
        let _ = self.conn.execute_batch("ROLLBACK");
        self.caches.forget();
    }

    fn write_in_savepoint(&mut self, job: &JobFn<'_, C>) -> Result<Output> {
        self.conn
            .execute_batch("SAVEPOINT job")
            .map_err(Error::sqlite("begin batch"))?;
        match job(&self.conn, &mut self.caches) {
            Ok(output) => {
                self.conn
                    .execute_batch("RELEASE job")
                    .map_err(Error::sqlite("end batch"))?;
                Ok(output)
            }
            Err(e) => {
                self.caches.forget();
                // If even this fails, the commit that follows fails too and
                // every job of the group reports it.
                let _ = self.conn.execute_batch("ROLLBACK TO job; RELEASE job");
                Err(e)
            }
        }
    }
}

/// Errors are not `Clone`; a failure that every job of a group shares is
/// rebuilt for each from its code and message.
fn copy_error(e: &Error) -> Error {
    let (operation, source) = match e {
        Error::Sqlite { operation, source } => (*operation, &source.0),
        other => {
            return Error::Sqlite {
                operation: "write",
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                    Some(other.to_string()),
                )
                .into(),
            }
        }
    };
    let source = match source {
        rusqlite::Error::SqliteFailure(code, msg) => {
            rusqlite::Error::SqliteFailure(*code, msg.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    };
    Error::Sqlite {
        operation,
        source: source.into(),
    }
}
