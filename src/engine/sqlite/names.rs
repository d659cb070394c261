//! Swarm names by their interned ids, remembered by the store, so that
//! reading a task metric does not look its swarm's name up in the file.
//!
//! An id names the same swarm for the life of a file: ids are interned
//! once and never deleted nor reused, so what is remembered never goes
//! stale. An id not remembered yet is read from the snapshot whose row
//! named it, where it is therefore present: the caller says how.

use std::sync::{PoisonError, RwLock};

use crate::error::{Error, Result};

/// The swarm names a store has read, at their ids: interned ids count up
/// from 1, so a list is both the smallest and the quickest map.
#[derive(Debug, Default)]
pub(crate) struct SwarmNames(RwLock<Vec<Option<String>>>);

/// Ids up to this are remembered; a larger one (only a file written by
/// hand has one) is read each time.
const REMEMBERED: usize = 1 << 16;

impl SwarmNames {
    /// The name of swarm `id`, read by `read` the first time.
    pub fn name(
        &self,
        id: i64,
        read: impl FnOnce(i64) -> Result<Option<String>>,
    ) -> Result<String> {
        let at = usize::try_from(id).ok().filter(|&at| at < REMEMBERED);
        if let Some(at) = at {
            let known = self.0.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(Some(name)) = known.get(at) {
                return Ok(name.clone());
            }
        }
        let name = read(id)?.ok_or_else(|| Error::CorruptRow {
            table: "task_metrics",
            reason: format!("swarm {id} is not in swarms"),
        })?;
        if let Some(at) = at {
            let mut known = self.0.write().unwrap_or_else(PoisonError::into_inner);
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
        let names = SwarmNames::default();
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
