//! Swarm names and models by their interned ids, remembered by the
//! store, so that reading a task metric does not look them up in the file.
//!
//! An id names the same swarm (or model and provider) for the life of a
//! file: ids are interned once and never deleted nor reused, so what is
//! remembered never goes stale. An id not remembered yet is read from the
//! snapshot whose row named it, where it is therefore present: the caller
//! says how.

use std::sync::{PoisonError, RwLock};

use crate::error::{Error, Result};

/// The names a store has read, at their ids: interned ids count up from 1,
/// so a list is both the smallest and the quickest map.
#[derive(Debug)]
pub(crate) struct Remembered<T> {
    known: RwLock<Vec<Option<T>>>,
    /// The table the ids are rows of, for the error a missing one gives.
    table: &'static str,
}

/// Swarm names by id.
pub(crate) type SwarmNames = Remembered<String>;

/// `(model, provider)` by id; '' for the one a task did not name.
pub(crate) type ModelNames = Remembered<(String, String)>;

/// Ids up to this are remembered; a larger one (only a file written by
/// hand has one) is read each time.
const REMEMBERED: usize = 1 << 16;

impl<T: Clone> Remembered<T> {
    /// Nothing remembered yet of the rows of `table`.
    pub fn new(table: &'static str) -> Self {
        Remembered {
            known: RwLock::new(Vec::new()),
            table,
        }
    }

    /// The name of row `id`, read by `read` the first time.
    pub fn name(&self, id: i64, read: impl FnOnce(i64) -> Result<Option<T>>) -> Result<T> {
        let at = usize::try_from(id).ok().filter(|&at| at < REMEMBERED);
        if let Some(at) = at {
            let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(Some(name)) = known.get(at) {
                return Ok(name.clone());
            }
        }
        let name = read(id)?.ok_or_else(|| Error::CorruptRow {
            table: "task_metrics",
            reason: format!("{id} is not a row of {}", self.table),
        })?;
        if let Some(at) = at {
            let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
            if known.len() <= at {
                known.resize(at + 1, None);
            }
            known[at] = Some(name.clone());
        }
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_name_is_read_once_and_a_missing_one_is_corruption() {
        let names = SwarmNames::new("swarms");
        let reads = Cell::new(0);
        let read = |id: i64| {
            reads.set(reads.get() + 1);
            Ok((id != 9).then(|| format!("swarm-{id}")))
        };
        assert_eq!(names.name(3, read).unwrap(), "swarm-3");
        assert_eq!(names.name(3, read).unwrap(), "swarm-3");
        assert_eq!(reads.get(), 1);
        // Ids past what is remembered, or negative, are read every time.
        for id in [REMEMBERED as i64, -1] {
            names.name(id, read).unwrap();
            names.name(id, read).unwrap();
        }
        assert_eq!(reads.get(), 5);
        let err = names.name(9, read).unwrap_err();
        assert!(matches!(err, Error::CorruptRow { .. }), "{err}");
    }
}
