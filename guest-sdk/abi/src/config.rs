//! The config document: the entry's `transform.config` strings, handed to
//! `rmqtt_transform_init` once per instance.
//!
//! ```text
//! u32 count, then that many (bytes key, bytes value), sorted by key, UTF-8
//! ```

use crate::wire::{Reader, WireError, Writer};

/// Exact size of the document for these pairs.
pub fn encoded_len<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> usize {
    4 + pairs.map(|(k, v)| 8 + k.len() + v.len()).sum::<usize>()
}

/// Writes the document into `out`, which must be exactly [`encoded_len`] bytes.
pub fn encode<'a>(pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>, out: &mut [u8]) {
    let mut w = Writer::new(out);
    w.u32(pairs.len() as u32);
    for (k, v) in pairs {
        w.len_prefixed(k.as_bytes());
        w.len_prefixed(v.as_bytes());
    }
    debug_assert_eq!(w.written(), out.len());
}

/// Reads the document, calling `each` for every pair in order.
pub fn decode<'a>(doc: &'a [u8], mut each: impl FnMut(&'a str, &'a str)) -> Result<(), WireError> {
    let mut r = Reader::new(doc);
    let count = r.u32("config count")?;
    for _ in 0..count {
        let k = core::str::from_utf8(r.len_prefixed("config key")?).map_err(|_| {
            WireError::Invalid {
                field: "config key",
            }
        })?;
        let v = core::str::from_utf8(r.len_prefixed("config value")?).map_err(|_| {
            WireError::Invalid {
                field: "config value",
            }
        })?;
        each(k, v);
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    #[test]
    fn pairs_roundtrip() {
        let pairs = [("threshold", "30"), ("unit", "°C")];
        let mut buf = std::vec![0u8; encoded_len(pairs.iter().copied())];
        encode(pairs.iter().copied(), &mut buf);
        let mut got = Vec::new();
        decode(&buf, |k, v| got.push((k, v))).unwrap();
        assert_eq!(got, pairs);
        assert!(decode(&buf[..buf.len() - 1], |_, _| {}).is_err());
    }
}
