//! The crate's error type.

use std::path::{Path, PathBuf};

/// The result type of every fallible call in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when opening, writing or querying a store.
///
/// Input is validated before anything is written: an [`Error::InvalidInput`]
/// means the database was not touched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument or record field was rejected before anything was written.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The name of the offending argument or field, as the API spells it.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// An alert rule was refused; no rule of its file is kept.
    #[error("alert rule {rule:?}: invalid {field}: {reason}")]
    InvalidRule {
        /// The rule's name (empty when the file does not parse that far).
        rule: String,
        /// The field, as the file spells it.
        field: String,
        /// Why it was refused.
        reason: String,
    },

    /// The file was written by a newer version of this crate; it was left
    /// untouched.
    #[error(
        "{path}: schema version {found} is newer than the {supported} this version of \
         swarm-metrics supports; the file was left untouched",
        path = path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The schema version found in the file.
        found: i64,
        /// The newest schema version this crate knows.
        supported: i64,
    },

    /// The file is an SQLite database of another application: it has tables
    /// but no swarm-metrics schema. It was left untouched.
    #[error(
        "{path}: an SQLite database of another application (no swarm-metrics schema); \
         the file was left untouched",
        path = path.display()
    )]
    ForeignDatabase {
        /// The database file.
        path: PathBuf,
    },

    /// The file exists but is not an SQLite database, or is damaged.
    #[error("{path}: not an SQLite database, or damaged: {source}", path = path.display())]
    NotADatabase {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        #[source]
        source: SqliteError,
    },

    /// The file was written by an older version of this crate and must be
    /// migrated, which a read-only store cannot do (open it writable once),
    /// or no migration leads from its version to the current one.
    #[error(
        "{path}: schema version {found} is older than the current {current} and cannot be \
         migrated here",
        path = path.display()
    )]
    SchemaTooOld {
        /// The database file.
        path: PathBuf,
        /// The schema version found in the file.
        found: i64,
        /// The version this crate writes.
        current: i64,
    },

    /// The database file could not be opened or created: a missing or
    /// unwritable folder, a path that is a folder, missing permissions.
    #[error("{path}: cannot open the database: {source}", path = path.display())]
    CannotOpen {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        #[source]
        source: SqliteError,
    },

    /// The store cannot be written: it was opened read-only, or the file
    /// (or its folder) is not writable.
    #[error(
        "{path}: read-only (opened read-only, or the file or its folder is not writable)",
        path = path.display()
    )]
    ReadOnly {
        /// The database file.
        path: PathBuf,
    },

    /// A file-system operation on the database's path failed.
    #[error("{path}: {operation}: {source}", path = path.display())]
    Io {
        /// What was being done, e.g. "create parent folder".
        operation: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The disk is full, or the database reached its size cap. A store
    /// that fails with it stored nothing of its records; a checkpoint that
    /// fails with it leaves every committed write safe in the WAL. The
    /// store stays usable.
    #[error(
        "{path}: {operation}: the disk is full, or the database reached its size cap",
        path = path.display()
    )]
    DatabaseFull {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
    },

    /// Freeing space in place is impossible: the WAL holds writes that the
    /// database file has no room for on the full disk. The file is
    /// unchanged.
    #[error(
        "{path}: the WAL holds {wal_bytes} bytes of writes that the database file has no room \
         for, so nothing can be freed in place; free some space on this disk (any file will \
         do), then run an ordinary cleanup. The store is unchanged",
        path = path.display()
    )]
    NoRoomInPlace {
        /// The database file.
        path: PathBuf,
        /// The size of its WAL file.
        wal_bytes: u64,
    },

    /// Reading or writing the database file (or its `-wal` or `-shm` file
    /// beside it) failed in the file system: most often a full disk, a
    /// file removed or replaced while open, or a failing device.
    #[error("{path}: {operation}: {cause} ({source})", path = path.display())]
    FileSystem {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// The likely cause, from SQLite's extended error code.
        cause: &'static str,
        /// What SQLite reported.
        #[source]
        source: SqliteError,
    },

    /// SQLite reported an error.
    #[error("{operation}: {source}")]
    Sqlite {
        /// What was being done, e.g. "store task metrics".
        operation: &'static str,
        /// The underlying error.
        #[source]
        source: SqliteError,
    },

    /// No pooled reader connection could be had: opening one failed (the
    /// reason is in the message), or every one stayed busy past the busy
    /// timeout.
    #[error("{path}: no reader connection: {source}", path = path.display())]
    Pool {
        /// The database file.
        path: PathBuf,
        /// What the pool reported.
        #[source]
        source: PoolError,
    },

    /// PostgreSQL refused or failed an operation (feature `postgres`). The
    /// server is named without its password.
    #[cfg(feature = "postgres")]
    #[error("{server}: {operation}: {source}")]
    Postgres {
        /// The server and database, as `postgres://user@host:port/db`.
        server: String,
        /// What the store was doing.
        operation: &'static str,
        /// What PostgreSQL or its client reported.
        #[source]
        source: PostgresError,
    },

    /// The call is not available on this kind of store: a file's remedy
    /// on a server, say, or a call the server store does not offer (the
    /// README lists what it offers).
    #[error("{operation} is not available on {backend} stores")]
    Unsupported {
        /// The call.
        operation: &'static str,
        /// The kind of store: "PostgreSQL".
        backend: &'static str,
    },

    /// A bug in this crate: something that cannot happen did. Please
    /// report it with the message.
    #[error("internal error: {0}")]
    Internal(&'static str),

    /// A stored value could not be read back (the file was altered outside
    /// this crate).
    #[error("corrupt row in {table}: {reason}")]
    CorruptRow {
        /// The table the row came from.
        table: &'static str,
        /// What was wrong with it.
        reason: String,
    },
}

