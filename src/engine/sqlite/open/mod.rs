//! Opening a store's file: checking the path, recognising the file,
//! creating or migrating its schema ([`schema`]), the pragmas every
//! connection gets ([`settings`]) and the pool of readers ([`pool`]).
//!
//! What comes out is a set of configured connections; the store
//! ([`crate::MetricsStorage`]) puts its writer on top of them.

pub(crate) mod gate;
pub(crate) mod pool;
pub(crate) mod schema;
pub(crate) mod settings;
mod upgrade;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use crate::error::{Error, PoolError, Result};
use gate::ReadGate;
use pool::{OpenReaders, ReaderManager};
use schema::{classify_open_error, open_database};
use settings::{ConnectionSettings, Durability};

/// How to open a store's file; the options of
/// [`StorageBuilder`](crate::StorageBuilder) that concern the file.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub path: PathBuf,
    pub pool_size: u32,
    pub busy_timeout: Duration,
    pub durability: Durability,
    pub read_only: bool,
    pub create_dirs: bool,
    pub max_size: Option<u64>,
    pub mmap_size: u64,
}

/// The part of the file readers map into memory by default (see
/// [`StorageBuilder::mmap_size`](crate::StorageBuilder::mmap_size)).
pub(crate) const DEFAULT_MMAP_SIZE: u64 = 1 << 30;

impl Options {
    /// The defaults listed on [`StorageBuilder`](crate::StorageBuilder).
    pub fn new(path: PathBuf) -> Self {
        Options {
            path,
            pool_size: 8,
            busy_timeout: Duration::from_secs(5),
            durability: Durability::Normal,
            read_only: false,
            create_dirs: true,
            max_size: None,
            mmap_size: DEFAULT_MMAP_SIZE,
        }
    }
}

/// An opened store file: its connections, configured, with the schema
/// current.
pub(crate) struct Opened {
    pub settings: ConnectionSettings,
    /// The connection that found the schema: the writer's, or a reader's
    /// when read-only.
    pub first: Connection,
    /// A second writable connection, for background checkpoints; `None`
    /// when read-only.
    pub checkpoint: Option<Connection>,
    pub readers: Pool<ReaderManager>,
    pub open_readers: Arc<OpenReaders>,
    /// What every read passes; the checkpointer closes it.
    pub gate: Arc<ReadGate>,
}

/// Opens (or creates) the file `options` name.
///
/// # Errors
/// As [`StorageBuilder::open`](crate::StorageBuilder::open).
pub(crate) fn open(options: &Options) -> Result<Opened> {
    if options.pool_size == 0 {
        return Err(Error::invalid("pool_size", "must be at least 1"));
    }
    let path = &options.path;
    if path.as_os_str().is_empty() {
        return Err(Error::invalid("path", "must not be empty"));
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Err(cannot_open(path, "the path is a folder")),
        // A FIFO, a device or a socket: SQLite would block on it, or worse.
        Ok(meta) if !meta.is_file() => {
            return Err(cannot_open(path, "not a regular file"));
        }
        _ => {}
    }
    if options.read_only && !path.exists() {
        return Err(cannot_open(
            path,
            "no such file (a read-only store is never created)",
        ));
    }
    if options.create_dirs && !options.read_only {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                operation: "create parent folder",
                path: parent.to_owned(),
                source,
            })?;
        }
    }
    check_header(path)?;
    let settings = ConnectionSettings {
        busy_timeout: options.busy_timeout,
        durability: options.durability,
        read_only: options.read_only,
        mmap_size: options.mmap_size,
    };
    let (first, target) = match open_database(path, &settings) {
        Err(Error::ReadOnly { .. } | Error::CannotOpen { .. } | Error::FileSystem { .. })
            if settings.read_only && wal_size(path) == 0 =>
        {
            // A WAL database in a folder this process cannot write, or on
            // a full disk: SQLite cannot create the shared-memory file it
            // reads through. With nothing in the WAL there is nothing but
            // the main file to read, so read it as immutable.
            let target = immutable_uri(path);
            (
                open_database(Path::new(&target), &settings)?,
                PathBuf::from(target),
            )
        }
        other => (other?, path.clone()),
    };
    if let Some(bytes) = options.max_size {
        cap_size(&first, bytes)?;
    }
    let checkpoint = if settings.read_only {
        None
    } else {
        let conn = Connection::open_with_flags(path, settings.flags())
            .and_then(|conn| settings.apply(&conn, false).map(|()| conn))
            .map_err(|source| classify_open_error(path, source, "open checkpoint connection"))?;
        Some(conn)
    };
    let open_readers = Arc::new(OpenReaders::default());
    let manager = ReaderManager::new(
        SqliteConnectionManager::file(&target)
            .with_flags(settings.flags())
            .with_init(move |conn| settings.apply(conn, true)),
        Arc::clone(&open_readers),
    );
    let readers = Pool::builder()
        .max_size(options.pool_size)
        // An SQLite connection to a local file does not go stale: checking
        // each one out with a test query would only cost every read.
        .test_on_check_out(false)
        .min_idle(Some(0))
        .connection_timeout(options.busy_timeout.max(Duration::from_secs(1)))
        .build(manager)
        .map_err(|source| Error::Pool {
            path: path.clone(),
            source: PoolError(source),
        })?;
    Ok(Opened {
        settings,
        first,
        checkpoint,
        readers,
        open_readers,
        gate: Arc::new(ReadGate::default()),
    })
}

