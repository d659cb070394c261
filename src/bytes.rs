//! The byte-level codec of the store's packed blobs (a rollup row's data,
//! a task's usage): LEB128 variable-length integers, zigzag for signed
//! ones, and a reader that checks every read, so that damaged bytes are
//! a `CorruptRow` naming the table and the offset, never a panic.

use crate::error::{Error, Result};

/// `x` mapped to an unsigned integer that is small when `|x|` is.
pub(crate) fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub(crate) fn unzigzag(x: u64) -> i64 {
    ((x >> 1) as i64) ^ -((x & 1) as i64)
}

/// Appends `x` as a LEB128 varint: seven bits a byte, low bits first.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// Reads a blob of `table`'s, every read checked.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    table: &'static str,
    /// What the blob is, for errors: "rollup data", "usage".
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`, a `what` of `table`'s.
    pub(crate) fn new(bytes: &'a [u8], table: &'static str, what: &'static str) -> Self {
        Reader {
            bytes,
            at: 0,
            table,
            what,
        }
    }

    /// The table the blob is from.
    pub(crate) fn table(&self) -> &'static str {
        self.table
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at..]
    }

    /// A `CorruptRow` saying `problem` at the current offset.
    pub(crate) fn corrupt(&self, problem: &str) -> Error {
        Error::CorruptRow {
            table: self.table,
            reason: format!("{} at byte {}: {problem}", self.what, self.at),
        }
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| self.corrupt("cut short"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    /// The next byte.
    pub(crate) fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// The next LEB128 varint (at most ten bytes).
    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut x = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            x |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(x);
            }
        }
        Err(self.corrupt("varint too long"))
    }

    /// The next little-endian `f64`.
    pub(crate) fn f64(&mut self) -> Result<f64> {
        let b = self.take(8)?;
        Ok(f64::from_le_bytes(b.try_into().unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_and_damage_is_named() {
        let mut out = Vec::new();
        for x in [0, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            put_varint(&mut out, x);
        }
        let mut r = Reader::new(&out, "t", "blob");
        for x in [0, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            assert_eq!(r.varint().unwrap(), x);
        }
        assert!(r.rest().is_empty());
        for x in [0, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(x)), x);
        }
        assert_eq!(zigzag(-1), 1);
        let e = Reader::new(&[0x80], "t", "blob").varint().unwrap_err();
        assert!(e.to_string().contains("blob at byte 1: cut short"), "{e}");
        let e = Reader::new(&[0xff; 11], "t", "blob").varint().unwrap_err();
        assert!(e.to_string().contains("varint too long"), "{e}");
    }
}
