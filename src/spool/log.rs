//! The segment log under a spool: appenders add frames to one pending buffer, and a
//! committer thread writes it to the active segment and syncs it, all that arrived
//! since the last sync at once (group commit), at most once per `flush_interval`. Settled records are recorded in acked frames; a
//! segment is deleted once all its records and every older segment's are settled.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::{watch, Notify};

use super::frame;
use crate::kafka::Outgoing;

/// The bookkeeping of one segment file.
#[derive(Debug)]
pub struct Segment {
    /// The sequence number of its first record; also its file name.
    pub first_seq: u64,
    /// Bytes written and synced.
    pub len: u64,
    /// Records written and synced.
    pub records: u64,
    /// Of those, the settled ones whose acked frame is synced.
    pub acked: u64,
    /// When the broker received its first record (ms since the epoch).
    pub first_received_ms: Option<i64>,
}

/// What appenders, the committer and the pump share.
struct State {
    /// Frames appended since the last commit.
    pending: Vec<u8>,
    pending_records: u64,
    pending_first_received_ms: Option<i64>,
    /// The sequence number the next appended record gets.
    next_seq: u64,
    /// Settled records waiting for the next commit.
    acked: Vec<u64>,
    /// Records purged unsent at a stop, waiting for the next commit.
    unsent: Vec<u64>,
    /// A sending mark waiting for the next commit.
    sending: Option<u64>,
    /// Oldest first; the last one is the active segment.
    segments: VecDeque<Segment>,
    /// The segments' synced bytes.
    disk_bytes: u64,
    /// Bytes of the commit being written.
    committing: u64,
    /// Set when the spool stops: appends are refused, and the committer exits once it
    /// has committed what is pending.
    closed: bool,
}

/// A spool's segment log.
pub struct Log {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    flush_interval: Duration,
    state: Mutex<State>,
    wake_committer: Condvar,
    /// All records below this sequence number are durable.
    durable: watch::Sender<u64>,
    /// The highest sending mark that is durable.
    sending_durable: watch::Sender<u64>,
    /// Set when a write or sync failed: nothing more becomes durable.
    broken: AtomicBool,
    /// Signalled when a commit freed disk space.
    room: Notify,
}

/// Why an append did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The spool holds `buffer.max_bytes`.
    Full,
    /// The spool stopped.
    Closed,
}

impl Log {
    /// A log over `dir`, whose records so far (recovered) end below `next_seq`, written
    /// to `segments` (the last is the active one, open as `active`).
    pub fn new(
        dir: PathBuf,
        config: &crate::config::BufferConfig,
        segments: VecDeque<Segment>,
        next_seq: u64,
    ) -> Log {
        let disk_bytes = segments.iter().map(|s| s.len).sum();
        Log {
            dir,
            max_bytes: config.max_bytes,
            segment_bytes: segment_bytes(config.max_bytes),
            flush_interval: config.flush_interval,
            state: Mutex::new(State {
                pending: Vec::with_capacity(1 << 16),
                pending_records: 0,
                pending_first_received_ms: None,
                next_seq,
                acked: Vec::new(),
                unsent: Vec::new(),
                sending: None,
                segments,
                disk_bytes,
                committing: 0,
                closed: false,
            }),
            wake_committer: Condvar::new(),
            durable: watch::Sender::new(next_seq),
            sending_durable: watch::Sender::new(0),
            broken: AtomicBool::new(false),
            room: Notify::new(),
        }
    }

