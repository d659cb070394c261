//! The OpenTelemetry span a task was recorded from: its W3C Trace Context
//! trace and span ids, so that a task can be followed back to its trace.

use crate::error::{Error, Result};

/// The trace and span a task was recorded from, as OpenTelemetry spans
/// carry them (the OTLP ingest sets them); in JSON `trace_id` (32
/// lowercase hex digits) and `span_id` (16) beside the task's other
/// fields. Neither id may be all zero, which W3C Trace Context reserves
/// for "no id".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceIds {
    /// The trace's 16 bytes.
    pub trace_id: [u8; 16],
    /// The span's 8 bytes.
    pub span_id: [u8; 8],
}

/// Bytes the ids take together, as the file keeps them.
pub(crate) const TRACE_IDS_LEN: usize = 24;

impl TraceIds {
    /// The ids of a trace and a span.
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8]) -> Self {
        TraceIds { trace_id, span_id }
    }

    /// The ids from their hex text (either case).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `trace_id` or `span_id` when one is
    /// not 32 (16) hex digits, or is all zero.
    pub fn from_hex(trace_id: &str, span_id: &str) -> Result<Self> {
        let ids = TraceIds {
            trace_id: from_hex("trace_id", trace_id)?,
            span_id: from_hex("span_id", span_id)?,
        };
        ids.validate()?;
        Ok(ids)
    }

    /// The trace id in lowercase hex.
    pub fn trace_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id in lowercase hex.
    pub fn span_hex(&self) -> String {
        hex(&self.span_id)
    }

    /// Refuses an all-zero id.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.trace_id == [0; 16] {
            return Err(Error::invalid(
                "trace_id",
                "an all-zero trace id names no trace",
            ));
        }
        if self.span_id == [0; 8] {
            return Err(Error::invalid(
                "span_id",
                "an all-zero span id names no span",
            ));
        }
        Ok(())
    }

    /// The trace id's bytes, then the span id's.
    pub(crate) fn to_bytes(self) -> [u8; TRACE_IDS_LEN] {
        let mut out = [0; TRACE_IDS_LEN];
        out[..16].copy_from_slice(&self.trace_id);
        out[16..].copy_from_slice(&self.span_id);
        out
    }

    /// Back from [`to_bytes`](Self::to_bytes); `None` unless `bytes` has
    /// exactly their length.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; TRACE_IDS_LEN] = bytes.try_into().ok()?;
        let (trace, span) = bytes.split_at(16);
        Some(TraceIds {
            trace_id: trace.try_into().ok()?,
            span_id: span.try_into().ok()?,
        })
    }
}

/// `bytes` in lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// `N` bytes from `2N` hex digits.
fn from_hex<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N]> {
    let bad = || Error::invalid(field, format!("{text:?} is not {} hex digits", N * 2));
    if text.len() != N * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_go_to_hex_and_bytes_and_back() {
        let ids =
            TraceIds::from_hex("0AF7651916CD43DD8448EB211C80319C", "b7ad6b7169203331").unwrap();
        assert_eq!(ids.trace_hex(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(ids.span_hex(), "b7ad6b7169203331");
        assert_eq!(TraceIds::from_bytes(&ids.to_bytes()), Some(ids));
        assert_eq!(TraceIds::from_bytes(&ids.to_bytes()[1..]), None);
    }

    #[test]
    fn bad_ids_are_refused_by_name() {
        let span = "b7ad6b7169203331";
        let trace = "0af7651916cd43dd8448eb211c80319c";
        for (t, s, field) in [
            ("0af7", span, "trace_id"),
            ("0af7651916cd43dd8448eb211c80319g", span, "trace_id"),
            ("+af7651916cd43dd8448eb211c80319c", span, "trace_id"),
            ("00000000000000000000000000000000", span, "trace_id"),
            (trace, "b7ad6b716920333", "span_id"),
            (trace, "0000000000000000", "span_id"),
            (trace, "b7ad6b71692033é", "span_id"),
        ] {
            let e = TraceIds::from_hex(t, s).unwrap_err();
            assert!(
                e.is_invalid_input() && e.to_string().contains(field),
                "{t} {s}: {e}"
            );
        }
    }
}