/// Refuses, before SQLite opens it (and might roll back a hot journal or
/// write a schema into it), a file that is neither new nor a database of
/// this crate: its header must carry our application id, or be that of an
/// SQLite file nobody has written anything into. A missing or empty file
/// is a new store.
pub(crate) fn check_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut header = Vec::with_capacity(100);
    match std::fs::File::open(path) {
        Ok(file) => file.take(100).read_to_end(&mut header),
        // Missing is new; anything else SQLite reports with its own reason.
        Err(_) => return Ok(()),
    }
    .map_err(|source| Error::Io {
        operation: "read the database header",
        path: path.to_owned(),
        source,
    })?;
    if header.is_empty() {
        return Ok(());
    }
    if header.len() < 100 || !header.starts_with(b"SQLite format 3\0") {
        return Err(Error::NotADatabase {
            path: path.to_owned(),
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
                Some("no SQLite header".to_owned()),
            )
            .into(),
        });
    }
    // Big-endian 32-bit fields of the header.
    let field = |at: usize| {
        i64::from(u32::from_be_bytes([
            header[at],
            header[at + 1],
            header[at + 2],
            header[at + 3],
        ]))
    };
    let (schema_cookie, user_version, application_id) = (field(40), field(60), field(68));
    if application_id == schema::APPLICATION_ID {
        return Ok(());
    }
    // An SQLite file that nobody ever gave a schema, a version or an id: a
    // new store, possibly being created by another process right now (its
    // first page is written before the schema and the id are). Its journal,
    // if any, can only undo that creation.
    if application_id == 0 && schema_cookie == 0 && user_version == 0 {
        return Ok(());
    }
    Err(Error::ForeignDatabase {
        path: path.to_owned(),
    })
}

/// Caps the file at about `bytes` through `PRAGMA max_page_count`.
fn cap_size(conn: &Connection, bytes: u64) -> Result<()> {
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(Error::sqlite("read page size"))?;
    let pages = i64::try_from(bytes).unwrap_or(i64::MAX) / page_size.max(1);
    conn.query_row(
        &format!("PRAGMA max_page_count = {}", pages.max(1)),
        [],
        |_| Ok(()),
    )
    .map_err(Error::sqlite("cap database size"))
}

/// [`Error::CannotOpen`] for `path`, for a reason found before SQLite was
/// asked.
pub(crate) fn cannot_open(path: &Path, reason: &str) -> Error {
    Error::CannotOpen {
        source: rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(reason.to_owned()),
        )
        .into(),
        path: path.to_owned(),
    }
}

/// The size of the database's WAL file; 0 when there is none. At 0 the
/// main file holds every committed write.
pub(crate) fn wal_size(path: &Path) -> u64 {
    std::fs::metadata(side_file(path, "-wal")).map_or(0, |meta| meta.len())
}

/// `path` with `suffix` appended, e.g. the `-wal` file of a database.
fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// An SQLite URI opening `path` read-only as immutable (no locks, no
/// shared-memory file).
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            '%' => uri.push_str("%25"),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    uri
}
