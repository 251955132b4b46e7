//! A bridge's disk spool (`buffer.mode = "disk"`): storage only. Every record is written
//! to a segment log before it goes to Kafka, and stays there until Kafka settled it; a
//! reader hands the records back in order, for the pump that sends them
//! (`delivery/pump.rs`), so that Kafka being slow or down fills the disk up to
//! `buffer.max_bytes` instead of memory. What a stop, crash or `kill -9` leaves behind
//! is replayed at the next start.

mod active;
mod frame;
mod log;
mod reader;
mod recover;

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};

pub use self::log::{Appended, Refused, SyncWait};
pub use frame::Stored;
pub use reader::Reader;

use self::log::Log;
use crate::config::BufferConfig;
use crate::record::Record;

/// The spool of one bridge.
pub struct Spool {
    label: Arc<str>,
    dir: PathBuf,
    config: BufferConfig,
    log: Arc<Log>,
    syncer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Held while the spool is open, so that no other process uses the directory.
    lock: Mutex<Option<File>>,
    stats: SpoolStats,
}

/// What the spool counts beside the segments' own bookkeeping.
#[derive(Default)]
pub struct SpoolStats {
    /// Records the previous run left unsettled, queued again at start.
    pub replayed: AtomicU64,
    /// Of those, the ones that may already be in Kafka.
    pub redelivered: AtomicU64,
    /// Bytes of a torn tail cut off at start.
    pub torn_bytes: AtomicU64,
    /// Segments moved aside as corrupt at start.
    pub corrupt_segments: AtomicU64,
    /// Records left in the spool at a stop (purged unsent, or sent and unanswered), for
    /// the next start.
    pub kept: AtomicU64,
    /// Records a reload purged from the producers it replaced, sent again in this run.
    pub requeued: AtomicU64,
}

/// A spool that could not open, with the field it is about.
pub struct OpenError {
    pub field: &'static str,
    pub problem: String,
}

