//! Candidate 1: a hand-written segmented log (std + crc32fast only).
//!
//! On disk: a directory of segment files, each named by the first sequence
//! number it may hold (20 zero-padded digits, `.log`). A segment is a run of
//! frames: `u32 LE body length`, `u32 LE crc32 (IEEE) of the body`, the body.
//! Body byte 0 is the kind: 1 = record (`u64 LE seq`, value bytes), 2 = acked
//! (`u32 LE count`, then `count` × `u64 LE seq`).
//!
//! A commit encodes all its frames into one buffer, writes it with a single
//! `write_all` and makes it durable with `sync_data`. Removal is logical (an
//! acked frame); space comes back when a whole segment is acked and deleted.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const KIND_RECORD: u8 = 1;
const KIND_ACKED: u8 = 2;
const HEADER_LEN: usize = 8;

/// An append-only, segmented write-ahead log of sequence-numbered records.
pub struct SegmentLog {
    dir: PathBuf,
    segment_bytes: u64,
    /// Record and ack counts of every live segment, by first sequence number.
    segments: BTreeMap<u64, SegmentCounts>,
    /// The segment being appended to; created lazily so it is named by the
    /// first record it receives.
    active: Option<Active>,
    /// One past the highest record sequence number seen.
    next_seq: u64,
    /// Reused across commits so a commit costs no allocation.
    buf: Vec<u8>,
}

#[derive(Default)]
struct SegmentCounts {
    records: u64,
    acked: u64,
}

struct Active {
    first: u64,
    file: File,
    len: u64,
}

/// A decoded frame, borrowing from the segment's bytes.
enum Frame<'a> {
    Record {
        seq: u64,
        value: &'a [u8],
    },
    /// The raw `u64 LE` sequence numbers of an acked frame.
    Acked(&'a [u8]),
}