    /// Appends a record for the next commit and returns its sequence number.
    pub fn append(&self, entry: u16, record: &Outgoing<'_>) -> Result<u64, Refused> {
        let mut s = self.state.lock();
        if s.closed {
            return Err(Refused::Closed);
        }
        let before = s.pending.len();
        frame::put_record(&mut s.pending, entry, record);
        let size = (s.pending.len() - before) as u64;
        if s.disk_bytes + s.committing + before as u64 + size > self.max_bytes {
            s.pending.truncate(before);
            return Err(Refused::Full);
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        s.pending_records += 1;
        s.pending_first_received_ms
            .get_or_insert(record.received_ms);
        if before == 0 {
            self.wake_committer.notify_one();
        }
        Ok(seq)
    }

    /// Appends a record, waiting up to `timeout` for room.
    pub async fn append_within(
        &self,
        entry: u16,
        record: &Outgoing<'_>,
        timeout: Duration,
    ) -> Result<u64, Refused> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let freed = self.room.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.append(entry, record) {
                Err(Refused::Full) if tokio::time::Instant::now() < deadline => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        return self.append(entry, record);
                    }
                }
                result => return result,
            }
        }
    }

    /// Waits until the record `seq` is durable; `false` if it never will be (a write
    /// failed).
    pub async fn durable(&self, seq: u64) -> bool {
        let mut rx = self.durable.subscribe();
        let broken = || self.broken.load(Ordering::Acquire);
        let durable = match rx.wait_for(|d| *d > seq || broken()).await {
            Ok(d) => *d > seq,
            Err(_) => false,
        };
        durable
    }

    /// A watch on the durable bound, for the pump.
    pub fn watch_durable(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// Records that `seq`, which stays spooled, was purged before it was sent, so that
    /// the next start does not count it as a possible duplicate.
    pub fn unsent(&self, seq: u64) {
        self.state.lock().unsent.push(seq);
    }

    /// Asks the next commit to record that records below `below` may be sent.
    pub fn request_sending(&self, below: u64) {
        let mut s = self.state.lock();
        s.sending = Some(s.sending.map_or(below, |m| m.max(below)));
        self.wake_committer.notify_one();
    }

    /// Waits until a durable sending mark covers records below `below`; the mark, or
    /// `None` if it never will be durable.
    pub async fn sending_durable(&self, below: u64) -> Option<u64> {
        let mut rx = self.sending_durable.subscribe();
        let broken = || self.broken.load(Ordering::Acquire);
        let mark = match rx.wait_for(|m| *m >= below || broken()).await {
            Ok(m) if *m >= below => Some(*m),
            _ => None,
        };
        mark
    }

    /// Marks the log broken after a failed write or sync, and wakes every waiter.
    pub fn break_down(&self) {
        self.broken.store(true, Ordering::Release);
        self.state.lock().closed = true;
        self.durable.send_modify(|_| {});
        self.sending_durable.send_modify(|_| {});
        self.room.notify_waiters();
    }

    /// Records that Kafka settled `seq`; its segment may go once the next commit made
    /// that durable.
    pub fn settled(&self, seq: u64) {
        let mut s = self.state.lock();
        s.acked.push(seq);
        if s.acked.len() == 1 && s.pending.is_empty() {
            self.wake_committer.notify_one();
        }
    }

    /// Stops appends; the committer commits what is pending and exits.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.wake_committer.notify_one();
    }

    /// The path of the segment that starts at `first_seq`.
    pub fn segment_path(&self, first_seq: u64) -> PathBuf {
        segment_path(&self.dir, first_seq)
    }

    /// Where segment `first_seq`'s synced bytes end (`None` once it is deleted), and the
    /// segment after it, if there is one yet.
    pub fn extent(&self, first_seq: u64) -> (Option<u64>, Option<u64>) {
        let s = self.state.lock();
        let after = s.segments.partition_point(|g| g.first_seq <= first_seq);
        let len = after
            .checked_sub(1)
            .map(|i| &s.segments[i])
            .filter(|g| g.first_seq == first_seq)
            .map(|g| g.len);
        (len, s.segments.get(after).map(|g| g.first_seq))
    }

    /// The first segment, where the pump starts.
    pub fn first_segment(&self) -> u64 {
        self.state
            .lock()
            .segments
            .front()
            .map_or(0, |g| g.first_seq)
    }

    /// Bytes on disk and records not yet settled, and the receive time of the first
    /// record of the oldest segment that holds any.
    pub fn usage(&self) -> (u64, u64, Option<i64>) {
        let s = self.state.lock();
        let records =
            s.segments.iter().map(|g| g.records - g.acked).sum::<u64>() + s.pending_records;
        let oldest = s
            .segments
            .iter()
            .find(|g| g.acked < g.records)
            .and_then(|g| g.first_received_ms)
            .or(s.pending_first_received_ms);
        let bytes = s.disk_bytes + s.committing + s.pending.len() as u64;
        (bytes, records, oldest)
    }

    /// The committer's loop; `active` is the open last segment. Returns once the log is
    /// closed and everything pending is committed. An I/O error ends the spool: the
    /// records not yet durable are refused, as after a crash.
    pub fn commit_loop(self: &Arc<Log>, mut active: File) -> io::Result<()> {
        let mut batch = Vec::with_capacity(1 << 16);
        let mut last = Instant::now();
        let mut split = false;
        loop {
            let closing = {
                let mut s = self.state.lock();
                while !s.closed && nothing_pending(&s) {
                    self.wake_committer.wait(&mut s);
                }
                s.closed
            };
            if !closing && !split {
                std::thread::sleep(self.flush_interval.saturating_sub(last.elapsed()));
            }
            last = Instant::now();
            let taken = self.take_batch(&mut batch);
            // The rest of a batch that filled the segment goes at once, to the next one.
            split = taken.split;
            if !batch.is_empty() {
                active.write_all(&batch)?;
                active.sync_data()?;
            }
            if let Some(next) = self.committed(batch.len() as u64, taken)? {
                active = next;
            }
            if closing && nothing_pending(&self.state.lock()) {
                return Ok(());
            }
        }
    }

    /// Moves what is pending into `batch` (as much as fills the active segment), followed
    /// by the acked and sending frames.
    fn take_batch(&self, batch: &mut Vec<u8>) -> Taken {
        let mut s = self.state.lock();
        let active_len = s.segments.back().map_or(0, |g| g.len);
        let room = self.segment_bytes.saturating_sub(active_len) as usize;
        let (cut, records) = frame::records_within(&s.pending, room);
        let split = cut < s.pending.len();
        let first_received_ms = s.pending_first_received_ms.take();
        batch.clear();
        if split {
            batch.extend_from_slice(&s.pending[..cut]);
            s.pending.drain(..cut);
            s.pending_first_received_ms = frame::first_received_ms(&s.pending);
        } else {
            std::mem::swap(batch, &mut s.pending);
        }
        s.pending_records -= records;
        s.committing = cut as u64;
        if !s.acked.is_empty() {
            frame::put_acked(batch, &s.acked);
        }
        if !s.unsent.is_empty() {
            frame::put_unsent(batch, &std::mem::take(&mut s.unsent));
        }
        let sending_taken = s.sending.take();
        if let Some(below) = sending_taken {
            frame::put_sending(batch, below);
        }
        Taken {
            records,
            first_received_ms,
            acked: std::mem::take(&mut s.acked),
            durable_below: s.next_seq - s.pending_records,
            sending: sending_taken,
            split,
        }
    }

    /// Books a synced batch: grows the active segment, counts the acks, deletes the
    /// settled prefix, rolls to a new segment when the active one is full, and wakes
    /// whoever waits. Returns the new active segment's file after a roll.
    fn committed(&self, bytes: u64, taken: Taken) -> io::Result<Option<File>> {
        let (gone, roll) = {
            let mut s = self.state.lock();
            let active = s.segments.back_mut().expect("a log always has a segment");
            active.len += bytes;
            active.records += taken.records;
            if active.first_received_ms.is_none() {
                active.first_received_ms = taken.first_received_ms;
            }
            s.disk_bytes += bytes;
            s.committing = 0;
            for seq in &taken.acked {
                count_ack(&mut s.segments, *seq);
            }
            let roll = active_is_full(&s, self.segment_bytes).then(|| {
                let last = s.segments.back().expect("a log always has a segment");
                last.first_seq + last.records
            });
            (settled_prefix(&mut s), roll)
        };
        self.durable.send_replace(taken.durable_below);
        if let Some(m) = taken.sending {
            self.sending_durable.send_replace(m);
        }
        let next = match roll {
            Some(first_seq) => Some(self.roll(first_seq)?),
            None => None,
        };
        if !gone.is_empty() || next.is_some() {
            self.delete(&gone)?;
            self.room.notify_waiters();
        }
        Ok(next)
    }

    /// Starts a new active segment at `first_seq`.
    fn roll(&self, first_seq: u64) -> io::Result<File> {
        let file = create_segment(&self.dir, first_seq)?;
        self.state.lock().segments.push_back(Segment {
            first_seq,
            len: 0,
            records: 0,
            acked: 0,
            first_received_ms: None,
        });
        Ok(file)
    }

    /// Deletes settled segments' files, then makes that durable.
    fn delete(&self, gone: &[(u64, u64)]) -> io::Result<()> {
        for (first_seq, len) in gone {
            fs::remove_file(self.segment_path(*first_seq))?;
            self.state.lock().disk_bytes -= len;
        }
        sync_dir(&self.dir)
    }
}