thread_local! {
    /// Where a record's frame is encoded before it is copied into the spool.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Spool {
    /// Opens the spool of bridge `name` under `config.dir`: locks the directory,
    /// recovers what a previous run left, and starts the syncer. Its pump starts once
    /// the pipeline gives it targets.
    pub fn open(name: &str, label: String, config: &BufferConfig) -> Result<Arc<Spool>, OpenError> {
        let dir = config.dir.join(name);
        let at = |e: io::Error| OpenError {
            field: "buffer.dir",
            problem: format!("{}: {e}", dir.display()),
        };
        std::fs::create_dir_all(&dir).map_err(at)?;
        let lock = lock_dir(&dir)?;
        let recovered = recover::recover(&dir).map_err(at)?;
        let stats = SpoolStats::default();
        stats.replayed.store(recovered.replayed, Ordering::Relaxed);
        stats
            .redelivered
            .store(recovered.redelivered, Ordering::Relaxed);
        stats
            .torn_bytes
            .store(recovered.torn_bytes, Ordering::Relaxed);
        let corrupt = recovered.corrupt.len() as u64;
        stats.corrupt_segments.store(corrupt, Ordering::Relaxed);
        if recovered.replayed > 0 {
            ::log::info!(
                "{label}: spool {} holds {} records from the previous run ({} may already be in Kafka); they go first",
                dir.display(),
                recovered.replayed,
                recovered.redelivered
            );
        }
        let log =
            Log::open(dir.clone(), config, recovered.segments, recovered.next_seq).map_err(at)?;
        let log = Arc::new(log);
        let syncer = start_syncer(&label, log.clone());
        Ok(Arc::new(Spool {
            label: label.into(),
            dir,
            config: config.clone(),
            log,
            syncer: Mutex::new(Some(syncer)),
            lock: Mutex::new(Some(lock)),
            stats,
        }))
    }

    /// The configuration it was opened with; a reload may not change it.
    pub fn config(&self) -> &BufferConfig {
        &self.config
    }

    /// Writes a record of entry `entry`, waiting up to `timeout` for room. Returns its
    /// sequence number, and what `on_seq` made of it: `on_seq` runs before any reader
    /// can see the record, so that whatever waits for the record is registered before
    /// its delivery report can come. When this returns, the record survives the process
    /// dying; with `sync`, a sync is asked for at once, and the wait for it (the record
    /// surviving a power loss) is returned.
    pub async fn append<R>(
        &self,
        entry: usize,
        record: &Record<'_>,
        timeout: Duration,
        sync: bool,
        on_seq: impl FnOnce(u64) -> R,
    ) -> Result<Appended<R>, Refused> {
        let entry = u16::try_from(entry).map_err(|_| Refused::Closed)?;
        let mut on_seq = Some(on_seq);
        let first = SCRATCH.with_borrow_mut(|buf| {
            buf.clear();
            frame::put_record(buf, entry, record);
            let appended = self.log.append(buf, record.received_ms, sync, &mut on_seq);
            if buf.capacity() > 1 << 20 {
                *buf = Vec::new();
            }
            appended
        });
        match first {
            Err(Refused::Full) if !timeout.is_zero() => {
                let mut buf = Vec::new();
                frame::put_record(&mut buf, entry, record);
                let received_ms = record.received_ms;
                self.log
                    .append_within(&buf, received_ms, timeout, sync, &mut on_seq)
                    .await
            }
            appended => appended,
        }
    }

    /// Removes a settled record (delivered, dead-lettered or failed for good).
    pub fn settled(&self, seq: u64) {
        self.log.settled(seq);
    }

    /// Leaves a record for the next start: it was purged at a stop, before it was sent
    /// (`unsent`) or while Kafka's answer was due (a possible duplicate then).
    pub fn keep(&self, seq: u64, unsent: bool) {
        self.stats.kept.fetch_add(1, Ordering::Relaxed);
        if unsent {
            self.log.unsent([seq]);
        }
    }

    /// Records that the records from `from` up to (not including) `below` were never
    /// handed to Kafka: what the pump had not reached when it stopped.
    pub fn never_sent(&self, from: u64, below: u64) {
        self.log.unsent(from..below);
    }

    /// A reader from the first record on disk.
    pub fn reader(&self) -> Reader {
        self.reader_from(0)
    }

    /// A reader from the start of the segment that holds record `seq`.
    pub fn reader_from(&self, seq: u64) -> Reader {
        let segment = self.log.segment_of(seq);
        Reader::new(self.log.clone(), self.label.clone(), segment)
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.log.next_seq()
    }

    /// Asks for a synced mark saying that records below `below` may be sent.
    pub fn request_sending(&self, below: u64) {
        self.log.request_sending(below);
    }

    /// Waits for a synced sending mark that covers records below `below`.
    pub async fn sending_synced(&self, below: u64) -> Option<u64> {
        self.log.sending_synced(below).await
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Syncs what is written, stops the syncer and unlocks the directory. Run it after
    /// the pump stopped and the producers drained, so that their settlements are synced.
    pub fn close(&self) {
        self.log.close();
        if let Some(syncer) = self.syncer.lock().take() {
            let _ = syncer.join();
        }
        let (_, records, _) = self.log.usage();
        if records > 0 {
            ::log::info!(
                "{}: {records} records stay in spool {} for the next start",
                self.label,
                self.dir.display()
            );
        }
        self.lock.lock().take();
    }

    pub fn stats(&self) -> &SpoolStats {
        &self.stats
    }

    /// `fdatasync` calls made so far.
    pub fn syncs(&self) -> u64 {
        self.log.syncs()
    }

    /// Bytes of its segment files, records not yet settled, and the age of the oldest.
    pub fn usage(&self) -> (u64, u64, Option<Duration>) {
        let (bytes, records, oldest_ms) = self.log.usage();
        let now = rmqtt::utils::timestamp_millis();
        let age = oldest_ms.map(|ms| Duration::from_millis(now.saturating_sub(ms).max(0) as u64));
        (bytes, records, age)
    }

    pub fn to_json(&self) -> Value {
        let (bytes, records, age) = self.usage();
        let s = &self.stats;
        json!({
            "dir": self.dir.display().to_string(),
            "bytes": bytes,
            "max_bytes": self.config.max_bytes,
            "flush_interval_ms": self.config.flush_interval.as_millis() as u64,
            "records": records,
            "oldest_record_age_seconds": age.map(|a| a.as_secs_f64()),
            "syncs": self.syncs(),
            "replayed": s.replayed.load(Ordering::Relaxed),
            "redelivered": s.redelivered.load(Ordering::Relaxed),
            "torn_bytes": s.torn_bytes.load(Ordering::Relaxed),
            "corrupt_segments": s.corrupt_segments.load(Ordering::Relaxed),
            "kept": s.kept.load(Ordering::Relaxed),
            "requeued": s.requeued.load(Ordering::Relaxed),
        })
    }
}

impl Drop for Spool {
    /// A spool dropped without `close` (a refused reload built it) ends its syncer.
    fn drop(&mut self) {
        self.log.close();
    }
}

/// Locks `dir` for this process; another process (or spool) holding it refuses start.
fn lock_dir(dir: &Path) -> Result<File, OpenError> {
    let path = dir.join("LOCK");
    let file = File::create(&path).map_err(|e| OpenError {
        field: "buffer.dir",
        problem: format!("{} is not writable: {e}", path.display()),
    })?;
    file.try_lock().map_err(|e| OpenError {
        field: "buffer.dir",
        problem: format!(
            "{} is in use by another process or bridge ({e})",
            dir.display()
        ),
    })?;
    Ok(file)
}

/// Runs the syncer on its own thread: `fdatasync` blocks, so it stays off the async
/// workers.
fn start_syncer(label: &str, log: Arc<Log>) -> std::thread::JoinHandle<()> {
    let label = label.to_owned();
    std::thread::Builder::new()
        .name("kafka-spool".into())
        .spawn(move || {
            if let Err(e) = log.sync_loop() {
                ::log::error!("{label}: the spool cannot write any more ({e}); new records are refused, what is on disk stays for the next start");
                log.break_down();
            }
        })
        .expect("a thread can be spawned")
}
