//! Reading a spool's records back in sequence order, as they are written: what its pump
//! sends. Reads are large (up to 1 MiB from the page cache) and run off the async
//! workers.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use super::frame::{self, Read, Stored, HEADER};
use super::log::Log;

/// Bytes read from a segment at a time.
const CHUNK: usize = 1 << 20;

/// A position in the log and the bytes read from it but not yet handed out.
pub struct Reader {
    log: Arc<Log>,
    label: Arc<str>,
    segment: u64,
    /// Bytes of the segment read into `buf`.
    offset: u64,
    /// The sequence number of the next record.
    seq: u64,
    file: Option<File>,
    buf: Vec<u8>,
    /// Where the next frame in `buf` starts.
    at: usize,
}

impl Reader {
    /// A reader from the start of segment `segment`.
    pub(super) fn new(log: Arc<Log>, label: Arc<str>, segment: u64) -> Reader {
        Reader {
            log,
            label,
            segment,
            offset: 0,
            seq: segment,
            file: None,
            buf: Vec::with_capacity(CHUNK),
            at: 0,
        }
    }

    /// The sequence number of the next record it hands out.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Reads newly written bytes, off the async workers; `Ok(false)` if there are none
    /// yet.
    pub async fn fill(self) -> (Reader, io::Result<bool>) {
        let task = tokio::task::spawn_blocking(move || {
            let mut reader = self;
            let filled = reader.fill_now();
            (reader, filled)
        });
        task.await.expect("reading the spool does not panic")
    }

    /// Waits until a record is written that this reader has not read, or the log closes.
    pub async fn written(&self) {
        self.log.appended(self.seq).await;
    }

    /// The next record read: its sequence number and where its frame is in the buffer
    /// ([`Reader::record`]). Marks are skipped, and so is a damaged frame (logged): the
    /// pump goes on with the records after it.
    pub fn next(&mut self) -> Option<(u64, Range<usize>)> {
        loop {
            let len = frame_len(&self.buf[self.at..])?;
            if self.buf.len() - self.at < len {
                return None;
            }
            let at = self.at..self.at + len;
            self.at += len;
            let bytes = &self.buf[at.clone()];
            if frame::is_record(bytes) {
                let seq = self.seq;
                self.seq += 1;
                return Some((seq, at));
            }
            if !matches!(frame::read(bytes), Read::Frame(..)) {
                ::log::error!("{}: a damaged frame in the spool was skipped", self.label);
            }
        }
    }

    /// The record whose frame [`Reader::next`] found at `at`.
    pub fn record(&self, at: Range<usize>) -> Option<Stored<'_>> {
        frame::record_in(&self.buf[at])
    }

    fn fill_now(&mut self) -> io::Result<bool> {
        loop {
            let (len, next) = self.log.extent(self.segment);
            if let Some(len) = len.filter(|&l| l > self.offset) {
                self.read(len)?;
                return Ok(true);
            }
            let Some(next) = next else { return Ok(false) };
            self.segment = next;
            self.offset = 0;
            self.seq = next;
            self.file = None;
            self.buf.clear();
            self.at = 0;
        }
    }

    /// Appends up to a chunk (or the whole pending frame) of the segment's bytes below
    /// `len` to the unread ones.
    fn read(&mut self, len: u64) -> io::Result<()> {
        self.buf.drain(..self.at);
        self.at = 0;
        let pending_frame = frame_len(&self.buf).unwrap_or(0);
        let want = CHUNK.max(pending_frame.saturating_sub(self.buf.len()));
        let n = want.min((len - self.offset) as usize);
        if self.file.is_none() {
            self.file = Some(File::open(self.log.segment_path(self.segment))?);
        }
        let file = self.file.as_ref().expect("opened above");
        let start = self.buf.len();
        self.buf.resize(start + n, 0);
        file.read_exact_at(&mut self.buf[start..], self.offset)?;
        self.offset += n as u64;
        Ok(())
    }
}

/// The length of the frame at the start of `bytes`, from its header.
fn frame_len(bytes: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    Some(HEADER + len as usize)
}
