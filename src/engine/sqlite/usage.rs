//! How the file keeps a task's usage: one nullable `usage` blob of
//! variable-length integers, and the SQL functions that read it.
//!
//! Every nullable column costs a byte a row even when empty, and a task's
//! usage is several numbers of which most tasks have all or none; one blob
//! costs a byte when empty and about six when full (model, input tokens,
//! cost), where five columns would cost ten. The blob is
//!
//! ```text
//! head      varint  model << 4 | flags   (model: the `models` row, 0 for none)
//! input     varint  when flags & SPLIT   (output is tokens_used − input)
//! cache     2 varints when flags & CACHE  (reads, writes)
//! cost      varint  when flags & COST    (micro-dollars; BILLED: the task's bill)
//! trace     24 bytes when any are left    (trace id, span id: `TraceIds`)
//! ```
//!
//! The trace ids of a task recorded from an OpenTelemetry span ride in the
//! same blob (no flag is left in the head; they are what remains after the
//! last varint): a column of their own would cost every other row a byte.
//!
//! Queries read it through `usage_cost`, `usage_input`, `usage_cache_read`,
//! `usage_cache_write` and `usage_model`, each NULL where the blob holds
//! nothing of theirs.

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::Connection;

use crate::bytes::{put_varint, Reader};
use crate::error::Result;
use crate::model::pricing::Cost;
use crate::model::trace::{TraceIds, TRACE_IDS_LEN};
use crate::model::usage::Split;

const SPLIT: u64 = 1;
const CACHE: u64 = 2;
const COST: u64 = 4;
const BILLED: u64 = 8;
const FLAG_BITS: u32 = 4;

/// A task's usage as the blob holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UsageCell {
    /// The `models` row naming model and provider; 0 for none.
    pub model: u64,
    /// Input and cache tokens; output is not kept (see the module doc).
    pub split: Option<Split>,
    pub cost: Option<Cost>,
    /// The span the task was recorded from.
    pub trace: Option<TraceIds>,
}

impl UsageCell {
    /// The blob, or `None` when there is nothing to keep.
    pub fn encode(&self) -> Option<Vec<u8>> {
        if *self == UsageCell::default() {
            return None;
        }
        let mut flags = 0;
        let cached = self
            .split
            .filter(|s| s.cache_read != 0 || s.cache_write != 0);
        if self.split.is_some() {
            flags |= SPLIT;
        }
        if cached.is_some() {
            flags |= CACHE;
        }
        if let Some(cost) = self.cost {
            flags |= COST | if cost.billed { BILLED } else { 0 };
        }
        let mut out = Vec::with_capacity(8);
        put_varint(&mut out, self.model << FLAG_BITS | flags);
        if let Some(split) = self.split {
            put_varint(&mut out, split.input);
        }
        if let Some(split) = cached {
            put_varint(&mut out, split.cache_read);
            put_varint(&mut out, split.cache_write);
        }
        if let Some(cost) = self.cost {
            put_varint(&mut out, cost.micros);
        }
        if let Some(trace) = self.trace {
            out.extend_from_slice(&trace.to_bytes());
        }
        Some(out)
    }

    /// Reads a blob back; `tokens_used` is the row's, of which output is
    /// the part that is not input.
    pub fn decode(bytes: &[u8], tokens_used: u64) -> Result<UsageCell> {
        let mut r = Reader::new(bytes, "task_metrics", "usage");
        let head = r.varint()?;
        let flags = head & ((1 << FLAG_BITS) - 1);
        let mut cell = UsageCell {
            model: head >> FLAG_BITS,
            ..UsageCell::default()
        };
        if flags & SPLIT != 0 {
            let input = r.varint()?;
            let (cache_read, cache_write) = if flags & CACHE != 0 {
                (r.varint()?, r.varint()?)
            } else {
                (0, 0)
            };
            cell.split = Some(
                Split::stored(tokens_used, input, cache_read, cache_write)
                    .ok_or_else(|| r.corrupt("a breakdown that does not add up to tokens_used"))?,
            );
        }
        if flags & COST != 0 {
            cell.cost = Some(Cost {
                micros: r.varint()?,
                billed: flags & BILLED != 0,
            });
        }
        match r.rest().len() {
            0 => {}
            TRACE_IDS_LEN => {
                let trace = TraceIds::from_bytes(r.rest());
                cell.trace = Some(trace.ok_or_else(|| r.corrupt("unreadable trace ids"))?);
            }
            _ => return Err(r.corrupt("bytes after the last field")),
        }
        Ok(cell)
    }
}

