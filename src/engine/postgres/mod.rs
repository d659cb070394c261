//! The store on PostgreSQL (feature `postgres`): for fleets whose
//! orchestrators run on several hosts and cannot share one file.
//!
//! `MetricsStorage::open("postgres://…")` gives the same type as a file;
//! its calls come here. The schema keeps SQLite's semantics: timestamps
//! are microseconds since 1970 (UTC) in `bigint`, ids compare byte by byte
//! (`COLLATE "C"`), `(task_id, timestamp)` identifies a task metric.
//! Tables are range-partitioned by month; the store creates the
//! partitions a write needs, and the current and next month's when it
//! opens.
//!
//! Tiered retention folds whole monthly partitions into the rollup
//! tables and drops them (`fold.rs`); reads that take rollups in lock the
//! tables before their snapshot (`rollups.rs`). The calls offered are
//! listed in the README; the few others return [`Error::Unsupported`].

mod alerts;
mod backend;
mod conn;
mod direct;
mod filter;
mod fold;
mod grouped;
mod pinned;
mod plan;
mod prices;
mod read;
mod retention;
mod rollups;
mod schema;
mod series;
mod span;
mod tally;
mod tls;
mod transfer;
mod values;
mod write;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use postgres::config::Host;
use r2d2::PooledConnection;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, PoolError, PostgresError, Result};
use conn::Manager;

pub(crate) use read::PlannedQuery;
pub(crate) use write::{Metrics, Written};

/// A metrics store on a PostgreSQL server.
pub(crate) struct PgStore {
    pool: r2d2::Pool<Manager>,
    /// `postgres://user@host:port/db`: the server without its password,
    /// for messages.
    server: String,
    /// The monthly partitions known to exist, by table and first instant.
    partitions: Mutex<HashSet<(&'static str, i64)>>,
    /// This store's number among the stores of the process, for the
    /// connection `consistent` pins.
    id: u64,
    /// A connection of its own for creating partitions, outside the pool:
    /// a write holding a pooled connection may need a partition, and must
    /// not wait for a second pooled connection that other writes hold.
    ddl: Mutex<Option<postgres::Client>>,
    /// How to open it.
    config: postgres::Config,
    connector: MakeRustlsConnect,
    /// How long a schema change waits for a lock before it fails, rather
    /// than wait for ever on a transaction that waits for it.
    lock_timeout: Duration,
    /// Metrics this store has written in transactions, and the total at
    /// which it next refreshes the statistics of the partitions written
    /// (see `write.rs`).
    bulk_rows: AtomicU64,
    next_refresh: AtomicU64,
    /// The total at which it next summarizes the time indexes.
    next_summary: AtomicU64,
    /// The partitions written in transactions since the last refresh.
    partitions_written: Mutex<std::collections::BTreeSet<String>>,
}

impl PgStore {
    /// Connects to the server `url` names, creates or migrates the schema,
    /// and pools up to `pool_size` connections, waiting at most
    /// `busy_timeout` for one.
    pub fn open(url: &str, pool_size: u32, busy_timeout: Duration) -> Result<PgStore> {
        let config = postgres::Config::from_str(url).map_err(|e| {
            // The client's message names the part it could not read, never
            // the password's value.
            Error::invalid("url", format!("not a PostgreSQL URL: {e}"))
        })?;
        let server = server_label(&config);
        let connector = tls::connector()?;
        let mut client = config
            .connect(connector.clone())
            .map_err(error_at(&server, "connect"))?;
        schema::migrate(&mut client, &server)?;
        drop(client);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(busy_timeout.max(Duration::from_secs(1)))
            .build(Manager::new(config.clone(), connector.clone()))
            .map_err(|source| Error::Pool {
                path: server.clone().into(),
                source: PoolError(source),
            })?;
        let store = PgStore {
            pool,
            server,
            partitions: Mutex::new(HashSet::new()),
            id: crate::engine::pinning::new_store_id(),
            ddl: Mutex::new(None),
            config,
            connector,
            lock_timeout: busy_timeout.max(Duration::from_secs(1)),
            bulk_rows: AtomicU64::new(0),
            next_refresh: AtomicU64::new(0),
            next_summary: AtomicU64::new(0),
            partitions_written: Mutex::new(std::collections::BTreeSet::new()),
        };
        store.create_partitions_ahead()?;
        Ok(store)
    }

    /// The server, without its password.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// A connection from the pool, for writes and maintenance (reads take
    /// [`read_conn`](Self::read_conn)).
    fn conn(&self) -> Result<PooledConnection<Manager>> {
        self.pool.get().map_err(|source| Error::Pool {
            path: self.server.clone().into(),
            source: PoolError(source),
        })
    }

    /// Runs `ddl` on the store's own connection for schema changes, opened
    /// on first use and opened again after a failure.
    fn with_ddl_connection<T>(
        &self,
        ddl: impl FnOnce(&mut postgres::Client) -> Result<T>,
    ) -> Result<T> {
        let mut slot = self
            .ddl
            .lock()
            .map_err(|_| Error::Internal("a thread panicked while creating a partition"))?;
        let client = match slot.as_mut() {
            Some(client) if !client.is_closed() => client,
            _ => {
                let mut client = self
                    .config
                    .connect(self.connector.clone())
                    .map_err(self.error("connect"))?;
                client
                    .batch_execute(&format!(
                        "SET lock_timeout = {}",
                        self.lock_timeout.as_millis()
                    ))
                    .map_err(self.error("connect"))?;
                slot.insert(client)
            }
        };
        ddl(client)
    }

    /// Maps a client error of `operation` to [`Error::Postgres`].
    fn error(&self, operation: &'static str) -> impl FnOnce(postgres::Error) -> Error + '_ {
        error_at(&self.server, operation)
    }
}

/// Reading a server row's columns: a NULL where a value must be, or a
/// value of another type, is [`Error::CorruptRow`] naming the column,
/// never a panic (as `Row::get` would).
pub(crate) trait Columns {
    /// Column `at` of the row as a `T`.
    fn column<'a, T: postgres::types::FromSql<'a>>(&'a self, at: usize) -> Result<T>;
}

impl Columns for postgres::Row {
    fn column<'a, T: postgres::types::FromSql<'a>>(&'a self, at: usize) -> Result<T> {
        self.try_get(at).map_err(|e| {
            let name = self.columns().get(at).map_or("?", |c| c.name());
            Error::CorruptRow {
                table: "a server answer",
                reason: format!("column {at} ({name}): {e}"),
            }
        })
    }
}

/// Maps a client error of `operation` on `server` to [`Error::Postgres`].
fn error_at<'a>(
    server: &'a str,
    operation: &'static str,
) -> impl FnOnce(postgres::Error) -> Error + 'a {
    move |source| Error::Postgres {
        server: server.to_owned(),
        operation,
        source: PostgresError(source),
    }
}

/// `postgres://user@host:port/db`, built from the parsed configuration so
/// that no password, in the URL or its query, can reach a message.
fn server_label(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    let at = if user.is_empty() { "" } else { "@" };
    format!("postgres://{user}{at}{host}:{port}/{db}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_label_carries_no_password() {
        for url in [
            "postgres://me:s3cret@db.example:6543/metrics?sslmode=require",
            "postgresql://me@db.example:6543/metrics?password=s3cret",
        ] {
            let label = server_label(&postgres::Config::from_str(url).unwrap());
            assert_eq!(label, "postgres://me@db.example:6543/metrics");
            assert!(!label.contains("s3cret"));
        }
    }
}
