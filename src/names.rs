//! Swarm names by their interned ids, remembered by the store, so that
//! reading a task metric does not look its swarm's name up in the file.
//!
//! An id names the same swarm for the life of a file: ids are interned
//! once and never deleted nor reused, so what is remembered never goes
//! stale. An id not remembered yet is read from the snapshot whose row
//! named it, where it is therefore present.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use crate::error::{Error, Result};
use crate::storage::Snapshot;

/// The swarm names a store has read, by id.
#[derive(Debug, Default)]
pub(crate) struct SwarmNames(RwLock<HashMap<i64, String>>);

impl SwarmNames {
    /// The name of swarm `id`, read from `snapshot` the first time.
    pub fn name(&self, snapshot: &Snapshot<'_>, id: i64) -> Result<String> {
        let known = self.0.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(name) = known.get(&id) {
            return Ok(name.clone());
        }
        drop(known);
        let name: String = snapshot
            .one(
                "SELECT name FROM swarms WHERE id = ?1",
                vec![id.into()],
                "read task metrics",
            )?
            .ok_or_else(|| Error::CorruptRow {
                table: "task_metrics",
                reason: format!("swarm {id} is not in swarms"),
            })?;
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, name.clone());
        Ok(name)
    }
}
