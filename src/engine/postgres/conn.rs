//! The pool's connections, each with the statements it has prepared.
//!
//! A statement sent unnamed is parsed and planned again on every call,
//! and planning a query over a partitioned table costs more than running
//! it: looking a task up by id took 0.28 ms so against 0.10 ms prepared
//! (pgbench, 100k tasks in four monthly partitions). The hot reads and
//! writes therefore run prepared statements that each connection keeps
//! for as long as it lives.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use postgres::types::{ToSql, Type};
use postgres::{Client, Row, Statement};
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

/// At most this many statements are kept per connection; past it, the
/// cache starts again (queries differ in their filters' shape only, so a
/// store asks a few dozen).
const MAX_STATEMENTS: usize = 256;

/// A connection used this recently is handed out without the round trip
/// that tests it: a server that went away since fails the statement, and
/// the connection is dropped. One idle for longer (the server restarted,
/// a firewall forgot it) is tested first and replaced if dead. Testing
/// every check-out cost a single store a fifth of its time.
const TESTED_IF_IDLE: Duration = Duration::from_secs(1);

/// Makes and checks the pool's connections.
pub(crate) struct Manager(PostgresConnectionManager<MakeRustlsConnect>);

impl Manager {
    pub fn new(config: postgres::Config, connector: MakeRustlsConnect) -> Self {
        Manager(PostgresConnectionManager::new(config, connector))
    }
}

/// A connection to the server and the statements it has prepared, by
/// their SQL text.
pub(crate) struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
    /// When the client was last used (taken mutably: every statement).
    used: Instant,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn {
            client: self.0.connect()?,
            statements: HashMap::new(),
            used: Instant::now(),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        if conn.used.elapsed() < TESTED_IF_IDLE {
            return Ok(());
        }
        self.0.is_valid(&mut conn.client)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        self.0.has_broken(&mut conn.client)
    }
}

impl Deref for Conn {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        self.used = Instant::now();
        &mut self.client
    }
}

impl Conn {
    /// Runs `sql` with `params` (values and their types) as a statement
    /// this connection prepares once and keeps.
    ///
    /// A kept statement whose plan no longer fits the schema (a column
    /// changed type under it, by a newer version migrating the database)
    /// is prepared again once.
    pub fn query_prepared(
        &mut self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, postgres::Error> {
        self.used = Instant::now();
        let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
        let statement = self.statement(sql, params)?;
        match self.client.query(&statement, &values) {
            Err(e) if plan_is_stale(&e) => {
                self.statements.remove(sql);
                let statement = self.statement(sql, params)?;
                self.client.query(&statement, &values)
            }
            answer => answer,
        }
    }

    /// The statement of `sql`, prepared with the parameters' types on
    /// first use.
    fn statement(
        &mut self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let types: Vec<Type> = params.iter().map(|(_, ty)| ty.clone()).collect();
        let statement = self.client.prepare_typed(sql, &types)?;
        if self.statements.len() >= MAX_STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// Whether `e` says a prepared statement's plan no longer fits the
/// tables: "cached plan must not change result type".
fn plan_is_stale(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::FEATURE_NOT_SUPPORTED)
}
