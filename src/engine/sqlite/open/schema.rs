//! Recognising a database file, and creating or migrating its schema.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::settings::ConnectionSettings;
use crate::error::{Error, Result};

/// The version the last migration leads to: what this version of the
/// crate writes.
pub const SCHEMA_VERSION: i64 = 10;

/// `PRAGMA application_id` of a swarm-metrics file ("SwMt").
pub(crate) const APPLICATION_ID: i64 = 0x5377_4d74;

/// One step from the version before `to` to `to`, applied in the same
/// transaction as every other pending step.
pub(crate) struct Migration {
    pub to: i64,
    pub sql: &'static str,
    /// What moves the data, after `sql`, where SQL alone cannot.
    pub then: Option<fn(&Connection) -> Result<()>>,
}

/// Every migration, oldest first: a new file gets them all, an older file
/// the ones it lacks. Each statement of the schema is written once, in the
/// migration that introduced it.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        to: 1,
        sql: include_str!("../../../../migrations/0001_initial.sql"),
        then: None,
    },
    Migration {
        to: 2,
        sql: include_str!("../../../../migrations/0002_time_keyed_tasks.sql"),
        then: None,
    },
    Migration {
        to: 3,
        sql: include_str!("../../../../migrations/0003_compact_rollups.sql"),
        then: Some(super::upgrade::copy_v2_rollups),
    },
    Migration {
        to: 4,
        sql: include_str!("../../../../migrations/0004_drop_old_rollups.sql"),
        then: None,
    },
    Migration {
        to: 5,
        sql: include_str!("../../../../migrations/0005_metric_identity.sql"),
        then: None,
    },
    Migration {
        to: 6,
        sql: include_str!("../../../../migrations/0006_task_id_index.sql"),
        then: None,
    },
    Migration {
        to: 7,
        sql: include_str!("../../../../migrations/0007_keyed_tasks.sql"),
        then: None,
    },
    Migration {
        to: 8,
        sql: include_str!("../../../../migrations/0008_alerts.sql"),
        then: None,
    },
    Migration {
        to: 9,
        sql: include_str!("../../../../migrations/0009_usage_and_prices.sql"),
        then: None,
    },
    Migration {
        to: 10,
        sql: include_str!("../../../../migrations/0010_index_state_in_files.sql"),
        then: None,
    },
];

/// Opens `path` and makes sure it holds the current schema: creates it in
/// an empty file, migrates an older one, refuses a newer or foreign one
/// without writing to it. Returns the connection, set up as the writer (or
/// as a reader when read-only).
pub(crate) fn open_database(path: &Path, settings: &ConnectionSettings) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, settings.flags())
        .map_err(|source| classify_open_error(path, source, "open database"))?;
    conn.busy_timeout(settings.busy_timeout)
        .map_err(Error::sqlite("set busy timeout"))?;

    match inspect(&conn, path)? {
        Found::Empty if settings.read_only => {
            return Err(Error::ForeignDatabase {
                path: path.to_owned(),
            })
        }
        Found::Empty => create(&conn, path)?,
        Found::Version(v) if v > SCHEMA_VERSION => {
            return Err(Error::SchemaTooNew {
                path: path.to_owned(),
                found: v,
                supported: SCHEMA_VERSION,
            })
        }
        Found::Version(v) if v < SCHEMA_VERSION => {
            if settings.read_only {
                return Err(Error::SchemaTooOld {
                    path: path.to_owned(),
                    found: v,
                    current: SCHEMA_VERSION,
                });
            }
            migrate(&conn, path, MIGRATIONS, SCHEMA_VERSION)?;
        }
        Found::Version(_) => {}
    }

    if !settings.read_only {
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(Error::sqlite("enable WAL journal"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Sqlite {
                operation: "enable WAL journal",
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(format!("journal mode stayed {mode:?}")),
                )
                .into(),
            });
        }
    }
    settings
        .apply(&conn, false)
        .map_err(Error::sqlite("configure connection"))?;
    Ok(conn)
}

/// What an opened file holds.
enum Found {
    /// No tables at all: a new file.
    Empty,
    /// A swarm-metrics schema of this version.
    Version(i64),
}