/// What SQLite reported: the source of an [`Error`]. It is kept opaque, so
/// that the version of the SQLite bindings this crate uses is not part of
/// its API; its message and [`code`](Self::code) say what happened.
#[derive(Debug)]
pub struct SqliteError(pub(crate) rusqlite::Error);

impl SqliteError {
    /// SQLite's extended result code (see
    /// <https://www.sqlite.org/rescode.html>), when SQLite gave one.
    pub fn code(&self) -> Option<i32> {
        match &self.0 {
            rusqlite::Error::SqliteFailure(error, _) => Some(error.extended_code),
            _ => None,
        }
    }
}

impl std::fmt::Display for SqliteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SqliteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<rusqlite::Error> for SqliteError {
    fn from(error: rusqlite::Error) -> Self {
        SqliteError(error)
    }
}

/// What the pool of reader connections reported: the source of
/// [`Error::Pool`], opaque for the same reason as [`SqliteError`].
#[derive(Debug)]
pub struct PoolError(pub(crate) r2d2::Error);

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for PoolError {}

/// What PostgreSQL or its client reported: the source of
/// [`Error::Postgres`], opaque so that the client's version is not part of
/// this crate's API.
#[cfg(feature = "postgres")]
#[derive(Debug)]
pub struct PostgresError(pub(crate) postgres::Error);

#[cfg(feature = "postgres")]
impl PostgresError {
    /// The SQLSTATE code the server gave (e.g. `"23505"`), if any.
    pub fn code(&self) -> Option<&str> {
        self.0.code().map(|c| c.code())
    }
}

#[cfg(feature = "postgres")]
impl std::fmt::Display for PostgresError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_db_error() {
            // The server's message, its detail and hint, not the client's
            // generic "db error".
            Some(db) => write!(f, "{}", db),
            None => self.0.fmt(f),
        }
    }
}

