//! The segment log under a spool. An append writes a frame into the active segment's
//! file (`active.rs`), under one lock: once it returns, the frame is the kernel's
//! and survives the process dying. A syncer thread makes written frames durable with
//! `fdatasync`, as soon as a waiter asks (group commit: one sync covers everything
//! written meanwhile) and at least every `flush_interval` otherwise; it also writes the
//! acked, unsent and sending frames, deletes segments whose records are all settled, and
//! allocates the next segment ahead.
//!
//! Segment files are allocated in full when they are created (`fallocate`), so an append
//! never needs disk space the file system might not have, and a sync has no file size
//! to update.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::{oneshot, watch, Notify};

use super::active::Active;
use super::frame;
use crate::config::BufferConfig;

/// The bookkeeping of one segment file.
#[derive(Debug)]
pub struct Segment {
    /// The sequence number of its first record; also its file name.
    pub first_seq: u64,
    /// Bytes written (the file may be longer: it is allocated ahead).
    pub len: u64,
    /// Of those, the bytes an `fdatasync` covered.
    pub synced_len: u64,
    /// The file's size.
    pub size: u64,
    /// Records written.
    pub records: u64,
    /// Of those, the settled ones whose acked frame is synced.
    pub acked: u64,
    /// When the broker received its first record (ms since the epoch).
    pub first_received_ms: Option<i64>,
    /// Open while it has bytes that are not synced.
    pub file: Option<Arc<File>>,
}

impl Segment {
    /// A segment recovery wrote in full and synced.
    pub fn sealed(first_seq: u64, len: u64, records: u64, first_received_ms: Option<i64>) -> Self {
        Segment {
            first_seq,
            len,
            synced_len: len,
            size: len,
            records,
            acked: 0,
            first_received_ms,
            file: None,
        }
    }
}

/// What appenders, the syncer and the reader share.
struct State {
    /// The sequence number the next appended record gets.
    next_seq: u64,
    /// Oldest first; the last one is the active segment.
    segments: VecDeque<Segment>,
    /// The active segment's file.
    active: Active,
    /// The next segment's file, allocated ahead by the syncer.
    spare: Spare,
    /// Bytes of the segment files (their allocated sizes).
    allocated: u64,
    /// Settled records whose acked frame the syncer writes next.
    acked: Vec<u64>,
    /// Records that stay spooled unsent, for the syncer's next unsent frame.
    unsent: Vec<u64>,
    /// A sending mark for the syncer to write and sync.
    sending: Option<u64>,
    /// Who waits for a record to be synced, by its sequence number, in that order: the
    /// syncer syncs while any wait; each is completed (`true`) by the sync that covers
    /// it, or `false` if the log broke.
    sync_waiters: Vec<(u64, oneshot::Sender<bool>)>,
    /// A segment was created or renamed since the directory was last synced.
    dir_dirty: bool,
    /// Set when the spool stops: appends are refused, and the syncer exits once it has
    /// synced what is written.
    closed: bool,
}

/// A spool's segment log.
pub struct Log {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    flush_interval: Duration,
    state: Mutex<State>,
    wake_syncer: Condvar,
    /// Every record below it is synced.
    synced: watch::Sender<u64>,
    /// The highest sending mark that is synced.
    sending_synced: watch::Sender<u64>,
    /// Set when a write or sync failed: nothing more becomes durable.
    broken: AtomicBool,
    /// Signalled when settled segments were deleted.
    room: Notify,
    /// Signalled after an append while the reader waits for one.
    written: Notify,
    reader_waiting: AtomicBool,
    /// `fdatasync` calls made (`spool_syncs_total`).
    syncs: AtomicU64,
}

/// Completes with `true` once a record is synced, `false` if it never will be.
pub type SyncWait = oneshot::Receiver<bool>;

/// A record written: what the append's hook made of its sequence number, and with
/// `sync`, the wait for its sync (already asked for).
pub struct Appended<R> {
    pub made: R,
    pub synced: Option<SyncWait>,
}

/// Why an append did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The spool's segments take `buffer.max_bytes`, or the disk is full.
    Full,
    /// The spool stopped, or cannot write any more.
    Closed,
}

/// The name of the segment file allocated ahead, until it becomes the active one.
const SPARE: &str = "spare.next";

/// The next segment's file.
enum Spare {
    /// None yet: the syncer allocates one when the spool has room for it.
    Wanted,
    Ready(File),
    /// The disk had no room for it; the next roll tries again.
    Failed,
}

