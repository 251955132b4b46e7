//! The output document: what `rmqtt_transform` (and `rmqtt_transform_init`) return.
//!
//! The packed return value points at an 8-byte header:
//!
//! ```text
//! u32 status     0 = OK, 1 = ERROR, 2 = INVALID
//! u32 n          OK: number of records; ERROR, INVALID: length of the UTF-8 message
//! ```
//!
//! For ERROR and INVALID the message bytes follow the header. For OK, `n` record descriptors of
//! [`RECORD_LEN`] bytes follow, and the document is exactly `8 + 48 * n` bytes long:
//!
//! ```text
//! offset 0   u32 flags: HAS_PARTITION | HAS_TIMESTAMP
//! offset 4   i32 partition                (read only with HAS_PARTITION)
//! offset 8   i64 timestamp, ms            (read only with HAS_TIMESTAMP)
//! offset 16  u32 topic ptr,   u32 topic len     (len ABSENT: the entry's remote.topic)
//! offset 24  u32 key ptr,     u32 key len       (len ABSENT: the entry's remote.key)
//! offset 32  u32 payload ptr, u32 payload len   (len ABSENT: a null payload)
//! offset 40  u32 headers ptr, u32 header count
//! ```
//!
//! Headers are a table of [`HEADER_LEN`]-byte entries: `u32 name ptr, u32 name len,
//! u32 value ptr, u32 value len` (value len ABSENT: a null value). Pointers are offsets
//! into the guest's linear memory. Everything the document points at must stay valid
//! until the guest is called again.

use crate::wire::{slice, Reader, WireError};
use crate::{Status, ABSENT, MAX_HEADERS, MAX_RECORDS};

/// Size of the output header.
pub const HEADER_LEN: usize = 8;
/// Size of one record descriptor.
pub const RECORD_LEN: usize = 48;
/// Size of one header descriptor.
pub const HEADER_ENTRY_LEN: usize = 16;
/// Record flag: the partition field is set.
pub const RECORD_HAS_PARTITION: u32 = 1;
/// Record flag: the timestamp field is set.
pub const RECORD_HAS_TIMESTAMP: u32 = 2;

const KNOWN_RECORD_FLAGS: u32 = RECORD_HAS_PARTITION | RECORD_HAS_TIMESTAMP;

/// The 8-byte header of an OK document with `count` records.
pub fn ok_header(count: u32) -> [u8; HEADER_LEN] {
    header(Status::Ok, count)
}

/// The 8-byte header of an ERROR document whose message is `message_len` bytes.
pub fn error_header(message_len: u32) -> [u8; HEADER_LEN] {
    header(Status::Error, message_len)
}

/// The 8-byte header of an INVALID document whose message is `message_len` bytes.
pub fn invalid_header(message_len: u32) -> [u8; HEADER_LEN] {
    header(Status::Invalid, message_len)
}

fn header(status: Status, n: u32) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..4].copy_from_slice(&(status as u32).to_le_bytes());
    out[4..].copy_from_slice(&n.to_le_bytes());
    out
}

/// A guest memory region as `(ptr, len)`.
pub type Region = (u32, u32);

/// One record descriptor, as a guest writes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordDescriptor {
    pub partition: Option<i32>,
    pub timestamp: Option<i64>,
    pub topic: Option<Region>,
    pub key: Option<Region>,
    pub payload: Option<Region>,
    /// `(table ptr, header count)`.
    pub headers: Region,
}

fn region_or_absent(r: Option<Region>) -> Region {
    r.unwrap_or((0, ABSENT))
}