/// Which part of a blob a SQL function reads.
#[derive(Clone, Copy)]
enum Part {
    Cost,
    Input,
    CacheRead,
    CacheWrite,
    Model,
}

/// The part of the blob in argument 0, NULL where the blob has none. A
/// blob that does not decode is an error, not a NULL: a wrong answer is
/// worse than none.
fn part_of(ctx: &Context<'_>, part: Part) -> rusqlite::Result<Option<i64>> {
    let bytes = match ctx.get_raw(0) {
        ValueRef::Null => return Ok(None),
        ValueRef::Blob(b) => b,
        _ => {
            return Err(rusqlite::Error::UserFunctionError(
                "usage is not a blob".into(),
            ))
        }
    };
    // Output is not read here, so the total does not matter.
    let cell = UsageCell::decode(bytes, u64::MAX)
        .map_err(|e| rusqlite::Error::UserFunctionError(e.to_string().into()))?;
    let value = match part {
        Part::Cost => cell.cost.map(|c| c.micros),
        Part::Input => cell.split.map(|s| s.input),
        Part::CacheRead => cell.split.map(|s| s.cache_read),
        Part::CacheWrite => cell.split.map(|s| s.cache_write),
        Part::Model => Some(cell.model).filter(|&m| m != 0),
    };
    Ok(value.map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
}

/// Registers `usage_cost`, `usage_input`, `usage_cache_read`,
/// `usage_cache_write` and `usage_model` on one connection.
pub(crate) fn register_usage_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    for (name, part) in [
        ("usage_cost", Part::Cost),
        ("usage_input", Part::Input),
        ("usage_cache_read", Part::CacheRead),
        ("usage_cache_write", Part::CacheWrite),
        ("usage_model", Part::Model),
    ] {
        conn.create_scalar_function(name, 1, flags, move |ctx| part_of(ctx, part))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn blobs_round_trip_and_stay_small() {
        let split = Split {
            input: 3_000,
            output: 500,
            cache_read: 0,
            cache_write: 0,
        };
        let full = UsageCell {
            model: 3,
            split: Some(split),
            cost: Some(Cost {
                micros: 16_500,
                billed: false,
            }),
            trace: None,
        };
        let blob = full.encode().unwrap();
        assert_eq!(blob.len(), 1 + 2 + 3);
        assert_eq!(UsageCell::decode(&blob, 3_500).unwrap(), full);
        let cached = UsageCell {
            model: 300,
            split: Some(Split {
                cache_read: 2_000,
                cache_write: 1,
                ..split
            }),
            cost: Some(Cost {
                micros: u64::MAX >> 1,
                billed: true,
            }),
            trace: None,
        };
        let blob = cached.encode().unwrap();
        assert_eq!(UsageCell::decode(&blob, 3_500).unwrap(), cached);
        assert_eq!(UsageCell::default().encode(), None);
        let model_only = UsageCell {
            model: 1,
            ..UsageCell::default()
        };
        assert_eq!(model_only.encode().unwrap(), vec![0x10]);
        // Trace ids follow the last varint, with or without usage.
        let trace = TraceIds::new([7; 16], [9; 8]);
        for cell in [
            UsageCell {
                trace: Some(trace),
                ..full
            },
            UsageCell {
                trace: Some(trace),
                ..UsageCell::default()
            },
        ] {
            let blob = cell.encode().unwrap();
            assert_eq!(&blob[blob.len() - TRACE_IDS_LEN..], &trace.to_bytes());
            assert_eq!(UsageCell::decode(&blob, 3_500).unwrap(), cell);
        }
    }

    #[test]
    fn damaged_blobs_are_corrupt_rows() {
        let full = UsageCell {
            model: 3,
            split: Some(Split {
                input: 3_000,
                output: 0,
                cache_read: 0,
                cache_write: 0,
            }),
            cost: None,
            trace: None,
        };
        let blob = full.encode().unwrap();
        for bad in [
            &blob[..blob.len() - 1],
            &[blob.as_slice(), &[0]].concat(),
            &[0xff; 11],
        ] {
            assert!(matches!(
                UsageCell::decode(bad, 3_000),
                Err(Error::CorruptRow { .. })
            ));
        }
        // More input than the row's total.
        assert!(UsageCell::decode(&blob, 2_999).is_err());
    }
}