impl Log {
    /// A log over `dir`, whose records so far (recovered) end below `next_seq`, in
    /// `segments` (sealed). Creates the active segment.
    pub fn open(
        dir: PathBuf,
        config: &BufferConfig,
        mut segments: VecDeque<Segment>,
        next_seq: u64,
    ) -> io::Result<Log> {
        let segment_bytes = segment_bytes(config.max_bytes);
        let _ = fs::remove_file(dir.join(SPARE));
        let (file, active) = create_segment(&dir, next_seq, segment_bytes, None)?;
        sync_dir(&dir)?;
        segments.push_back(active);
        let allocated = segments.iter().map(|g| g.size).sum();
        Ok(Log {
            dir,
            max_bytes: config.max_bytes,
            segment_bytes,
            flush_interval: config.flush_interval,
            state: Mutex::new(State {
                next_seq,
                segments,
                active: Active::new(file, segment_bytes),
                spare: Spare::Wanted,
                allocated,
                acked: Vec::new(),
                unsent: Vec::new(),
                sending: None,
                sync_waiters: Vec::new(),
                dir_dirty: false,
                closed: false,
            }),
            wake_syncer: Condvar::new(),
            synced: watch::Sender::new(next_seq),
            sending_synced: watch::Sender::new(0),
            broken: AtomicBool::new(false),
            room: Notify::new(),
            written: Notify::new(),
            reader_waiting: AtomicBool::new(false),
            syncs: AtomicU64::new(0),
        })
    }

    /// Writes one record frame (encoded by the caller) and returns its sequence number
    /// and what `on_seq` (taken from its option, run under the lock, before a reader can
    /// see the record) returned. When it returns, the frame is in the page cache. With
    /// `sync`, a sync covering it is asked for now, and the wait for it returned.
    pub fn append<R>(
        &self,
        frame: &[u8],
        received_ms: i64,
        sync: bool,
        on_seq: &mut Option<impl FnOnce(u64) -> R>,
    ) -> Result<Appended<R>, Refused> {
        let mut s = self.state.lock();
        if s.closed {
            return Err(Refused::Closed);
        }
        self.write(&mut s, frame, true)?;
        let seq = s.next_seq;
        s.next_seq += 1;
        let active = s.segments.back_mut().expect("a log always has a segment");
        active.records += 1;
        active.first_received_ms.get_or_insert(received_ms);
        let made = (on_seq.take().expect("an append succeeds once"))(seq);
        let synced = sync.then(|| self.wait_for_sync(&mut s, seq));
        drop(s);
        if self.reader_waiting.load(Ordering::Acquire) {
            self.written.notify_one();
        }
        Ok(Appended { made, synced })
    }

    /// Registers a wait for record `seq`'s sync and asks the syncer for it.
    fn wait_for_sync(&self, s: &mut State, seq: u64) -> SyncWait {
        let (tx, rx) = oneshot::channel();
        if *self.synced.borrow() > seq {
            let _ = tx.send(true);
        } else if s.closed && self.broken.load(Ordering::Acquire) {
            let _ = tx.send(false);
        } else {
            if s.sync_waiters.is_empty() {
                self.wake_syncer.notify_one();
            }
            s.sync_waiters.push((seq, tx));
        }
        rx
    }

