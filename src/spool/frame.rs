//! The spool's on-disk frames. Every frame is `u32 LE body length`, `u32 LE CRC-32 of the
//! length and the body`, then the body, whose first byte says what it is:
//!
//! - a **record**: everything the pump needs to produce it after a restart. Its sequence
//!   number is implicit: the segment's first (its file name) plus the records before it.
//! - **acked**: sequence numbers Kafka has settled, which recovery does not replay.
//! - **sending**: records below this sequence number may have been handed to Kafka, so a
//!   replayed one may be a duplicate (counted `redelivered`).
//! - **superseded**: recovery copied every record below this sequence number into newer
//!   segments; older segments are garbage even if a crash kept them.
//!
//! - **unsent**: records a stop purged before they were sent, or that the pump had not
//!   handed over when it stopped, so not duplicates.
//!
//! Segment files are allocated ahead and filled with zeros, so eight zero bytes where a
//! frame would start end a segment's frames. A frame whose length runs past the end of
//! the file or whose CRC does not match ends what can be trusted of a segment.

use crate::record::{Headers, Record};

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
    /// Boxed: recovery reads frames one by one; the pump reads records without it.
    Record(Box<Stored<'a>>),
    Acked(Vec<u64>),
    Unsent(Vec<u64>),
    Sending(u64),
    Superseded(u64),
}

/// A record as the spool keeps it: the record, and whose it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored<'a> {
    /// The entry of its bridge that sent it.
    pub entry: u16,
    /// Replayed after a restart although it may already be in Kafka.
    pub redelivery: bool,
    pub record: Record<'a>,
}

/// Appends one record frame of entry `entry` to `out`.
pub fn put_record(out: &mut Vec<u8>, entry: u16, record: &Record<'_>) {
    put_fields(out, entry, false, record);
}

/// Appends a record frame copied from a stored one, marked as a possible redelivery if
/// `redelivery` (or if it was one already).
pub fn put_stored(out: &mut Vec<u8>, s: &Stored<'_>, redelivery: bool) {
    put_fields(out, s.entry, s.redelivery || redelivery, &s.record);
}

