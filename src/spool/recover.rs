//! Opening a spool directory: what a previous run (clean stop, crash or `kill -9`) left
//! is read back, and the records Kafka had not settled are copied, in order, into one
//! new segment that the pump replays before anything new.
//!
//! The copy is written as `<seq>.log.new`, synced, and renamed; its first frame says
//! that every older record is superseded, so a crash between the rename and the
//! deletion of the old segments cannot replay a record twice. A bad frame in the last
//! segment is a torn tail (a write cut short by the crash) and is cut off; a bad frame
//! in any other segment is corruption: what precedes it is kept, and the file is moved
//! aside as `.corrupt` with an error naming it.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::frame::{self, Frame, Read};
use super::log::{segment_path, sync_dir, Segment};

/// What recovery found and left.
pub struct Recovered {
    /// The segments now on disk: the copy, if any records were left.
    pub segments: VecDeque<Segment>,
    /// The sequence number of the next record: after every old segment's and the copy's.
    pub next_seq: u64,
    /// Records left unsettled by the previous run, now queued again.
    pub replayed: u64,
    /// Of those, the ones that may already be in Kafka.
    pub redelivered: u64,
    /// Bytes of a torn tail cut off the last segment.
    pub torn_bytes: u64,
    /// Segments moved aside as corrupt.
    pub corrupt: Vec<PathBuf>,
}

/// One old segment file, as the first pass read it.
struct Old {
    first_seq: u64,
    path: PathBuf,
    records: u64,
    /// Where its trustworthy frames end.
    valid_len: usize,
    corrupt: bool,
}

/// What the first pass gathers across all old segments.
#[derive(Default)]
struct Marks {
    acked: Vec<u64>,
    unsent: Vec<u64>,
    sending_below: u64,
    superseded_below: u64,
    torn_bytes: u64,
}

/// Reads `dir` (created if missing) and prepares it for appends.
pub fn recover(dir: &Path) -> io::Result<Recovered> {
    fs::create_dir_all(dir)?;
    discard_unfinished_copies(dir)?;
    let mut marks = Marks::default();
    let names = segment_names(dir)?;
    let count = names.len();
    let mut old = Vec::with_capacity(count);
    for (i, (first_seq, path)) in names.into_iter().enumerate() {
        old.push(scan(first_seq, path, i + 1 == count, &mut marks)?);
    }
    marks.acked.sort_unstable();
    marks.acked.dedup();
    marks.unsent.sort_unstable();
    // Past every old segment's name, an empty one's included, so that no new file
    // takes an old one's name.
    let next_seq = old
        .iter()
        .map(|o| o.first_seq + o.records.max(1))
        .max()
        .unwrap_or(0);
    let mut segments = VecDeque::new();
    let (replayed, redelivered) = match copy_unsettled(dir, &old, &marks, next_seq)? {
        Some((copy, redelivered)) => {
            let n = copy.records;
            segments.push_back(copy);
            (n, redelivered)
        }
        None => (0, 0),
    };
    let corrupt = retire(&old)?;
    Ok(Recovered {
        segments,
        next_seq: next_seq + replayed,
        replayed,
        redelivered,
        torn_bytes: marks.torn_bytes,
        corrupt,
    })
}

/// The segment files in `dir`, oldest first.
fn segment_names(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(seq) = seq {
            names.push((seq, path));
        }
    }
    names.sort_unstable_by_key(|(seq, _)| *seq);
    Ok(names)
}