impl RecordDescriptor {
    pub fn to_bytes(&self) -> [u8; RECORD_LEN] {
        let mut flags = 0;
        if self.partition.is_some() {
            flags |= RECORD_HAS_PARTITION;
        }
        if self.timestamp.is_some() {
            flags |= RECORD_HAS_TIMESTAMP;
        }
        let words: [(usize, [u8; 4]); 10] = [
            (0, flags.to_le_bytes()),
            (4, self.partition.unwrap_or(0).to_le_bytes()),
            (16, region_or_absent(self.topic).0.to_le_bytes()),
            (20, region_or_absent(self.topic).1.to_le_bytes()),
            (24, region_or_absent(self.key).0.to_le_bytes()),
            (28, region_or_absent(self.key).1.to_le_bytes()),
            (32, region_or_absent(self.payload).0.to_le_bytes()),
            (36, region_or_absent(self.payload).1.to_le_bytes()),
            (40, self.headers.0.to_le_bytes()),
            (44, self.headers.1.to_le_bytes()),
        ];
        let mut out = [0u8; RECORD_LEN];
        for (at, w) in words {
            out[at..at + 4].copy_from_slice(&w);
        }
        out[8..16].copy_from_slice(&self.timestamp.unwrap_or(0).to_le_bytes());
        out
    }
}

/// One header descriptor, as a guest writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderDescriptor {
    pub name: Region,
    pub value: Option<Region>,
}

impl HeaderDescriptor {
    pub fn to_bytes(&self) -> [u8; HEADER_ENTRY_LEN] {
        let value = region_or_absent(self.value);
        let mut out = [0u8; HEADER_ENTRY_LEN];
        out[0..4].copy_from_slice(&self.name.0.to_le_bytes());
        out[4..8].copy_from_slice(&self.name.1.to_le_bytes());
        out[8..12].copy_from_slice(&value.0.to_le_bytes());
        out[12..16].copy_from_slice(&value.1.to_le_bytes());
        out
    }
}

/// A decoded output document; slices borrow from guest memory.
#[derive(Debug, Clone, Copy)]
pub enum Output<'m> {
    /// The guest reported an error with this (UTF-8) message.
    Error(&'m [u8]),
    /// The guest found its own output invalid, for this (UTF-8) reason.
    Invalid(&'m [u8]),
    /// Zero or more records.
    Records(Records<'m>),
}

/// Reads the output document at `(ptr, len)` in `memory`. The header and the descriptor
/// table are checked here; each record is checked when it is read.
pub fn read_output(memory: &[u8], ptr: u32, len: u32) -> Result<Output<'_>, WireError> {
    let doc = slice(memory, ptr, len, "output")?;
    let mut r = Reader::new(doc);
    let status = r.u32("status")?;
    let n = r.u32("count")?;
    match Status::from_u32(status) {
        Some(status @ (Status::Error | Status::Invalid)) => {
            let message = r.bytes(n as usize, "error message")?;
            r.finish()?;
            Ok(match status {
                Status::Invalid => Output::Invalid(message),
                _ => Output::Error(message),
            })
        }
        Some(Status::Ok) => {
            if n > MAX_RECORDS {
                return Err(WireError::TooMany {
                    field: "record count",
                    count: n,
                    max: MAX_RECORDS,
                });
            }
            let table = r.bytes(n as usize * RECORD_LEN, "record descriptors")?;
            r.finish()?;
            Ok(Output::Records(Records {
                memory,
                table,
                count: n,
            }))
        }
        None => Err(WireError::Invalid { field: "status" }),
    }
}

/// The records of an OK document.
#[derive(Debug, Clone, Copy)]
pub struct Records<'m> {
    memory: &'m [u8],
    table: &'m [u8],
    count: u32,
}

impl<'m> Records<'m> {
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Decodes every descriptor, resolving its slices against guest memory.
    pub fn iter(&self) -> impl Iterator<Item = Result<Record<'m>, WireError>> + 'm {
        let memory = self.memory;
        self.table
            .chunks_exact(RECORD_LEN)
            .map(move |d| Record::decode(memory, d))
    }
}

/// One record of an OK document.
#[derive(Debug, Clone, Copy)]
pub struct Record<'m> {
    pub partition: Option<i32>,
    pub timestamp: Option<i64>,
    pub topic: Option<&'m [u8]>,
    pub key: Option<&'m [u8]>,
    pub payload: Option<&'m [u8]>,
    pub headers: Headers<'m>,
}

