//! The spool's on-disk frames. Every frame is `u32 LE body length`, `u32 LE CRC-32 of the
//! length and the body`, then the body, whose first byte says what it is:
//!
//! - a **record**: everything the pump needs to produce it after a restart. Its sequence
//!   number is implicit: the segment's first (its file name) plus the records before it.
//! - **acked**: sequence numbers Kafka has settled, which recovery does not replay.
//! - **sending**: records below this sequence number may have been handed to Kafka, so a
//!   replayed one may be a duplicate (counted `redelivered`).
//! - **unsent**: records a stop purged before they were sent, so not duplicates.
//! - **superseded**: recovery copied every record below this sequence number into newer
//!   segments; older segments are garbage even if a crash kept them.
//!
//! A frame whose length runs past the end of the file or whose CRC does not match ends
//! what can be trusted of a segment.

use crate::kafka::Outgoing;

/// Bytes before a frame's body: length and CRC.
pub const HEADER: usize = 8;
/// No frame is longer: a record is bounded by the in-flight byte limit's type, and a
/// length beyond this is garbage rather than a record.
pub const MAX_BODY: usize = 1 << 30;

const RECORD: u8 = 1;
const ACKED: u8 = 2;
const SENDING: u8 = 3;
const SUPERSEDED: u8 = 4;
const UNSENT: u8 = 5;

const NONE: u32 = u32::MAX;
const DEAD_LETTER: u8 = 1;
const REDELIVERY: u8 = 2;
const HAS_PARTITION: u8 = 4;

/// A decoded frame, borrowing from the bytes it was read from.
#[derive(Debug, PartialEq)]
pub enum Frame<'a> {
    Record(StoredRecord<'a>),
    Acked(Vec<u64>),
    Unsent(Vec<u64>),
    Sending(u64),
    Superseded(u64),
}

/// A record as the spool keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord<'a> {
    /// The entry of its bridge that sent it.
    pub entry: u16,
    pub dead_letter: bool,
    /// Replayed after a restart although it may already be in Kafka.
    pub redelivery: bool,
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub partition: Option<i32>,
    pub timestamp: i64,
    pub received_ms: i64,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

/// Appends one record frame to `out`.
pub fn put_record(out: &mut Vec<u8>, entry: u16, r: &Outgoing<'_>) {
    use rdkafka::message::Headers as _;
    let fields = StoredRecord {
        entry,
        dead_letter: r.dead_letter,
        redelivery: false,
        topic: r.topic,
        key: r.key,
        payload: r.payload,
        partition: r.partition,
        timestamp: r.timestamp,
        received_ms: r.received_ms,
        headers: Vec::new(),
    };
    let headers = r.headers.iter().map(|h| (h.key, h.value));
    put_fields(out, &fields, r.headers.count(), headers);
}

/// Appends a record frame copied from a stored one, marked as a possible redelivery if
/// `redelivery` (or if it was one already).
pub fn put_stored(out: &mut Vec<u8>, r: &StoredRecord<'_>, redelivery: bool) {
    let fields = StoredRecord {
        redelivery: r.redelivery || redelivery,
        headers: Vec::new(),
        ..r.clone()
    };
    put_fields(out, &fields, r.headers.len(), r.headers.iter().copied());
}

/// Appends a record frame of `r`'s fields (its own `headers` ignored) and `headers`.
fn put_fields<'h>(
    out: &mut Vec<u8>,
    r: &StoredRecord<'_>,
    header_count: usize,
    headers: impl Iterator<Item = (&'h str, Option<&'h [u8]>)>,
) {
    let start = begin(out, RECORD);
    let flags = (u8::from(r.dead_letter) * DEAD_LETTER)
        | (u8::from(r.redelivery) * REDELIVERY)
        | (u8::from(r.partition.is_some()) * HAS_PARTITION);
    out.extend_from_slice(&r.entry.to_le_bytes());
    out.push(flags);
    out.extend_from_slice(&r.partition.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&r.timestamp.to_le_bytes());
    out.extend_from_slice(&r.received_ms.to_le_bytes());
    put_bytes(out, Some(r.topic.as_bytes()));
    put_bytes(out, r.key);
    put_bytes(out, r.payload);
    out.extend_from_slice(&(header_count as u32).to_le_bytes());
    for (name, value) in headers {
        put_bytes(out, Some(name.as_bytes()));
        put_bytes(out, value);
    }
    finish(out, start);
}

/// Appends an acked frame for `seqs`.
pub fn put_acked(out: &mut Vec<u8>, seqs: &[u64]) {
    put_seqs(out, ACKED, seqs);
}

