//! The checks every id and count passes before anything is written,
//! shared by the records and their usage.

use crate::error::{Error, Result};

/// Longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 512;

/// Rejects empty, blank, over-long and NUL-carrying ids.
pub(crate) fn validate_id(field: &'static str, id: &str) -> Result<()> {
    if id.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty or blank"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::invalid(
            field,
            format!(
                "is {} bytes long; at most {MAX_ID_LEN} are allowed",
                id.len()
            ),
        ));
    }
    if id.contains('\0') {
        return Err(Error::invalid(field, "must not contain a NUL character"));
    }
    Ok(())
}

/// Counts are stored as SQLite integers, so they must fit an `i64`.
pub(crate) fn validate_count(field: &'static str, n: u64) -> Result<()> {
    if i64::try_from(n).is_err() {
        return Err(Error::invalid(
            field,
            format!("{n} is larger than the largest storable value {}", i64::MAX),
        ));
    }
    Ok(())
}