/// What a commit took from the pending state.
struct Taken {
    records: u64,
    first_received_ms: Option<i64>,
    acked: Vec<u64>,
    /// Every record below it is in this commit or an earlier one.
    durable_below: u64,
    /// The sending mark in this commit.
    sending: Option<u64>,
    /// Records are left pending because the active segment is full.
    split: bool,
}

fn nothing_pending(s: &State) -> bool {
    s.pending.is_empty() && s.acked.is_empty() && s.unsent.is_empty() && s.sending.is_none()
}

/// Counts the settlement of `seq` in its segment.
fn count_ack(segments: &mut VecDeque<Segment>, seq: u64) {
    let i = segments.partition_point(|g| g.first_seq <= seq);
    if let Some(g) = i.checked_sub(1).and_then(|i| segments.get_mut(i)) {
        g.acked += 1;
    }
}

fn active_is_full(s: &State, segment_bytes: u64) -> bool {
    s.segments.back().is_some_and(|g| g.len >= segment_bytes)
}

/// Takes the sealed segments at the front whose records are all settled; returns
/// their first sequence numbers and sizes.
fn settled_prefix(s: &mut State) -> Vec<(u64, u64)> {
    let mut gone = Vec::new();
    while s.segments.len() > 1 && s.segments[0].acked >= s.segments[0].records {
        let g = s.segments.pop_front().expect("checked");
        gone.push((g.first_seq, g.len));
    }
    gone
}