fn opt_slice<'m>(
    memory: &'m [u8],
    ptr: u32,
    len: u32,
    field: &'static str,
) -> Result<Option<&'m [u8]>, WireError> {
    if len == ABSENT {
        Ok(None)
    } else {
        slice(memory, ptr, len, field).map(Some)
    }
}

impl<'m> Record<'m> {
    fn decode(memory: &'m [u8], descriptor: &'m [u8]) -> Result<Record<'m>, WireError> {
        let mut r = Reader::new(descriptor);
        let flags = r.u32("record flags")?;
        if flags & !KNOWN_RECORD_FLAGS != 0 {
            return Err(WireError::Invalid {
                field: "record flags",
            });
        }
        let partition = r.i32("partition")?;
        let timestamp = r.i64("timestamp")?;
        let mut region =
            |field| -> Result<(u32, u32), WireError> { Ok((r.u32(field)?, r.u32(field)?)) };
        let (topic_ptr, topic_len) = region("topic")?;
        let (key_ptr, key_len) = region("key")?;
        let (payload_ptr, payload_len) = region("payload")?;
        let (headers_ptr, header_count) = region("headers")?;
        if header_count > MAX_HEADERS {
            return Err(WireError::TooMany {
                field: "header count",
                count: header_count,
                max: MAX_HEADERS,
            });
        }
        let table_len = header_count * HEADER_ENTRY_LEN as u32;
        Ok(Record {
            partition: (flags & RECORD_HAS_PARTITION != 0).then_some(partition),
            timestamp: (flags & RECORD_HAS_TIMESTAMP != 0).then_some(timestamp),
            topic: opt_slice(memory, topic_ptr, topic_len, "topic")?,
            key: opt_slice(memory, key_ptr, key_len, "key")?,
            payload: opt_slice(memory, payload_ptr, payload_len, "payload")?,
            headers: Headers {
                memory,
                table: slice(memory, headers_ptr, table_len, "headers")?,
            },
        })
    }
}

/// The header table of a record.
#[derive(Debug, Clone, Copy)]
pub struct Headers<'m> {
    memory: &'m [u8],
    table: &'m [u8],
}