fn put_fields(out: &mut Vec<u8>, entry: u16, redelivery: bool, r: &Record<'_>) {
    let start = begin(out, RECORD);
    let flags = (u8::from(r.dead_letter) * DEAD_LETTER)
        | (u8::from(redelivery) * REDELIVERY)
        | (u8::from(r.partition.is_some()) * HAS_PARTITION);
    out.extend_from_slice(&entry.to_le_bytes());
    out.push(flags);
    out.extend_from_slice(&r.partition.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&r.timestamp.to_le_bytes());
    out.extend_from_slice(&r.received_ms.to_le_bytes());
    put_bytes(out, Some(r.topic.as_bytes()));
    put_bytes(out, r.key);
    put_bytes(out, r.payload);
    out.extend_from_slice(&(r.headers.len() as u32).to_le_bytes());
    for (name, value) in &r.headers {
        put_bytes(out, Some(name.as_bytes()));
        put_bytes(out, *value);
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

/// What reading a frame at the start of some bytes found.
#[derive(Debug, PartialEq)]
pub enum Read<'a> {
    /// A valid frame and its length, header included.
    Frame(Frame<'a>, usize),
    /// The bytes end inside the frame: more may come, or it is a torn tail.
    Short,
    /// The frame is damaged (CRC mismatch, impossible length or content).
    Bad(&'static str),
    /// Zeros where a frame would start: the end of what was written into a segment whose
    /// file was allocated ahead.
    End,
}

/// Reads the frame at the start of `bytes`.
pub fn read(bytes: &[u8]) -> Read<'_> {
    match check(bytes) {
        Ok(len) => match decode(&bytes[HEADER..len]) {
            Some(frame) => Read::Frame(frame, len),
            None => Read::Bad("malformed frame body"),
        },
        Err(NoFrame::Short) => Read::Short,
        Err(NoFrame::End) => Read::End,
        Err(NoFrame::Bad(why)) => Read::Bad(why),
    }
}

/// Why there is no whole frame: [`Read`]'s other cases.
enum NoFrame {
    Short,
    End,
    Bad(&'static str),
}

/// Checks the length and checksum of the frame at the start of `bytes`; its length,
/// header included.
fn check(bytes: &[u8]) -> Result<usize, NoFrame> {
    if bytes.len() < HEADER {
        return Err(match bytes.iter().all(|&b| b == 0) {
            true if !bytes.is_empty() => NoFrame::End,
            _ => NoFrame::Short,
        });
    }
    if bytes[..HEADER] == [0; HEADER] {
        return Err(NoFrame::End);
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_BODY {
        return Err(NoFrame::Bad("impossible frame length"));
    }
    let Some(body) = bytes.get(HEADER..HEADER + len) else {
        return Err(NoFrame::Short);
    };
    if checksum(bytes[0..4].try_into().expect("4 bytes"), body) != crc {
        return Err(NoFrame::Bad("checksum mismatch"));
    }
    Ok(HEADER + len)
}

/// Whether the whole frame `bytes` is an intact record frame (a damaged one, or a mark,
/// is not).
pub fn is_record(bytes: &[u8]) -> bool {
    check(bytes).is_ok() && bytes[HEADER] == RECORD
}

/// The record in the whole frame `bytes`, which [`is_record`] checked.
pub fn record_in(bytes: &[u8]) -> Option<Stored<'_>> {
    let mut c = Cursor(bytes.get(HEADER + 1..)?);
    let r = record(&mut c)?;
    c.0.is_empty().then_some(r)
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
        RECORD => Frame::Record(Box::new(record(&mut c)?)),
        ACKED => Frame::Acked(c.seqs()?),
        UNSENT => Frame::Unsent(c.seqs()?),
        SENDING => Frame::Sending(c.u64()?),
        SUPERSEDED => Frame::Superseded(c.u64()?),
        _ => return None,
    };
    c.0.is_empty().then_some(frame)
}

fn record<'a>(c: &mut Cursor<'a>) -> Option<Stored<'a>> {
    let entry = u16::from_le_bytes(c.take(2)?.try_into().ok()?);
    let flags = c.take(1)?[0];
    let partition = c.u32()? as i32;
    let timestamp = c.u64()? as i64;
    let received_ms = c.u64()? as i64;
    let topic = std::str::from_utf8(c.bytes()?.unwrap_or_default()).ok()?;
    let key = c.bytes()?;
    let payload = c.bytes()?;
    let n = c.u32()? as usize;
    let mut headers = Headers::new();
    for _ in 0..n {
        let name = std::str::from_utf8(c.bytes()?.unwrap_or_default()).ok()?;
        headers.push((name, c.bytes()?));
    }
    Some(Stored {
        entry,
        redelivery: flags & REDELIVERY != 0,
        record: Record {
            topic,
            key,
            payload,
            partition: (flags & HAS_PARTITION != 0).then_some(partition),
            timestamp,
            received_ms,
            headers,
            dead_letter: flags & DEAD_LETTER != 0,
        },
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
    use smallvec::smallvec;

    use super::*;

    fn record(payload: &[u8]) -> Record<'_> {
        Record {
            topic: "t",
            key: Some(b"k"),
            payload: Some(payload),
            partition: Some(2),
            timestamp: 1_700_000_000_000,
            received_ms: 1_700_000_000_001,
            headers: smallvec![("a", Some(&b"1"[..])), ("b", None)],
            dead_letter: true,
        }
    }

    #[test]
    fn records_and_marks_roundtrip() {
        // Declared first: the records read back borrow from both.
        let mut again = Vec::new();
        let mut out = Vec::new();
        put_record(&mut out, 3, &record(b"payload"));
        put_acked(&mut out, &[5, 9]);
        put_unsent(&mut out, &[6]);
        put_sending(&mut out, 42);
        put_superseded(&mut out, 7);
        let Read::Frame(Frame::Record(s), n) = read(&out) else {
            panic!("a record")
        };
        assert_eq!((s.entry, s.redelivery), (3, false));
        assert_eq!(s.record, record(b"payload"));
        put_stored(&mut again, &s, true);
        let Read::Frame(Frame::Record(copy), _) = read(&again) else {
            panic!("a copy")
        };
        assert_eq!(
            *copy,
            Stored {
                redelivery: true,
                ..*s
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
        put_record(&mut out, 0, &record(&[7; 300]));
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

    #[test]
    fn zeros_where_a_frame_would_start_end_the_segment() {
        assert_eq!(read(&[0; 64]), Read::End);
        assert_eq!(
            read(&[0; 3]),
            Read::End,
            "a zero tail shorter than a header"
        );
        let mut out = Vec::new();
        put_sending(&mut out, 1);
        let n = out.len();
        out.resize(n + 100, 0);
        assert!(matches!(read(&out), Read::Frame(Frame::Sending(1), m) if m == n));
        assert_eq!(read(&out[n..]), Read::End);
    }
}