/// Appends an unsent frame for `seqs`.
pub fn put_unsent(out: &mut Vec<u8>, seqs: &[u64]) {
    put_seqs(out, UNSENT, seqs);
}

fn put_seqs(out: &mut Vec<u8>, kind: u8, seqs: &[u64]) {
    let start = begin(out, kind);
    out.extend_from_slice(&(seqs.len() as u32).to_le_bytes());
    for s in seqs {
        out.extend_from_slice(&s.to_le_bytes());
    }
    finish(out, start);
}

/// Appends a sending frame.
pub fn put_sending(out: &mut Vec<u8>, below: u64) {
    let start = begin(out, SENDING);
    out.extend_from_slice(&below.to_le_bytes());
    finish(out, start);
}

/// Appends a superseded frame.
pub fn put_superseded(out: &mut Vec<u8>, below: u64) {
    let start = begin(out, SUPERSEDED);
    out.extend_from_slice(&below.to_le_bytes());
    finish(out, start);
}

/// Reserves the header and writes the kind; returns where the frame starts.
fn begin(out: &mut Vec<u8>, kind: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(kind);
    start
}

/// Fills in the header of the frame that starts at `start`.
fn finish(out: &mut [u8], start: usize) {
    let body = &out[start + HEADER..];
    let len = (body.len() as u32).to_le_bytes();
    let crc = checksum(len, body);
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        None => out.extend_from_slice(&NONE.to_le_bytes()),
    }
}

/// Where to cut `frames` (whole frames, as appended) so that the first part fits `room`
/// bytes, or holds one frame if even that does not fit, and the records in that part.
pub fn records_within(frames: &[u8], room: usize) -> (usize, u64) {
    let (mut at, mut records) = (0, 0);
    while at + HEADER < frames.len() {
        let len =
            HEADER + u32::from_le_bytes(frames[at..at + 4].try_into().expect("4 bytes")) as usize;
        if at > 0 && at + len > room {
            break;
        }
        records += u64::from(frames[at + HEADER] == RECORD);
        at += len;
    }
    (at, records)
}

/// When the broker received the first record in `frames` (whole frames, as appended).
pub fn first_received_ms(frames: &[u8]) -> Option<i64> {
    let mut at = 0;
    while at + HEADER < frames.len() {
        if let Read::Frame(Frame::Record(r), _) = read(&frames[at..]) {
            return Some(r.received_ms);
        }
        at += HEADER + u32::from_le_bytes(frames[at..at + 4].try_into().ok()?) as usize;
    }
    None
}

/// What reading a frame at the start of some bytes found.
#[derive(Debug, PartialEq)]
pub enum Read<'a> {
    /// A valid frame and its length, header included.
    Frame(Frame<'a>, usize),
    /// The bytes end inside the frame: more may come, or it is a torn tail.
    Short,
    /// The frame is damaged (CRC mismatch, impossible length or content).
    Bad(&'static str),
}

/// Reads the frame at the start of `bytes`.
pub fn read(bytes: &[u8]) -> Read<'_> {
    if bytes.len() < HEADER {
        return Read::Short;
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_BODY {
        return Read::Bad("impossible frame length");
    }
    let Some(body) = bytes.get(HEADER..HEADER + len) else {
        return Read::Short;
    };
    if checksum(bytes[0..4].try_into().expect("4 bytes"), body) != crc {
        return Read::Bad("checksum mismatch");
    }
    match decode(body) {
        Some(frame) => Read::Frame(frame, HEADER + len),
        None => Read::Bad("malformed frame body"),
    }
}

/// The CRC-32 of a frame: its length field too, so that a damaged length is caught.
fn checksum(len: [u8; 4], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(body);
    h.finalize()
}

fn decode(body: &[u8]) -> Option<Frame<'_>> {
    let mut c = Cursor(&body[1..]);
    let frame = match body[0] {
        RECORD => Frame::Record(record(&mut c)?),
        ACKED => Frame::Acked(c.seqs()?),
        UNSENT => Frame::Unsent(c.seqs()?),
        SENDING => Frame::Sending(c.u64()?),
        SUPERSEDED => Frame::Superseded(c.u64()?),
        _ => return None,
    };
    c.0.is_empty().then_some(frame)
}