    /// Appends a record frame, waiting up to `timeout` for room.
    pub async fn append_within<R>(
        &self,
        frame: &[u8],
        received_ms: i64,
        timeout: Duration,
        sync: bool,
        on_seq: &mut Option<impl FnOnce(u64) -> R>,
    ) -> Result<Appended<R>, Refused> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let freed = self.room.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.append(frame, received_ms, sync, on_seq) {
                Err(Refused::Full) if tokio::time::Instant::now() < deadline => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        return self.append(frame, received_ms, sync, on_seq);
                    }
                }
                result => return result,
            }
        }
    }

    /// Copies `frame` into the active segment, rolling to a new one when it does not fit.
    /// A record (`bounded`) is refused when a new segment would pass `max_bytes`; the
    /// marks that let settled segments go are not, or a full spool could never empty.
    fn write(&self, s: &mut State, frame: &[u8], bounded: bool) -> Result<(), Refused> {
        if s.active.room() < frame.len() as u64 {
            self.roll(s, frame.len() as u64, bounded)?;
        }
        if let Err(e) = s.active.write(frame) {
            ::log::error!(
                "spool {}: cannot write the segment ({e})",
                self.dir.display()
            );
            s.closed = true;
            return Err(Refused::Closed);
        }
        let active = s.segments.back_mut().expect("a log always has a segment");
        active.len += frame.len() as u64;
        Ok(())
    }

    /// Seals the active segment and starts the next one, at the next sequence number,
    /// large enough for a frame of `need` bytes.
    fn roll(&self, s: &mut State, need: u64, bounded: bool) -> Result<(), Refused> {
        let size = self.segment_bytes.max(round_up(need));
        if bounded && s.allocated + size > self.max_bytes {
            return Err(Refused::Full);
        }
        let spare = match std::mem::replace(&mut s.spare, Spare::Wanted) {
            Spare::Ready(file) if size == self.segment_bytes => Some(file),
            Spare::Ready(file) => {
                s.spare = Spare::Ready(file);
                None
            }
            Spare::Wanted | Spare::Failed => None,
        };
        let created = create_segment(&self.dir, s.next_seq, size, spare);
        let (file, segment) = match created {
            Ok(made) => made,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) => {
                ::log::warn!("spool {}: the disk is full", self.dir.display());
                return Err(Refused::Full);
            }
            Err(e) => {
                ::log::error!(
                    "spool {}: cannot create a segment ({e})",
                    self.dir.display()
                );
                s.closed = true;
                return Err(Refused::Closed);
            }
        };
        s.active = Active::new(file, size);
        s.allocated += size;
        s.segments.push_back(segment);
        s.dir_dirty = true;
        self.wake_syncer.notify_one();
        Ok(())
    }

    /// Records that `seq`, which stays spooled, was never sent, so that the next start
    /// does not count it as a possible duplicate.
    pub fn unsent(&self, seqs: impl IntoIterator<Item = u64>) {
        self.state.lock().unsent.extend(seqs);
        self.wake_syncer.notify_one();
    }

    /// Asks the syncer to write and sync a mark saying that records below `below` may
    /// be sent.
    pub fn request_sending(&self, below: u64) {
        let mut s = self.state.lock();
        s.sending = Some(s.sending.map_or(below, |m| m.max(below)));
        self.wake_syncer.notify_one();
    }

    /// Waits until a synced sending mark covers records below `below`; the mark, or
    /// `None` if it never will be synced.
    pub async fn sending_synced(&self, below: u64) -> Option<u64> {
        let mut rx = self.sending_synced.subscribe();
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
        let waiters = {
            let mut s = self.state.lock();
            s.closed = true;
            std::mem::take(&mut s.sync_waiters)
        };
        for (_, tx) in waiters {
            let _ = tx.send(false);
        }
        self.synced.send_modify(|_| {});
        self.sending_synced.send_modify(|_| {});
        self.room.notify_waiters();
        self.written.notify_waiters();
    }

    /// Records that Kafka settled `seq`; its segment may go once the syncer made that
    /// durable.
    pub fn settled(&self, seq: u64) {
        let mut s = self.state.lock();
        s.acked.push(seq);
        // The first since the last sync: a syncer with nothing else to sync sleeps.
        if s.acked.len() == 1 {
            self.wake_syncer.notify_one();
        }
    }

    /// Stops appends; the syncer syncs what is written and exits.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.wake_syncer.notify_one();
        self.written.notify_waiters();
    }

    /// The path of the segment that starts at `first_seq`.
    pub fn segment_path(&self, first_seq: u64) -> PathBuf {
        segment_path(&self.dir, first_seq)
    }

    /// Where segment `first_seq`'s written bytes end (`None` once it is deleted), and the
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

    /// The first sequence number of the segment that holds `seq` (or of the first one).
    pub fn segment_of(&self, seq: u64) -> u64 {
        let s = self.state.lock();
        let after = s.segments.partition_point(|g| g.first_seq <= seq);
        let i = after.saturating_sub(1);
        s.segments.get(i).map_or(0, |g| g.first_seq)
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.state.lock().next_seq
    }

    /// Waits until a record is appended after this call began, or the log closes.
    pub async fn appended(&self, since: u64) {
        loop {
            let woken = self.written.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            self.reader_waiting.store(true, Ordering::Release);
            let done = {
                let s = self.state.lock();
                s.next_seq > since || s.closed
            };
            if done {
                break;
            }
            woken.await;
        }
        self.reader_waiting.store(false, Ordering::Release);
    }

    /// Bytes of the segment files, records not yet settled, and the receive time of the
    /// first record of the oldest segment that holds any.
    pub fn usage(&self) -> (u64, u64, Option<i64>) {
        let s = self.state.lock();
        let records = s.segments.iter().map(|g| g.records - g.acked).sum::<u64>();
        let oldest = s
            .segments
            .iter()
            .find(|g| g.acked < g.records)
            .and_then(|g| g.first_received_ms);
        (s.allocated, records, oldest)
    }

    /// `fdatasync` calls so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// The syncer's loop: returns once the log is closed and everything written is
    /// synced. An I/O error ends the spool: what is not synced is refused, as after a
    /// crash.
    pub fn sync_loop(self: &Arc<Log>) -> io::Result<()> {
        let mut last = Instant::now();
        loop {
            let job = self.next_job(last);
            last = Instant::now();
            let closing = job.closing;
            self.run(job)?;
            self.allocate_spare()?;
            if closing {
                return Ok(());
            }
        }
    }

    /// Waits until there is something to sync (a waiter, a sending mark, or a frame
    /// written `flush_interval` ago), then writes the marks and takes the job.
    fn next_job(&self, last: Instant) -> Job {
        let mut s = self.state.lock();
        loop {
            let urgent = s.closed
                || s.sending.is_some()
                || !s.sync_waiters.is_empty()
                || self.wants_spare(&s);
            if urgent {
                break;
            }
            if !has_unsynced(&s) {
                self.wake_syncer.wait(&mut s);
                continue;
            }
            let due = last + self.flush_interval;
            if Instant::now() >= due || self.wake_syncer.wait_until(&mut s, due).timed_out() {
                break;
            }
        }
        self.take_job(&mut s)
    }

    /// Writes the pending marks into the active segment and notes what the sync covers.
    fn take_job(&self, s: &mut State) -> Job {
        let mut marks = Vec::new();
        if !s.acked.is_empty() {
            frame::put_acked(&mut marks, &s.acked);
        }
        if !s.unsent.is_empty() {
            frame::put_unsent(&mut marks, &s.unsent);
        }
        if let Some(below) = s.sending {
            frame::put_sending(&mut marks, below);
        }
        // A log that cannot take its marks (it broke) keeps them; nothing more is synced.
        let marked = marks.is_empty() || self.write(s, &marks, false).is_ok();
        if marked {
            s.unsent.clear();
        }
        let sending = s.sending.take_if(|_| marked);
        let files = s
            .segments
            .iter()
            .filter(|g| g.synced_len < g.len)
            .filter_map(|g| Some((g.first_seq, g.len, g.file.clone()?)))
            .collect();
        Job {
            files,
            dir: std::mem::take(&mut s.dir_dirty),
            below: s.next_seq,
            acked: if marked {
                std::mem::take(&mut s.acked)
            } else {
                Vec::new()
            },
            sending,
            closing: s.closed,
        }
    }

    /// Syncs what `job` covers, then books it and wakes whoever waits.
    fn run(&self, job: Job) -> io::Result<()> {
        for (_, _, file) in &job.files {
            file.sync_data()?;
        }
        if job.dir {
            sync_dir(&self.dir)?;
        }
        if !job.files.is_empty() || job.dir {
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
        let (gone, woken) = {
            let mut s = self.state.lock();
            for (first_seq, len, _) in &job.files {
                if let Some(g) = s.segments.iter_mut().find(|g| g.first_seq == *first_seq) {
                    g.synced_len = g.synced_len.max(*len);
                }
            }
            let last = s.segments.len() - 1;
            for g in s.segments.iter_mut().take(last) {
                if g.synced_len == g.len {
                    g.file = None;
                }
            }
            for seq in &job.acked {
                count_ack(&mut s.segments, *seq);
            }
            // Waiters register in sequence order, under this lock.
            let covered = s.sync_waiters.partition_point(|(seq, _)| *seq < job.below);
            let woken: Vec<_> = s.sync_waiters.drain(..covered).collect();
            (settled_prefix(&mut s), woken)
        };
        self.synced
            .send_if_modified(|b| replace_if_higher(b, job.below));
        for (_, tx) in woken {
            let _ = tx.send(true);
        }
        if let Some(m) = job.sending {
            self.sending_synced
                .send_if_modified(|b| replace_if_higher(b, m));
        }
        if !gone.is_empty() {
            self.delete(&gone)?;
            self.room.notify_waiters();
        }
        Ok(())
    }

    /// Whether the next segment should be allocated ahead: there is none, and the spool
    /// has room for it.
    fn wants_spare(&self, s: &State) -> bool {
        matches!(s.spare, Spare::Wanted)
            && !s.closed
            && s.allocated + self.segment_bytes <= self.max_bytes
    }

    /// Allocates the next segment's file ahead, so that a roll only renames it.
    fn allocate_spare(&self) -> io::Result<()> {
        if !self.wants_spare(&self.state.lock()) {
            return Ok(());
        }
        let path = self.dir.join(SPARE);
        let spare = match allocate(&path, self.segment_bytes) {
            Ok(file) => Spare::Ready(file),
            // A full disk refuses the roll when it comes; nothing to do now.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) => {
                let _ = fs::remove_file(&path);
                Spare::Failed
            }
            Err(e) => return Err(e),
        };
        self.state.lock().spare = spare;
        Ok(())
    }

    /// Deletes settled segments' files, then makes that durable.
    fn delete(&self, gone: &[(u64, u64)]) -> io::Result<()> {
        for (first_seq, size) in gone {
            fs::remove_file(self.segment_path(*first_seq))?;
            self.state.lock().allocated -= size;
        }
        sync_dir(&self.dir)
    }
}

