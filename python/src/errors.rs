//! The store's errors as the Python exceptions of `swarm_metrics.errors`,
//! which are plain Python classes (so that `InvalidInput` can also be a
//! `ValueError`); the message is the store's own.

use pyo3::import_exception;
use pyo3::PyErr;
use swarm_metrics::Error as StoreError;

import_exception!(swarm_metrics.errors, Error);
import_exception!(swarm_metrics.errors, InvalidInput);
import_exception!(swarm_metrics.errors, InvalidRule);
import_exception!(swarm_metrics.errors, Closed);
import_exception!(swarm_metrics.errors, DatabaseFull);
import_exception!(swarm_metrics.errors, ForeignDatabase);
import_exception!(swarm_metrics.errors, SchemaMismatch);
import_exception!(swarm_metrics.errors, ReadOnly);
import_exception!(swarm_metrics.errors, Unsupported);

/// `InvalidInput` for an argument, worded as the store words its own:
/// "invalid {field}: {reason}".
pub fn invalid(field: &str, reason: impl std::fmt::Display) -> PyErr {
    InvalidInput::new_err(format!("invalid {field}: {reason}"))
}

/// The exception for an error of the store.
pub fn store_error(error: StoreError) -> PyErr {
    let message = error.to_string();
    match error {
        StoreError::InvalidInput { .. } => InvalidInput::new_err(message),
        StoreError::InvalidRule { .. } => InvalidRule::new_err(message),
        StoreError::DatabaseFull { .. } | StoreError::NoRoomInPlace { .. } => {
            DatabaseFull::new_err(message)
        }
        StoreError::ForeignDatabase { .. } | StoreError::NotADatabase { .. } => {
            ForeignDatabase::new_err(message)
        }
        StoreError::SchemaTooNew { .. } | StoreError::SchemaTooOld { .. } => {
            SchemaMismatch::new_err(message)
        }
        StoreError::ReadOnly { .. } => ReadOnly::new_err(message),
        StoreError::Unsupported { .. } => Unsupported::new_err(message),
        _ => Error::new_err(message),
    }
}
