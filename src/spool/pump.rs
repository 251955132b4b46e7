//! The pump of a spool: one task that reads durable records in order and hands each to
//! its entry's ledger, as the bridge's in-flight bound allows. One reader in sequence
//! order keeps every key's order, across outages and restarts.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::frame::{self, Frame, Read, HEADER};
use super::log::Log;
use super::Spool;
use crate::kafka::{Ledger, Producers};
use crate::pipeline::Handover;

/// Where an entry's spooled records go: its ledger and producers in the running
/// pipeline.
pub struct Target {
    pub ledger: Arc<Ledger>,
    pub producers: Arc<Producers>,
    /// Set while the entry waits for replaced producers to drain (a reload).
    pub handover: Option<Arc<Handover>>,
}

/// The pump's task and what steers it.
pub struct Pump {
    targets: Mutex<Arc<[Target]>>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Default for Pump {
    fn default() -> Self {
        Pump {
            targets: Mutex::new(Arc::new([])),
            stop: watch::Sender::new(false),
            task: Mutex::new(None),
        }
    }
}

/// Records between two sending marks: a crash replays at most this many records as
/// possible duplicates beyond those in flight.
const SENDING_STEP: u64 = 8192;
/// Bytes read from a segment at a time.
const CHUNK: usize = 1 << 20;

impl Pump {
    pub fn aim(&self, spool: &Arc<Spool>, targets: Vec<Target>) {
        *self.targets.lock() = targets.into();
        let mut task = self.task.lock();
        if task.is_none() && !*self.stop.borrow() {
            *task = Some(tokio::spawn(run(spool.clone(), self.stop.subscribe())));
        }
    }

    pub fn forget_targets(&self) {
        *self.targets.lock() = Arc::new([]);
    }

    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    fn targets(&self) -> Arc<[Target]> {
        self.targets.lock().clone()
    }
}

/// Reads and dispatches until stopped.
async fn run(spool: Arc<Spool>, mut stop: watch::Receiver<bool>) {
    let mut reader = Reader::new(spool.log.first_segment());
    let mut durable = spool.log.watch_durable();
    let mut marks = Marks::default();
    loop {
        durable.borrow_and_update();
        let (back, filled) = fill(reader, spool.log.clone()).await;
        reader = back;
        match filled {
            Ok(true) => {}
            Ok(false) => {
                tokio::select! {
                    _ = durable.changed() => continue,
                    _ = stop.changed() => return,
                }
            }
            Err(e) => {
                ::log::error!("{}: cannot read the spool ({e}); retrying", spool.label);
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        }
        let targets = spool.pump.targets();
        while let Some((at, len)) = reader.next_frame() {
            let Read::Frame(f, _) = frame::read(&reader.buf[at..at + len]) else {
                ::log::error!("{}: a damaged frame in the spool was skipped", spool.label);
                continue;
            };
            let Frame::Record(r) = f else { continue };
            let seq = reader.seq;
            reader.seq += 1;
            tokio::select! {
                sent = dispatch(&spool, &targets, &mut marks, seq, &r) => if !sent { return },
                _ = stop.changed() => return,
            }
        }
    }
}

/// The sending marks: before a record goes to Kafka, a durable mark must say that it
/// may have; marks are requested ahead so that the pump rarely waits for one.
#[derive(Default)]
struct Marks {
    requested: u64,
    durable: u64,
}

/// Hands record `seq` to its entry; `false` if the spool can take no more marks.
async fn dispatch(
    spool: &Spool,
    targets: &[Target],
    marks: &mut Marks,
    seq: u64,
    r: &frame::StoredRecord<'_>,
) -> bool {
    if seq + SENDING_STEP / 2 >= marks.requested {
        marks.requested = seq + SENDING_STEP;
        spool.log.request_sending(marks.requested);
    }
    if seq >= marks.durable {
        match spool.log.sending_durable(seq + 1).await {
            Some(m) => marks.durable = m,
            None => return false,
        }
    }
    // A record of an entry that no longer exists (the configuration changed across a
    // restart) still goes, through the first entry.
    let Some(t) = targets.get(usize::from(r.entry)).or(targets.first()) else {
        spool.settle_unsent(seq, Err("the bridge has no entries".into()));
        return true;
    };
    if let Some(h) = &t.handover {
        h.wait().await;
    }
    t.ledger.dispatch(&t.producers, spool, seq, r).await;
    true
}

/// Runs a blocking read off the async workers, handing the reader back.
async fn fill(mut reader: Reader, log: Arc<Log>) -> (Reader, io::Result<bool>) {
    let task = tokio::task::spawn_blocking(move || {
        let r = reader.fill(&log);
        (reader, r)
    });
    task.await.expect("reading the spool does not panic")
}

/// A position in the log and the bytes read from it but not yet dispatched.
struct Reader {
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
    fn new(segment: u64) -> Reader {
        Reader {
            segment,
            offset: 0,
            seq: segment,
            file: None,
            buf: Vec::with_capacity(CHUNK),
            at: 0,
        }
    }

    /// Reads newly durable bytes, moving on to the next segment when this one is read
    /// through and sealed; `false` if there are none yet.
    fn fill(&mut self, log: &Log) -> io::Result<bool> {
        loop {
            let (len, next) = log.extent(self.segment);
            if let Some(len) = len.filter(|&l| l > self.offset) {
                self.read(log, len)?;
                return Ok(true);
            }
            let Some(next) = next else { return Ok(false) };
            *self = Reader {
                buf: std::mem::take(&mut self.buf),
                ..Reader::new(next)
            };
            self.buf.clear();
        }
    }

    /// Appends up to a chunk (or the whole pending frame) of the segment's bytes below
    /// `len` to the unread ones.
    fn read(&mut self, log: &Log, len: u64) -> io::Result<()> {
        self.buf.drain(..self.at);
        self.at = 0;
        let pending_frame = frame_len(&self.buf).unwrap_or(0);
        let want = CHUNK.max(pending_frame.saturating_sub(self.buf.len()));
        let n = want.min((len - self.offset) as usize);
        if self.file.is_none() {
            self.file = Some(File::open(log.segment_path(self.segment))?);
        }
        let file = self.file.as_ref().expect("opened above");
        let start = self.buf.len();
        self.buf.resize(start + n, 0);
        file.read_exact_at(&mut self.buf[start..], self.offset)?;
        self.offset += n as u64;
        Ok(())
    }

    /// The next whole frame in `buf`, as its start and length.
    fn next_frame(&mut self) -> Option<(usize, usize)> {
        let len = frame_len(&self.buf[self.at..])?;
        if self.buf.len() - self.at < len {
            return None;
        }
        let at = self.at;
        self.at += len;
        Some((at, len))
    }
}

/// The length of the frame at the start of `bytes`, from its header.
fn frame_len(bytes: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    Some(HEADER + len as usize)
}