/// What one sync covers.
struct Job {
    /// Segments with written bytes not yet synced: first sequence number, the length the
    /// sync covers, the file.
    files: Vec<(u64, u64, Arc<File>)>,
    /// Whether the directory needs a sync (a segment was created).
    dir: bool,
    /// Every record below it is in `files` or already synced.
    below: u64,
    /// Settled records whose acked frame this sync covers.
    acked: Vec<u64>,
    /// The sending mark this sync covers.
    sending: Option<u64>,
    closing: bool,
}

fn replace_if_higher(current: &mut u64, new: u64) -> bool {
    let higher = new > *current;
    if higher {
        *current = new;
    }
    higher
}

fn has_unsynced(s: &State) -> bool {
    !s.acked.is_empty()
        || !s.unsent.is_empty()
        || s.dir_dirty
        || s.segments.iter().any(|g| g.synced_len < g.len)
}

/// Counts the settlement of `seq` in its segment.
fn count_ack(segments: &mut VecDeque<Segment>, seq: u64) {
    let i = segments.partition_point(|g| g.first_seq <= seq);
    if let Some(g) = i.checked_sub(1).and_then(|i| segments.get_mut(i)) {
        g.acked += 1;
    }
}

/// Takes the sealed segments at the front whose records are all settled; returns
/// their first sequence numbers and sizes.
fn settled_prefix(s: &mut State) -> Vec<(u64, u64)> {
    let mut gone = Vec::new();
    while s.segments.len() > 1 && s.segments[0].acked >= s.segments[0].records {
        let g = s.segments.pop_front().expect("checked");
        gone.push((g.first_seq, g.size));
    }
    gone
}