fn record<'a>(c: &mut Cursor<'a>) -> Option<StoredRecord<'a>> {
    let entry = u16::from_le_bytes(c.take(2)?.try_into().ok()?);
    let flags = c.take(1)?[0];
    let partition = c.u32()? as i32;
    let timestamp = c.u64()? as i64;
    let received_ms = c.u64()? as i64;
    let topic = std::str::from_utf8(c.bytes()?.unwrap_or_default()).ok()?;
    let key = c.bytes()?;
    let payload = c.bytes()?;
    let n = c.u32()? as usize;
    let mut headers = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let name = std::str::from_utf8(c.bytes()?.unwrap_or_default()).ok()?;
        headers.push((name, c.bytes()?));
    }
    Some(StoredRecord {
        entry,
        dead_letter: flags & DEAD_LETTER != 0,
        redelivery: flags & REDELIVERY != 0,
        topic,
        key,
        payload,
        partition: (flags & HAS_PARTITION != 0).then_some(partition),
        timestamp,
        received_ms,
        headers,
    })
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn seqs(&mut self) -> Option<Vec<u64>> {
        let n = self.u32()? as usize;
        (0..n).map(|_| self.u64()).collect()
    }

    /// A length-prefixed byte string; `Some(None)` for an absent one.
    fn bytes(&mut self) -> Option<Option<&'a [u8]>> {
        match self.u32()? {
            NONE => Some(None),
            n => self.take(n as usize).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::message::{Header, OwnedHeaders};

    use super::*;

    fn outgoing(payload: &[u8]) -> Outgoing<'_> {
        Outgoing {
            topic: "t",
            key: Some(b"k"),
            payload: Some(payload),
            partition: Some(2),
            timestamp: 1_700_000_000_000,
            received_ms: 1_700_000_000_001,
            headers: OwnedHeaders::new()
                .insert(Header {
                    key: "a",
                    value: Some("1"),
                })
                .insert(Header::<&[u8]> {
                    key: "b",
                    value: None,
                }),
            dead_letter: true,
        }
    }

    #[test]
    fn records_and_marks_roundtrip() {
        let mut out = Vec::new();
        put_record(&mut out, 3, &outgoing(b"payload"));
        put_acked(&mut out, &[5, 9]);
        put_unsent(&mut out, &[6]);
        put_sending(&mut out, 42);
        put_superseded(&mut out, 7);
        let Read::Frame(Frame::Record(r), n) = read(&out) else {
            panic!("a record")
        };
        assert_eq!(
            (r.entry, r.topic, r.key, r.payload),
            (3, "t", Some(&b"k"[..]), Some(&b"payload"[..]))
        );
        assert_eq!(
            (r.partition, r.dead_letter, r.redelivery),
            (Some(2), true, false)
        );
        assert_eq!(r.headers, vec![("a", Some(&b"1"[..])), ("b", None)]);
        let mut again = Vec::new();
        put_stored(&mut again, &r, true);
        let Read::Frame(Frame::Record(copy), _) = read(&again) else {
            panic!("a copy")
        };
        assert_eq!(
            copy,
            StoredRecord {
                redelivery: true,
                ..r
            }
        );
        let rest = &out[n..];
        let Read::Frame(acked, m) = read(rest) else {
            panic!("acked")
        };
        assert_eq!(acked, Frame::Acked(vec![5, 9]));
        let Read::Frame(unsent, u) = read(&rest[m..]) else {
            panic!("unsent")
        };
        assert_eq!(unsent, Frame::Unsent(vec![6]));
        let m = m + u;
        let Read::Frame(sending, k) = read(&rest[m..]) else {
            panic!("sending")
        };
        assert_eq!(sending, Frame::Sending(42));
        assert!(matches!(
            read(&rest[m + k..]),
            Read::Frame(Frame::Superseded(7), _)
        ));
    }

    #[test]
    fn a_torn_frame_is_short_and_a_flipped_bit_is_bad() {
        let mut out = Vec::new();
        put_record(&mut out, 0, &outgoing(&[7; 300]));
        for cut in [0, 3, HEADER, out.len() - 1] {
            assert_eq!(read(&out[..cut]), Read::Short, "cut at {cut}");
        }
        for i in [HEADER, HEADER + 40, out.len() - 1] {
            let mut bad = out.clone();
            bad[i] ^= 0x10;
            assert_eq!(read(&bad), Read::Bad("checksum mismatch"), "flip at {i}");
        }
        let mut shorter = out.clone();
        shorter[0] -= 1;
        assert_eq!(
            read(&shorter),
            Read::Bad("checksum mismatch"),
            "a damaged length"
        );
        let mut zero = out.clone();
        zero[..4].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(read(&zero), Read::Bad(_)));
    }
}