impl<'m> Headers<'m> {
    pub fn len(&self) -> usize {
        self.table.len() / HEADER_ENTRY_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// `(name, value)` pairs; a `None` value is a null header value.
    #[allow(clippy::type_complexity)]
    pub fn iter(
        &self,
    ) -> impl Iterator<Item = Result<(&'m [u8], Option<&'m [u8]>), WireError>> + 'm {
        let memory = self.memory;
        self.table.chunks_exact(HEADER_ENTRY_LEN).map(move |e| {
            let word = |at: usize| u32::from_le_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
            let name = slice(memory, word(0), word(4), "header name")?;
            let value = opt_slice(memory, word(8), word(12), "header value")?;
            Ok((name, value))
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    /// A fake linear memory that hands out regions as it grows.
    struct Memory(Vec<u8>);

    impl Memory {
        fn put(&mut self, bytes: &[u8]) -> Region {
            let at = self.0.len() as u32;
            self.0.extend_from_slice(bytes);
            (at, bytes.len() as u32)
        }
    }

    #[test]
    fn records_roundtrip_through_memory() {
        let mut mem = Memory(std::vec![0; 16]);
        let topic = mem.put(b"alarms");
        let key = mem.put(b"dev-1");
        let payload = mem.put(b"{\"v\":1}");
        let (hn, hv) = (mem.put(b"site"), mem.put(b"berlin"));
        let null_name = mem.put(b"nothing");
        let h1 = HeaderDescriptor {
            name: hn,
            value: Some(hv),
        }
        .to_bytes();
        let h2 = HeaderDescriptor {
            name: null_name,
            value: None,
        }
        .to_bytes();
        let table = mem.put(&[h1, h2].concat());
        let first = RecordDescriptor {
            partition: Some(2),
            timestamp: Some(-5),
            topic: Some(topic),
            key: Some(key),
            payload: Some(payload),
            headers: (table.0, 2),
        };
        let second = RecordDescriptor::default();
        let doc = mem.put(&[&ok_header(2)[..], &first.to_bytes(), &second.to_bytes()].concat());

        let Output::Records(records) = read_output(&mem.0, doc.0, doc.1).unwrap() else {
            panic!("not records")
        };
        assert_eq!(records.len(), 2);
        let got: Vec<Record> = records.iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(got[0].partition, Some(2));
        assert_eq!(got[0].timestamp, Some(-5));
        assert_eq!(got[0].topic, Some(&b"alarms"[..]));
        assert_eq!(got[0].key, Some(&b"dev-1"[..]));
        assert_eq!(got[0].payload, Some(&b"{\"v\":1}"[..]));
        let headers: Vec<_> = got[0].headers.iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            headers,
            [
                (&b"site"[..], Some(&b"berlin"[..])),
                (&b"nothing"[..], None)
            ]
        );
        assert_eq!(
            (got[1].partition, got[1].timestamp, got[1].topic, got[1].key),
            (None, None, None, None)
        );
        assert_eq!(got[1].payload, None);
        assert!(got[1].headers.is_empty());
    }

    #[test]
    fn error_document_carries_its_message() {
        let mut mem = Memory(Vec::new());
        let doc = mem.put(&[&error_header(4)[..], b"boom"].concat());
        let Output::Error(msg) = read_output(&mem.0, doc.0, doc.1).unwrap() else {
            panic!("not an error")
        };
        assert_eq!(msg, b"boom");
    }

    #[test]
    fn bad_documents_are_rejected() {
        let mut mem = Memory(Vec::new());
        let ok0 = mem.put(&ok_header(0));
        assert!(
            matches!(read_output(&mem.0, ok0.0, ok0.1), Ok(Output::Records(r)) if r.is_empty())
        );
        // The document itself lies outside memory.
        assert!(matches!(
            read_output(&mem.0, 4, 100),
            Err(WireError::OutOfBounds {
                field: "output",
                ..
            })
        ));
        assert!(matches!(
            read_output(&mem.0, u32::MAX, 8),
            Err(WireError::OutOfBounds { .. })
        ));
        // Unknown status.
        let bad_status = mem.put(&[7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            read_output(&mem.0, bad_status.0, bad_status.1).unwrap_err(),
            WireError::Invalid { field: "status" }
        );
        // Count promises more descriptors than the document holds.
        let short = mem.put(&ok_header(1));
        assert!(matches!(
            read_output(&mem.0, short.0, short.1),
            Err(WireError::Truncated { .. })
        ));
        // Too many records.
        let huge = mem.put(&ok_header(MAX_RECORDS + 1));
        assert!(matches!(
            read_output(&mem.0, huge.0, huge.1),
            Err(WireError::TooMany { .. })
        ));
        // A record whose payload points past the end of memory.
        let rec = RecordDescriptor {
            payload: Some((1 << 20, 4)),
            ..Default::default()
        };
        let doc = mem.put(&[&ok_header(1)[..], &rec.to_bytes()].concat());
        let Output::Records(records) = read_output(&mem.0, doc.0, doc.1).unwrap() else {
            panic!()
        };
        assert!(matches!(
            records.iter().next().unwrap(),
            Err(WireError::OutOfBounds {
                field: "payload",
                ..
            })
        ));
        // A header table that overflows u32 arithmetic is caught by the limit.
        let rec = RecordDescriptor {
            headers: (0, u32::MAX),
            ..Default::default()
        };
        let doc = mem.put(&[&ok_header(1)[..], &rec.to_bytes()].concat());
        let Output::Records(records) = read_output(&mem.0, doc.0, doc.1).unwrap() else {
            panic!()
        };
        assert!(matches!(
            records.iter().next().unwrap(),
            Err(WireError::TooMany { .. })
        ));
    }
}