#[cfg(feature = "postgres")]
impl std::error::Error for PostgresError {}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// Wraps an SQLite error with what was being done.
    pub(crate) fn sqlite(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> Self {
        move |source| Error::Sqlite {
            operation,
            source: SqliteError(source),
        }
    }

    /// Names the database file in an SQLite error that concerns it: a full
    /// disk, a read-only or unreadable file, a file-system failure, or a
    /// file that is not a database. Other errors are returned as they are.
    pub(crate) fn in_file(self, path: &Path) -> Self {
        use rusqlite::ErrorCode;
        let Error::Sqlite { operation, source } = self else {
            return self;
        };
        let path = path.to_owned();
        match source.0.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Error::DatabaseFull { path, operation },
            Some(ErrorCode::ReadOnly) => Error::ReadOnly { path },
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
                Error::CannotOpen { path, source }
            }
            Some(ErrorCode::SystemIoFailure) => Error::FileSystem {
                path,
                operation,
                cause: io_cause(&source.0),
                source,
            },
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                Error::NotADatabase { path, source }
            }
            _ => Error::Sqlite { operation, source },
        }
    }

    /// Checks that `value` (a confidence, a significance level) lies
    /// strictly between 0 and 1.
    pub(crate) fn check_open_unit(field: &'static str, value: f64) -> Result<()> {
        if value > 0.0 && value < 1.0 {
            Ok(())
        } else {
            Err(Error::invalid(
                field,
                format!("must be strictly between 0 and 1, not {value}"),
            ))
        }
    }

    /// True when the error is about the caller's input, not the store.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Error::InvalidInput { .. } | Error::InvalidRule { .. })
    }
}

/// The likely cause of an SQLite I/O error, from its extended code.
fn io_cause(source: &rusqlite::Error) -> &'static str {
    use rusqlite::ffi;
    let rusqlite::Error::SqliteFailure(error, _) = source else {
        return "the file system failed";
    };
    match error.extended_code {
        ffi::SQLITE_IOERR_SHMSIZE | ffi::SQLITE_IOERR_SHMOPEN | ffi::SQLITE_IOERR_SHMMAP => {
            "no room for the -shm file beside the database: is the disk full?"
        }
        ffi::SQLITE_IOERR_WRITE | ffi::SQLITE_IOERR_FSYNC | ffi::SQLITE_IOERR_TRUNCATE => {
            "a write to the file failed: is the disk full, or the device failing?"
        }
        ffi::SQLITE_IOERR_READ | ffi::SQLITE_IOERR_SHORT_READ => {
            "a read failed: was the file truncated or replaced, or is the device failing?"
        }
        _ => {
            "the file system failed: is the disk full, or was the file or its -wal/-shm \
              file removed?"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: std::ffi::c_int) -> Error {
        Error::Sqlite {
            operation: "store task metrics",
            source: SqliteError(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            )),
        }
    }

    /// Every error that concerns the file names it, with its likely cause;
    /// the others are left as they are.
    #[test]
    fn file_errors_name_the_path_and_the_cause() {
        use rusqlite::ffi;
        let path = Path::new("/data/metrics.db");
        let cases = [
            (ffi::SQLITE_FULL, "disk is full"),
            (ffi::SQLITE_READONLY, "read-only"),
            (ffi::SQLITE_IOERR_SHMSIZE, "no room for the -shm file"),
            (ffi::SQLITE_IOERR_WRITE, "a write to the file failed"),
            (ffi::SQLITE_IOERR_SHORT_READ, "a read failed"),
            (ffi::SQLITE_PERM, "cannot open"),
            (ffi::SQLITE_NOTADB, "not an SQLite database"),
        ];
        for (code, cause) in cases {
            let message = sqlite(code).in_file(path).to_string();
            assert!(message.starts_with("/data/metrics.db: "), "{message}");
            assert!(message.contains(cause), "{code}: {message}");
        }
        let busy = sqlite(ffi::SQLITE_CONSTRAINT).in_file(path);
        assert!(matches!(busy, Error::Sqlite { .. }), "{busy:?}");
        // SQLite's code comes through the opaque source, which is also the
        // error's source.
        let Error::Sqlite { source, .. } = &busy else {
            unreachable!()
        };
        assert_eq!(source.code(), Some(ffi::SQLITE_CONSTRAINT));
        let chained = std::error::Error::source(&busy).map(|e| e.to_string());
        assert_eq!(chained, Some(source.to_string()));
    }
}