/// Why a frame could not be decoded.
enum BadFrame {
    /// Ends past EOF or is zero fill: what an interrupted append leaves behind.
    Torn,
    /// Bad checksum or malformed body with more data after it.
    Corrupt(&'static str),
}

impl SegmentLog {
    /// Opens (or creates) the log in `dir`, calling `visit` for every record
    /// not yet acked, in sequence order.
    ///
    /// A torn frame at the end of the newest segment (an append that never
    /// finished its `sync_data`, so was never reported durable) is cut off;
    /// any other damaged frame is an `InvalidData` error, because skipping it
    /// would silently lose a record that was reported durable.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        visit: &mut dyn FnMut(u64, &[u8]),
    ) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let firsts = list_segments(dir)?;
        let mut log = SegmentLog {
            dir: dir.to_path_buf(),
            segment_bytes,
            segments: BTreeMap::new(),
            active: None,
            next_seq: 0,
            buf: Vec::new(),
        };
        let acked = log.index_segments(&firsts)?;
        // Acks come after their records, so replay is a second pass.
        for &first in &firsts {
            for_each_frame(&log.segment_path(first), false, &mut |frame| {
                if let Frame::Record { seq, value } = frame {
                    if !acked.contains(&seq) {
                        visit(seq, value);
                    }
                }
            })?;
        }
        if let Some(&last) = firsts.last() {
            log.active = Some(log.open_active(last)?);
        }
        log.delete_acked_head()?;
        Ok(log)
    }

    /// First pass of `open`: validates every frame, truncates a torn tail of
    /// the newest segment, counts records per segment and returns acked seqs.
    fn index_segments(&mut self, firsts: &[u64]) -> io::Result<HashSet<u64>> {
        let mut acked = HashSet::new();
        for (i, &first) in firsts.iter().enumerate() {
            let path = self.segment_path(first);
            let is_last = i + 1 == firsts.len();
            let counts = self.segments.entry(first).or_default();
            let next_seq = &mut self.next_seq;
            for_each_frame(&path, is_last, &mut |frame| match frame {
                Frame::Record { seq, .. } => {
                    counts.records += 1;
                    *next_seq = (*next_seq).max(seq + 1);
                }
                Frame::Acked(raw) => acked.extend(raw.chunks_exact(8).map(le_u64)),
            })?;
        }
        self.count_acks(acked.iter().copied());
        Ok(acked)
    }

    /// Appends `values` as records `first_seq..` and an acked frame for
    /// `acked`, then makes both durable with one write and one `sync_data`.
    ///
    /// Each sequence number must be acked at most once. After an error the
    /// file's state is unknown: reopen the log rather than commit again.
    pub fn commit(&mut self, first_seq: u64, values: &[Vec<u8>], acked: &[u64]) -> io::Result<()> {
        self.buf.clear();
        for (i, value) in values.iter().enumerate() {
            encode_record(&mut self.buf, first_seq + i as u64, value);
        }
        if !acked.is_empty() {
            encode_acked(&mut self.buf, acked)?;
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let start = if values.is_empty() {
            self.next_seq
        } else {
            first_seq
        };
        self.roll_if_needed(start)?;
        let active = self
            .active
            .as_mut()
            .expect("roll_if_needed opens a segment");
        active.file.write_all(&self.buf)?;
        active.file.sync_data()?;
        active.len += self.buf.len() as u64;
        let counts = self.segments.entry(active.first).or_default();
        counts.records += values.len() as u64;
        if !values.is_empty() {
            self.next_seq = self.next_seq.max(first_seq + values.len() as u64);
        }
        self.count_acks(acked.iter().copied());
        self.delete_acked_head()
    }

    /// Starts a new segment named `start` when there is none yet, or when the
    /// current one has passed the segment size (and the name would differ).
    fn roll_if_needed(&mut self, start: u64) -> io::Result<()> {
        let needed = match &self.active {
            None => true,
            Some(a) => a.len >= self.segment_bytes && start > a.first,
        };
        if !needed {
            return Ok(());
        }
        let path = self.segment_path(start);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)?;
        // The new name must survive a crash before any commit relies on it.
        sync_dir(&self.dir)?;
        self.segments.entry(start).or_default();
        self.active = Some(Active {
            first: start,
            file,
            len: 0,
        });
        Ok(())
    }

    /// Adds each acked seq to the count of the segment holding its record.
    fn count_acks(&mut self, acked: impl IntoIterator<Item = u64>) {
        for seq in acked {
            if let Some((_, counts)) = self.segments.range_mut(..=seq).next_back() {
                counts.acked += 1;
            }
        }
    }

    /// Deletes fully acked segments from the oldest end only: a segment's acked
    /// frames may cover records in older segments, so deleting a younger
    /// segment first could bring those records back on recovery.
    fn delete_acked_head(&mut self) -> io::Result<()> {
        let active_first = self.active.as_ref().map(|a| a.first);
        let mut deleted = false;
        while let Some(entry) = self.segments.first_entry() {
            let done = entry.get().acked >= entry.get().records;
            if Some(*entry.key()) == active_first || !done {
                break;
            }
            let first = entry.remove_entry().0;
            fs::remove_file(self.segment_path(first))?;
            deleted = true;
        }
        if deleted {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn open_active(&self, first: u64) -> io::Result<Active> {
        let file = OpenOptions::new()
            .append(true)
            .open(self.segment_path(first))?;
        let len = file.metadata()?.len();
        Ok(Active { first, file, len })
    }

    fn segment_path(&self, first: u64) -> PathBuf {
        self.dir.join(format!("{first:020}.log"))
    }
}

impl crate::workload::Spool for SegmentLog {
    const NAME: &'static str = "segment-log";

    fn open(
        dir: &Path,
        opts: &crate::workload::Options,
        visit: &mut dyn FnMut(u64, &[u8]),
    ) -> io::Result<Self> {
        SegmentLog::open(dir, opts.segment_bytes, visit)
    }

    fn commit(&mut self, first_seq: u64, values: &[Vec<u8>], acked: &[u64]) -> io::Result<()> {
        SegmentLog::commit(self, first_seq, values, acked)
    }
}

/// Appends one frame whose body `body` writes, filling in length and CRC.
fn push_frame(buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER_LEN]);
    body(buf);
    let body_len = (buf.len() - start - HEADER_LEN) as u32;
    let crc = crc32fast::hash(&buf[start + HEADER_LEN..]);
    buf[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn encode_record(buf: &mut Vec<u8>, seq: u64, value: &[u8]) {
    push_frame(buf, |b| {
        b.push(KIND_RECORD);
        b.extend_from_slice(&seq.to_le_bytes());
        b.extend_from_slice(value);
    });
}

fn encode_acked(buf: &mut Vec<u8>, seqs: &[u64]) -> io::Result<()> {
    let count = u32::try_from(seqs.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many acks in one commit"))?;
    push_frame(buf, |b| {
        b.push(KIND_ACKED);
        b.extend_from_slice(&count.to_le_bytes());
        for seq in seqs {
            b.extend_from_slice(&seq.to_le_bytes());
        }
    });
    Ok(())
}

/// Reads the segment at `path` and calls `on_frame` for each valid frame.
/// With `truncate_torn`, a torn tail is cut off the file; otherwise (and for
/// any corrupt frame) decoding stops with an `InvalidData` error.
fn for_each_frame(
    path: &Path,
    truncate_torn: bool,
    on_frame: &mut dyn FnMut(Frame<'_>),
) -> io::Result<()> {
    let bytes = fs::read(path)?;
    let mut off = 0;
    while off < bytes.len() {
        match next_frame(&bytes, off) {
            Ok((frame, next)) => {
                on_frame(frame);
                off = next;
            }
            Err(BadFrame::Torn) if truncate_torn => {
                let file = OpenOptions::new().write(true).open(path)?;
                file.set_len(off as u64)?;
                return file.sync_all();
            }
            Err(BadFrame::Torn) => return Err(invalid(path, off, "torn frame")),
            Err(BadFrame::Corrupt(why)) => return Err(invalid(path, off, why)),
        }
    }
    Ok(())
}

/// Decodes the frame at `off`, returning it and the offset of the next one.
fn next_frame(bytes: &[u8], off: usize) -> Result<(Frame<'_>, usize), BadFrame> {
    let rest = &bytes[off..];
    if rest.len() < HEADER_LEN {
        return Err(BadFrame::Torn);
    }
    let body_len = le_u32(&rest[0..4]) as usize;
    let crc = le_u32(&rest[4..8]);
    let Some(body) = rest.get(HEADER_LEN..HEADER_LEN + body_len) else {
        return Err(BadFrame::Torn);
    };
    let is_tail = HEADER_LEN + body_len == rest.len();
    if body_len == 0 && rest.iter().all(|&b| b == 0) {
        return Err(BadFrame::Torn);
    }
    if crc32fast::hash(body) != crc {
        // Only the very last frame can be a half-written append.
        return Err(if is_tail {
            BadFrame::Torn
        } else {
            BadFrame::Corrupt("checksum mismatch")
        });
    }
    let frame = decode_body(body).ok_or(BadFrame::Corrupt("malformed frame body"))?;
    Ok((frame, off + HEADER_LEN + body_len))
}

fn decode_body(body: &[u8]) -> Option<Frame<'_>> {
    let (&kind, rest) = body.split_first()?;
    match kind {
        KIND_RECORD if rest.len() >= 8 => Some(Frame::Record {
            seq: le_u64(&rest[..8]),
            value: &rest[8..],
        }),
        KIND_ACKED if rest.len() >= 4 => {
            let count = le_u32(&rest[..4]) as usize;
            let seqs = &rest[4..];
            (seqs.len() == count.checked_mul(8)?).then_some(Frame::Acked(seqs))
        }
        _ => None,
    }
}

/// Lists segment files by first sequence number, ascending.
fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut firsts = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        if stem.len() == 20 {
            if let Ok(first) = stem.parse() {
                firsts.push(first);
            }
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

/// Makes a create or delete in `dir` durable (the entry lives in the directory).
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn invalid(path: &Path, off: usize, why: &str) -> io::Error {
    let msg = format!("{}: offset {off}: {why}", path.display());
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i as u8; 300]).collect()
    }

    /// The (seq, value) pairs a reopen replayed.
    type Replayed = Vec<(u64, Vec<u8>)>;

    /// Opens `dir` and returns the log and what it replayed.
    fn reopen(dir: &Path, segment_bytes: u64) -> io::Result<(SegmentLog, Replayed)> {
        let mut seen = Vec::new();
        let log = SegmentLog::open(dir, segment_bytes, &mut |s, v| seen.push((s, v.to_vec())))?;
        Ok((log, seen))
    }

    /// Writes 4 commits of 4 records into one segment and returns its path.
    fn four_commits(dir: &Path) -> PathBuf {
        let (mut log, _) = reopen(dir, 1 << 20).unwrap();
        for c in 0..4u64 {
            log.commit(c * 4, &values(4), &[]).unwrap();
        }
        log.segment_path(0)
    }

    #[test]
    fn torn_tail_is_cut_off_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = four_commits(dir.path());
        let len = fs::metadata(&path).unwrap().len();
        // Cut the last record frame in half, as a crash mid-append would.
        let frame_len = (HEADER_LEN + 1 + 8 + 300) as u64;
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - frame_len / 2)
            .unwrap();

        let (mut log, seen) = reopen(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            seen.iter().map(|r| r.0).collect::<Vec<_>>(),
            (0..15).collect::<Vec<_>>()
        );
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            len - frame_len,
            "torn bytes truncated"
        );

        log.commit(15, &values(1), &[0]).unwrap();
        drop(log);
        let (_, seen) = reopen(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            seen.iter().map(|r| r.0).collect::<Vec<_>>(),
            (1..16).collect::<Vec<_>>()
        );
    }

    #[test]
    fn flipped_byte_in_a_middle_frame_is_a_checksum_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = four_commits(dir.path());
        let mut bytes = fs::read(&path).unwrap();
        let frame_len = HEADER_LEN + 1 + 8 + 300;
        // A value byte of record 7, in the middle of the file.
        bytes[7 * frame_len + HEADER_LEN + 100] ^= 0x40;
        fs::write(&path, &bytes).unwrap();

        let err = reopen(dir.path(), 1 << 20)
            .err()
            .expect("corruption must be reported");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("offset {}", 7 * frame_len)),
            "{err}"
        );
    }

    #[test]
    fn zero_filled_tail_counts_as_torn() {
        let dir = tempfile::tempdir().unwrap();
        let path = four_commits(dir.path());
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len + 4096)
            .unwrap();

        let (_, seen) = reopen(dir.path(), 1 << 20).unwrap();
        assert_eq!(seen.len(), 16);
        assert_eq!(fs::metadata(&path).unwrap().len(), len);
    }

    #[test]
    fn acked_records_are_skipped_and_acked_segments_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = reopen(dir.path(), 4096).unwrap();
        for c in 0..10u64 {
            let acked: Vec<u64> = if c >= 2 {
                ((c - 2) * 8..(c - 1) * 8).collect()
            } else {
                vec![]
            };
            log.commit(c * 8, &values(8), &acked).unwrap();
        }
        drop(log);
        let firsts = list_segments(dir.path()).unwrap();
        assert!(
            !firsts.contains(&0),
            "fully acked head segments are deleted: {firsts:?}"
        );

        let (_, seen) = reopen(dir.path(), 4096).unwrap();
        assert_eq!(
            seen.iter().map(|r| r.0).collect::<Vec<_>>(),
            (64..80).collect::<Vec<_>>()
        );
        assert!(seen.iter().all(|(s, v)| v == &vec![(s % 8) as u8; 300]));
    }
}
