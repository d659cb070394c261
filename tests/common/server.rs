//! The stores a conformance test runs on: always a temporary SQLite file;
//! with the `postgres` feature, also a throwaway database on the server
//! `SWARM_METRICS_PG_URL` names (`scripts/test` starts one). With the
//! feature on and no server, the tests fail rather than skip.
#![allow(dead_code)]

use swarm_metrics::MetricsStorage;

/// A store under test, and the database it lives in when on a server.
pub struct TestStore {
    /// "SQLite" or "PostgreSQL".
    pub backend: &'static str,
    pub store: MetricsStorage,
    /// What `--db` takes: the file's path, or the database's URL.
    pub location: String,
    /// Declared after the store, so that the store's connections close
    /// before its database is dropped.
    _database: Option<Database>,
}

impl TestStore {
    /// Removes every task metric: a fresh start between the cases of a
    /// property test without a new database each time.
    pub fn clear(&self) {
        match &self._database {
            Some(db) => db.execute("TRUNCATE task_metrics"),
            None => {
                rusqlite::Connection::open(self.store.path())
                    .unwrap()
                    .execute_batch("DELETE FROM task_metrics")
                    .unwrap();
            }
        }
    }
}

/// A database created for one test on the test server, dropped after it.
pub struct Database {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl Database {
    fn create(admin_url: &str) -> Database {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "swarm_metrics_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut admin = postgres::Client::connect(admin_url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("the test server {admin_url} does not answer: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let (base, query) = match admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (admin_url, String::new()),
        };
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        Database {
            admin_url: admin_url.to_owned(),
            url: format!("{server}/{name}{query}"),
            name,
        }
    }

    /// How many partitions `table` has in the test's database.
    pub fn count_partitions(&self, table: &str) -> i64 {
        postgres::Client::connect(&self.url, postgres::NoTls)
            .unwrap()
            .query_one(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = $1::text::regclass",
                &[&table],
            )
            .unwrap()
            .get(0)
    }

    /// Runs `sql` in the test's database.
    pub fn execute(&self, sql: &str) {
        postgres::Client::connect(&self.url, postgres::NoTls)
            .unwrap()
            .batch_execute(sql)
            .unwrap();
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The test server's URL. With the `postgres` feature, a missing server
/// fails the test: the feature's tests must not pass by not running.
#[cfg(feature = "postgres")]
pub fn server_url() -> String {
    std::env::var("SWARM_METRICS_PG_URL").unwrap_or_else(|_| {
        panic!(
            "the postgres feature is on but SWARM_METRICS_PG_URL names no server: \
             run scripts/test, which starts one"
        )
    })
}

/// A fresh, empty database on the test server.
#[cfg(feature = "postgres")]
pub fn database() -> Database {
    Database::create(&server_url())
}

/// One fresh store per backend this build has.
pub fn stores() -> Vec<TestStore> {
    let store = MetricsStorage::temporary().unwrap();
    let sqlite = TestStore {
        backend: "SQLite",
        location: store.path().display().to_string(),
        store,
        _database: None,
    };
    #[cfg(feature = "postgres")]
    {
        let db = database();
        let postgres = TestStore {
            backend: "PostgreSQL",
            store: MetricsStorage::open(&db.url).unwrap(),
            location: db.url.clone(),
            _database: Some(db),
        };
        vec![sqlite, postgres]
    }
    #[cfg(not(feature = "postgres"))]
    vec![sqlite]
}