/// Reads, without writing, what the file holds.
fn inspect(conn: &Connection, path: &Path) -> Result<Found> {
    let not_a_db = |source| classify_open_error(path, source, "read schema");
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |row| row.get(0),
        )
        .map_err(not_a_db)?;
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(|source| classify_open_error(path, source, "read application id"))?;
    if tables == 0 && app_id == 0 {
        return Ok(Found::Empty);
    }
    let foreign = || Error::ForeignDatabase {
        path: path.to_owned(),
    };
    if app_id != APPLICATION_ID {
        return Err(foreign());
    }
    let has_info: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema \
             WHERE type = 'table' AND name = 'metrics_schema_info')",
            [],
            |row| row.get(0),
        )
        .map_err(Error::sqlite("read schema"))?;
    if !has_info {
        return Err(foreign());
    }
    let version: Option<i64> = conn
        .query_row("SELECT max(version) FROM metrics_schema_info", [], |row| {
            row.get(0)
        })
        .optional()
        .map_err(Error::sqlite("read schema version"))?
        .flatten();
    version.map(Found::Version).ok_or_else(foreign)
}

/// Writes the current schema into an empty file, in one transaction.
fn create(conn: &Connection, path: &Path) -> Result<()> {
    // Must precede the first table: incremental vacuum lets retention give
    // space back in bounded steps, without a full VACUUM.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .map_err(Error::sqlite("set auto_vacuum"))?;
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(Error::sqlite("create schema"))?;
    // Another process may have created the schema since `inspect`.
    let still_empty: i64 = tx
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(Error::sqlite("create schema"))?;
    if still_empty != 0 {
        drop(tx);
        return match inspect(conn, path)? {
            Found::Version(v) if v == SCHEMA_VERSION => Ok(()),
            Found::Version(v) => Err(Error::SchemaTooNew {
                path: path.to_owned(),
                found: v,
                supported: SCHEMA_VERSION,
            }),
            Found::Empty => Err(Error::ForeignDatabase {
                path: path.to_owned(),
            }),
        };
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(Error::sqlite("set application id"))?;
    apply(&tx, MIGRATIONS, 0, SCHEMA_VERSION)?;
    tx.commit().map_err(Error::sqlite("create schema"))
}

/// Applies every migration newer than the file's version, all in one
/// transaction: either the file ends at `target` or it is left as it was.
pub(crate) fn migrate(
    conn: &Connection,
    path: &Path,
    migrations: &[Migration],
    target: i64,
) -> Result<()> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(Error::sqlite("migrate schema"))?;
    let from = match inspect(&tx, path)? {
        Found::Version(v) => v,
        Found::Empty => return Err(Error::ForeignDatabase { path: path.into() }),
    };
    if apply(&tx, migrations, from, target)? != target {
        return Err(Error::SchemaTooOld {
            path: path.to_owned(),
            found: from,
            current: target,
        });
    }
    tx.commit().map_err(Error::sqlite("migrate schema"))
}

/// Applies the migrations after version `from` up to `target`, recording
/// each; returns the version reached.
fn apply(conn: &Connection, migrations: &[Migration], from: i64, target: i64) -> Result<i64> {
    let mut version = from;
    for step in migrations.iter().filter(|m| m.to > from && m.to <= target) {
        conn.execute_batch(step.sql)
            .map_err(Error::sqlite("migrate schema"))?;
        if let Some(then) = step.then {
            then(conn)?;
        }
        record_version(conn, step.to)?;
        version = step.to;
    }
    Ok(version)
}

/// Writes the current schema into an empty database, without the file's
/// pragmas: for tests of the layers below a store.
#[cfg(test)]
pub(crate) fn create_for_test(conn: &Connection) {
    apply_for_test(conn, SCHEMA_VERSION);
}

/// Writes the schema of version `version` into an empty database and
/// records it: for tests of migrations.
#[cfg(test)]
pub(crate) fn apply_for_test(conn: &Connection, version: i64) {
    apply(conn, MIGRATIONS, 0, version).expect("the migrations apply");
}

fn record_version(conn: &Connection, version: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO metrics_schema_info (version, applied_at) VALUES (?1, ?2)",
        (
            version,
            crate::model::filter::to_micros(crate::model::record::now()),
        ),
    )
    .map(drop)
    .map_err(Error::sqlite("record schema version"))
}

/// Maps the errors SQLite gives for files that are not databases, that
/// cannot be opened, or that the file system fails on, to the error naming
/// the path.
pub(crate) fn classify_open_error(
    path: &Path,
    source: rusqlite::Error,
    operation: &'static str,
) -> Error {
    Error::Sqlite {
        operation,
        source: source.into(),
    }
    .in_file(path)
}

#[cfg(test)]
mod tests;