/// Removes copies that a crash interrupted before their rename.
fn discard_unfinished_copies(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "new") {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// The first pass over one segment: counts its records and gathers its marks.
fn scan(first_seq: u64, path: PathBuf, last: bool, marks: &mut Marks) -> io::Result<Old> {
    let bytes = fs::read(&path)?;
    let (mut at, mut records, mut corrupt) = (0, 0, false);
    while at < bytes.len() {
        match frame::read(&bytes[at..]) {
            // The rest of a file allocated ahead; what follows a stretch of zeros there
            // (a write the page cache had not yet flushed at a power loss) was never
            // acknowledged as synced.
            Read::End => break,
            Read::Frame(f, n) => {
                match f {
                    Frame::Record(_) => records += 1,
                    Frame::Acked(seqs) => marks.acked.extend(seqs),
                    Frame::Unsent(seqs) => marks.unsent.extend(seqs),
                    Frame::Sending(m) => marks.sending_below = marks.sending_below.max(m),
                    Frame::Superseded(m) => marks.superseded_below = marks.superseded_below.max(m),
                }
                at += n;
            }
            bad if last => {
                let cut = written_len(&bytes) - at;
                log::warn!(
                    "spool {}: torn tail of {cut} bytes at offset {at} cut off ({}); records there were never acknowledged",
                    path.display(),
                    describe(&bad)
                );
                marks.torn_bytes += cut as u64;
                break;
            }
            bad => {
                log::error!(
                    "spool {}: corrupt at offset {at} ({}); the {records} records before it are kept, the rest of the file is moved aside",
                    path.display(),
                    describe(&bad)
                );
                corrupt = true;
                break;
            }
        }
    }
    Ok(Old {
        first_seq,
        path,
        records,
        valid_len: at,
        corrupt,
    })
}

fn describe(r: &Read<'_>) -> &'static str {
    match r {
        Read::Short => "the last frame is incomplete",
        Read::Bad(why) => why,
        Read::Frame(..) | Read::End => "valid",
    }
}

/// Where the written bytes of a segment end: past its last non-zero byte (its file may
/// have been allocated longer).
fn written_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

/// Copies the records no acked frame settled into a new segment at `first_seq`; returns
/// it and how many of them may have been sent, or `None` if none are left.
fn copy_unsettled(
    dir: &Path,
    old: &[Old],
    marks: &Marks,
    first_seq: u64,
) -> io::Result<Option<(Segment, u64)>> {
    let tmp = dir.join(format!("{first_seq:020}.log.new"));
    let mut out = File::create(&tmp)?;
    let mut buf = Vec::with_capacity(1 << 20);
    frame::put_superseded(&mut buf, first_seq);
    let (mut records, mut redelivered, mut len) = (0u64, 0u64, 0u64);
    let mut first_received_ms = None;
    for o in old {
        let bytes = fs::read(&o.path)?;
        let mut seq = o.first_seq;
        let mut at = 0;
        while at < o.valid_len {
            let Read::Frame(f, n) = frame::read(&bytes[at..]) else {
                break;
            };
            at += n;
            let Frame::Record(r) = f else { continue };
            let this = seq;
            seq += 1;
            if this < marks.superseded_below || marks.acked.binary_search(&this).is_ok() {
                continue;
            }
            let maybe_sent =
                this < marks.sending_below && marks.unsent.binary_search(&this).is_err();
            frame::put_stored(&mut buf, &r, maybe_sent);
            redelivered += u64::from(maybe_sent || r.redelivery);
            records += 1;
            first_received_ms.get_or_insert(r.record.received_ms);
            if buf.len() >= 1 << 20 {
                len += flush(&mut out, &mut buf)?;
            }
        }
    }
    if records == 0 {
        drop(out);
        fs::remove_file(&tmp)?;
        return Ok(None);
    }
    len += flush(&mut out, &mut buf)?;
    out.sync_data()?;
    fs::rename(&tmp, segment_path(dir, first_seq))?;
    sync_dir(dir)?;
    let copy = Segment::sealed(first_seq, len, records, first_received_ms);
    Ok(Some((copy, redelivered)))
}

fn flush(out: &mut File, buf: &mut Vec<u8>) -> io::Result<u64> {
    out.write_all(buf)?;
    let n = buf.len() as u64;
    buf.clear();
    Ok(n)
}

/// Deletes the old segments, moving corrupt ones aside; returns the moved ones.
fn retire(old: &[Old]) -> io::Result<Vec<PathBuf>> {
    let mut corrupt = Vec::new();
    for o in old {
        if o.corrupt {
            let aside = o.path.with_extension("corrupt");
            fs::rename(&o.path, &aside)?;
            corrupt.push(aside);
        } else {
            fs::remove_file(&o.path)?;
        }
    }
    if let Some(o) = old.first() {
        sync_dir(o.path.parent().expect("a segment is in a directory"))?;
    }
    Ok(corrupt)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::record::{Headers, Record};

    fn record(payload: &str) -> Record<'_> {
        Record {
            topic: "t",
            key: None,
            payload: Some(payload.as_bytes()),
            partition: None,
            timestamp: 1,
            received_ms: 1,
            headers: Headers::new(),
            dead_letter: false,
        }
    }

    /// Writes segment `first_seq` with records `payloads` and then `extra` frames.
    fn write_segment(dir: &Path, first_seq: u64, payloads: &[&str], extra: &[u8]) -> PathBuf {
        let mut bytes = Vec::new();
        for p in payloads {
            frame::put_record(&mut bytes, 0, &record(p));
        }
        bytes.extend_from_slice(extra);
        let path = segment_path(dir, first_seq);
        fs::write(&path, bytes).unwrap();
        path
    }

    /// The payloads of the records the recovered copy holds, and their redelivery flags.
    fn copied(dir: &Path, r: &Recovered) -> Vec<(String, bool)> {
        if r.replayed == 0 {
            return Vec::new();
        }
        let bytes = fs::read(segment_path(dir, r.segments[0].first_seq)).unwrap();
        let mut at = 0;
        let mut out = Vec::new();
        while let Read::Frame(f, n) = frame::read(&bytes[at..]) {
            if let Frame::Record(r) = f {
                let text = String::from_utf8(r.record.payload.unwrap().to_vec()).unwrap();
                out.push((text, r.redelivery));
            }
            at += n;
        }
        assert_eq!(at, bytes.len(), "the copy is whole");
        out
    }

    fn files(dir: &Path) -> HashSet<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    }

    #[test]
    fn unsettled_records_are_copied_in_order_and_marked_if_maybe_sent() {
        let dir = tempfile::tempdir().unwrap();
        let mut marks = Vec::new();
        frame::put_acked(&mut marks, &[1, 3]);
        frame::put_sending(&mut marks, 3);
        frame::put_unsent(&mut marks, &[2]);
        write_segment(dir.path(), 0, &["a", "b", "c"], &marks);
        write_segment(dir.path(), 3, &["d", "e"], &[]);
        let r = recover(dir.path()).unwrap();
        assert_eq!((r.replayed, r.redelivered, r.next_seq), (3, 1, 8));
        let want = [("a", true), ("c", false), ("e", false)];
        let want: Vec<_> = want.iter().map(|(p, m)| (p.to_string(), *m)).collect();
        assert_eq!(copied(dir.path(), &r), want);
        assert_eq!(files(dir.path()), HashSet::from([format!("{:020}.log", 5)]));
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut torn = Vec::new();
        frame::put_record(&mut torn, 0, &record("torn"));
        torn.truncate(torn.len() - 5);
        write_segment(dir.path(), 0, &["a", "b"], &torn);
        let r = recover(dir.path()).unwrap();
        assert_eq!((r.replayed, r.torn_bytes), (2, torn.len() as u64));
        assert_eq!(copied(dir.path(), &r).len(), 2);
        assert!(r.corrupt.is_empty());
    }

    #[test]
    fn a_corrupt_segment_keeps_its_good_prefix_and_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), 0, &["a", "b", "c"], &[]);
        let mut bytes = fs::read(&path).unwrap();
        let second = bytes.len() / 3 + frame::HEADER + 2;
        bytes[second] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        write_segment(dir.path(), 3, &["d"], &[]);
        let r = recover(dir.path()).unwrap();
        let texts: Vec<_> = copied(dir.path(), &r).into_iter().map(|(t, _)| t).collect();
        assert_eq!(texts, ["a", "d"]);
        assert_eq!(r.corrupt, [path.with_extension("corrupt")]);
        assert!(r.corrupt[0].exists());
    }

    #[test]
    fn a_crash_after_the_copy_does_not_replay_twice() {
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), 0, &["a", "b"], &[]);
        let first = recover(dir.path()).unwrap();
        assert_eq!(first.replayed, 2);
        // As if the old segment had survived the crash, next to its copy.
        write_segment(dir.path(), 0, &["a", "b"], &[]);
        fs::write(dir.path().join("junk.log.new"), b"half a copy").unwrap();
        let second = recover(dir.path()).unwrap();
        let texts: Vec<_> = copied(dir.path(), &second)
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(texts, ["a", "b"]);
        assert!(!dir.path().join("junk.log.new").exists());
    }

    #[test]
    fn an_empty_or_missing_directory_starts_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let r = recover(&dir.path().join("new")).unwrap();
        assert_eq!((r.replayed, r.next_seq, r.segments.len()), (0, 0, 0));
    }

    #[test]
    fn a_segment_allocated_ahead_ends_at_its_zeros_and_a_torn_frame_before_them_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut torn = Vec::new();
        frame::put_record(&mut torn, 0, &record("torn"));
        torn.truncate(torn.len() - 5);
        let mut tail = torn.clone();
        tail.resize(torn.len() + (64 << 10), 0);
        write_segment(dir.path(), 0, &["a", "b"], &vec![0; 64 << 10]);
        write_segment(dir.path(), 2, &["c"], &tail);
        let r = recover(dir.path()).unwrap();
        assert_eq!((r.replayed, r.next_seq), (3, 6));
        assert_eq!(r.torn_bytes, torn.len() as u64, "the zeros are not torn");
        let texts: Vec<_> = copied(dir.path(), &r).into_iter().map(|(t, _)| t).collect();
        assert_eq!(texts, ["a", "b", "c"]);
        assert!(r.corrupt.is_empty(), "zeros end a sealed segment cleanly");
    }
}