/// A segment's size: an eighth of `max_bytes`, between 128 KiB and 64 MiB, so that
/// deleting settled segments frees room in steps.
fn segment_bytes(max_bytes: u64) -> u64 {
    (max_bytes / 8).clamp(128 << 10, 64 << 20)
}

pub fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.log"))
}

/// Creates segment `first_seq` and makes its name durable.
pub fn create_segment(dir: &Path, first_seq: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, first_seq))?;
    sync_dir(dir)?;
    Ok(file)
}

/// Makes the directory's entries (created, renamed or deleted files) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use rdkafka::message::OwnedHeaders;

    use super::*;
    use crate::config::{BufferConfig, BufferMode};

    fn record(payload: &[u8]) -> Outgoing<'_> {
        Outgoing {
            topic: "t",
            key: None,
            payload: Some(payload),
            partition: None,
            timestamp: 1,
            received_ms: 1,
            headers: OwnedHeaders::new(),
            dead_letter: false,
        }
    }

    /// A log over `dir` with its committer running.
    fn open(dir: &Path, max_bytes: u64) -> (Arc<Log>, std::thread::JoinHandle<io::Result<()>>) {
        let config = BufferConfig {
            mode: BufferMode::Disk,
            dir: dir.to_owned(),
            max_bytes,
            flush_interval: Duration::from_millis(2),
        };
        let r = super::super::recover::recover(dir).unwrap();
        let log = Arc::new(Log::new(dir.to_owned(), &config, r.segments, r.next_seq));
        let committer = std::thread::spawn({
            let log = log.clone();
            move || log.commit_loop(r.active)
        });
        (log, committer)
    }

    fn segment_files(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "log")
            })
            .count()
    }

    #[tokio::test]
    async fn appends_become_durable_and_settled_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (log, committer) = open(dir.path(), 4 << 20);
        let payload = [7u8; 1024];
        let seqs: Vec<u64> = (0..2000)
            .map(|_| log.append(0, &record(&payload)).unwrap())
            .collect();
        assert_eq!(seqs, (0..2000).collect::<Vec<_>>());
        assert!(log.durable(1999).await);
        assert!(segment_files(dir.path()) >= 4, "rolled at 512 KiB");
        assert_eq!(log.usage().1, 2000);
        for s in seqs {
            log.settled(s);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while segment_files(dir.path()) > 1 {
            assert!(Instant::now() < deadline, "settled segments deleted");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(log.usage().1, 0);
        log.close();
        committer.join().unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_full_log_refuses_until_settlements_free_room() {
        let dir = tempfile::tempdir().unwrap();
        let (log, committer) = open(dir.path(), 1 << 20);
        let payload = [1u8; 4096];
        let mut seqs = Vec::new();
        while let Ok(seq) = log.append(0, &record(&payload)) {
            seqs.push(seq);
        }
        assert!(
            (200..256).contains(&seqs.len()),
            "{} records fit",
            seqs.len()
        );
        let r = record(&payload);
        let late = log.append_within(0, &r, Duration::from_millis(50)).await;
        assert_eq!(late, Err(Refused::Full));
        assert!(log.durable(*seqs.last().unwrap()).await);
        for s in &seqs[..100] {
            log.settled(*s);
        }
        let waited = log.append_within(0, &r, Duration::from_secs(10)).await;
        assert!(waited.is_ok(), "room once settled segments went");
        log.close();
        committer.join().unwrap().unwrap();
        assert_eq!(log.append(0, &record(&payload)), Err(Refused::Closed));
    }
}