/// Segment files are sized in steps of this, a multiple of every page and block size
/// Linux uses.
const GRANULE: u64 = 64 << 10;

fn round_up(n: u64) -> u64 {
    n.div_ceil(GRANULE) * GRANULE
}

/// A segment's size: an eighth of `max_bytes`, between 128 KiB and 64 MiB, so that
/// deleting settled segments frees room in steps.
fn segment_bytes(max_bytes: u64) -> u64 {
    round_up((max_bytes / 8).clamp(128 << 10, 64 << 20))
}

pub fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.log"))
}

/// A new file at `path`, `size` bytes allocated on disk.
fn allocate(path: &Path, size: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, size)?;
    Ok(file)
}

/// Creates segment `first_seq` of `size` bytes, from `spare` (allocated ahead, renamed)
/// when there is one, and its file, shared by the segment's bookkeeping and the appends.
/// The directory is synced later, by the syncer.
fn create_segment(
    dir: &Path,
    first_seq: u64,
    size: u64,
    spare: Option<File>,
) -> io::Result<(Arc<File>, Segment)> {
    let path = segment_path(dir, first_seq);
    let file = Arc::new(match spare {
        Some(file) => {
            fs::rename(dir.join(SPARE), &path)?;
            file
        }
        None => allocate(&path, size)?,
    });
    let segment = Segment {
        first_seq,
        len: 0,
        synced_len: 0,
        size,
        records: 0,
        acked: 0,
        first_received_ms: None,
        file: Some(file.clone()),
    };
    Ok((file, segment))
}

/// Makes the directory's entries (created, renamed or deleted files) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BufferMode;
    use crate::record::{Headers, Record};

    fn frame(payload: &[u8]) -> Vec<u8> {
        let record = Record {
            topic: "t",
            key: None,
            payload: Some(payload),
            partition: None,
            timestamp: 1,
            received_ms: 1,
            headers: Headers::new(),
            dead_letter: false,
        };
        let mut out = Vec::new();
        frame::put_record(&mut out, 0, &record);
        out
    }

    fn append(log: &Log, frame: &[u8]) -> Result<u64, Refused> {
        log.append(frame, 1, false, &mut Some(|seq| seq))
            .map(|a| a.made)
    }

    /// Waits until record `seq` is synced, asking the syncer for it.
    async fn synced(log: &Log, seq: u64) -> bool {
        let wait = log.wait_for_sync(&mut log.state.lock(), seq);
        wait.await.unwrap_or(false)
    }

    /// A log over `dir` with its syncer running.
    fn open(
        dir: &Path,
        max_bytes: u64,
        flush_interval: Duration,
    ) -> (Arc<Log>, std::thread::JoinHandle<io::Result<()>>) {
        let config = BufferConfig {
            mode: BufferMode::Disk,
            dir: dir.to_owned(),
            max_bytes,
            flush_interval,
        };
        let r = super::super::recover::recover(dir).unwrap();
        let log = Log::open(dir.to_owned(), &config, r.segments, r.next_seq).unwrap();
        let log = Arc::new(log);
        let syncer = std::thread::spawn({
            let log = log.clone();
            move || log.sync_loop()
        });
        (log, syncer)
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
        let (log, syncer) = open(dir.path(), 4 << 20, Duration::from_millis(2));
        let f = frame(&[7u8; 1024]);
        let seqs: Vec<u64> = (0..2000).map(|_| append(&log, &f).unwrap()).collect();
        assert_eq!(seqs, (0..2000).collect::<Vec<_>>());
        assert!(synced(&log, 1999).await);
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
        syncer.join().unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_full_log_refuses_until_settlements_free_room() {
        let dir = tempfile::tempdir().unwrap();
        let (log, syncer) = open(dir.path(), 1 << 20, Duration::from_millis(2));
        let f = frame(&[1u8; 4096]);
        let mut seqs = Vec::new();
        while let Ok(seq) = append(&log, &f) {
            seqs.push(seq);
        }
        assert!(
            (200..256).contains(&seqs.len()),
            "{} records fit",
            seqs.len()
        );
        let no_hook = &mut Some(|seq| seq);
        let late = log.append_within(&f, 1, Duration::from_millis(50), false, no_hook);
        let late = late.await.map(|a| a.made);
        assert_eq!(late, Err(Refused::Full));
        assert!(synced(&log, *seqs.last().unwrap()).await);
        for s in &seqs[..100] {
            log.settled(*s);
        }
        let waited = log
            .append_within(&f, 1, Duration::from_secs(10), false, &mut Some(|seq| seq))
            .await;
        assert!(waited.is_ok(), "room once settled segments went");
        log.close();
        syncer.join().unwrap().unwrap();
        assert_eq!(append(&log, &f), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn written_records_are_synced_within_the_flush_interval_without_a_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let (log, syncer) = open(dir.path(), 4 << 20, Duration::from_millis(50));
        let f = frame(&[3u8; 300]);
        for _ in 0..10_000 {
            append(&log, &f).unwrap();
        }
        let synced = log.synced.subscribe();
        let start = Instant::now();
        let mut rx = synced.clone();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|b| *b >= 10_000))
            .await
            .expect("synced on the syncer's own")
            .unwrap();
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(
            log.syncs() <= 10,
            "{} syncs for 10,000 records",
            log.syncs()
        );
        log.close();
        syncer.join().unwrap().unwrap();
    }

    #[test]
    fn a_record_larger_than_a_segment_gets_a_segment_of_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let (log, syncer) = open(dir.path(), 1 << 20, Duration::ZERO);
        let big = frame(&vec![9u8; 300 << 10]);
        assert_eq!(append(&log, &frame(b"small")), Ok(0));
        assert_eq!(append(&log, &big), Ok(1));
        assert_eq!(append(&log, &frame(b"after")), Ok(2));
        let size = fs::metadata(log.segment_path(1)).unwrap().len();
        assert!(size >= big.len() as u64 && size > 128 << 10, "{size}");
        log.close();
        syncer.join().unwrap().unwrap();
        let r = super::super::recover::recover(dir.path()).unwrap();
        assert_eq!(r.replayed, 3, "all three come back");
    }
}
