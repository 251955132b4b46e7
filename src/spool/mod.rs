//! A bridge's disk spool (`buffer.mode = "disk"`): every record is appended to a
//! segment log before it goes to Kafka, and stays there until Kafka settled it. A QoS 1/2
//! publish is acknowledged once its records are durable; a pump sends them, in order,
//! as the in-flight bound allows, so that Kafka being slow or down fills the disk up to
//! `buffer.max_bytes` instead of memory. What a stop, crash or `kill -9` leaves behind
//! is replayed at the next start.

mod frame;
mod log;
mod pump;
mod recover;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};
use slab::Slab;
use tokio::sync::oneshot;

pub use self::log::Refused;
pub use frame::StoredRecord;
pub use pump::Target;

use self::log::Log;
use crate::config::BufferConfig;
use crate::kafka::Outgoing;

type Completion = oneshot::Sender<Result<(), String>>;
pub type AckReceiver = oneshot::Receiver<Result<(), String>>;

/// The spool of one bridge.
pub struct Spool {
    label: String,
    dir: PathBuf,
    config: BufferConfig,
    log: Arc<Log>,
    /// Records handed to Kafka, by the slot in their ledger tag: sequence numbers.
    slots: Mutex<Slab<u64>>,
    /// Ack-mode publishes waiting for their records, by sequence number.
    acks: Mutex<HashMap<u64, Completion>>,
    /// Lets settlements skip the `acks` lock while no ack-mode record waits.
    ack_count: AtomicUsize,
    pump: pump::Pump,
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
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
    /// Records left in the spool at a stop or on an unanswered send, for the next start.
    pub kept: AtomicU64,
}

/// What becomes of a spooled record once librdkafka reported on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Delivered, dead-lettered or failed for good: removed from the spool.
    Settled,
    /// Purged before it was sent (a stop): sent at the next start, not a duplicate.
    KeptUnsent,
    /// Sent, but Kafka's answer never came: sent again at the next start, possibly a
    /// duplicate.
    KeptMaybeSent,
}

/// A spool that could not open, with the field it is about.
pub struct OpenError {
    pub field: &'static str,
    pub problem: String,
}

impl Spool {
    /// Opens the spool of bridge `name` under `config.dir`: locks the directory,
    /// recovers what a previous run left, and starts the committer. The pump starts
    /// once the pipeline gives it targets.
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
        let log = Arc::new(Log::new(
            dir.clone(),
            config,
            recovered.segments,
            recovered.next_seq,
        ));
        let committer = start_committer(&label, log.clone(), recovered.active);
        Ok(Arc::new(Spool {
            label,
            dir,
            config: config.clone(),
            log,
            slots: Mutex::new(Slab::new()),
            acks: Mutex::new(HashMap::new()),
            ack_count: AtomicUsize::new(0),
            pump: pump::Pump::default(),
            committer: Mutex::new(Some(committer)),
            lock: Mutex::new(Some(lock)),
            stats,
        }))
    }

    /// The configuration it was opened with; a reload may not change it.
    pub fn config(&self) -> &BufferConfig {
        &self.config
    }

    /// Appends a record, waiting up to `timeout` for room on disk. With `ack`, the
    /// returned receiver completes once Kafka settled the record.
    pub async fn append(
        &self,
        entry: usize,
        record: &Outgoing<'_>,
        timeout: Duration,
        ack: bool,
    ) -> Result<(u64, Option<AckReceiver>), Refused> {
        let entry = u16::try_from(entry).map_err(|_| Refused::Closed)?;
        if !ack {
            let seq = self.log.append_within(entry, record, timeout).await?;
            return Ok((seq, None));
        }
        // Registered under the lock that settlements take, so that no settlement can
        // come between the append and the registration.
        let mut acks = self.acks.lock();
        let seq = self.log.append(entry, record)?;
        let (tx, rx) = oneshot::channel();
        acks.insert(seq, tx);
        self.ack_count.fetch_add(1, Ordering::AcqRel);
        Ok((seq, Some(rx)))
    }

    /// Waits until record `seq` is durable; `false` if it never will be.
    pub async fn durable(&self, seq: u64) -> bool {
        self.log.durable(seq).await
    }

    /// Takes a slot for a record the pump hands to Kafka.
    pub(crate) fn take_slot(&self, seq: u64) -> usize {
        self.slots.lock().insert(seq)
    }

    /// Settles the record in `slot`: removed from the spool, or kept for the next start
    /// (known unsent, or possibly sent), and its ack-mode publish completed with
    /// `result`.
    pub fn settle(&self, slot: usize, fate: Fate, result: Result<(), String>) {
        let Some(seq) = self.slots.lock().try_remove(slot) else {
            return ::log::error!("{}: a delivery report for no spooled record", self.label);
        };
        match fate {
            Fate::Settled => self.log.settled(seq),
            Fate::KeptUnsent => {
                self.stats.kept.fetch_add(1, Ordering::Relaxed);
                self.log.unsent(seq);
            }
            Fate::KeptMaybeSent => {
                self.stats.kept.fetch_add(1, Ordering::Relaxed);
            }
        }
        if self.ack_count.load(Ordering::Acquire) > 0 {
            if let Some(tx) = self.acks.lock().remove(&seq) {
                self.ack_count.fetch_sub(1, Ordering::AcqRel);
                let _ = tx.send(result);
            }
        }
    }

    /// Settles a record the pump read but could not hand to Kafka at all.
    pub(crate) fn settle_unsent(&self, seq: u64, result: Result<(), String>) {
        let slot = self.take_slot(seq);
        self.settle(slot, Fate::Settled, result);
    }

    /// Points the pump at the pipeline's entries (at start and after a reload), and
    /// starts it the first time.
    pub fn aim(self: &Arc<Spool>, targets: Vec<Target>) {
        self.pump.aim(self, targets);
    }

    /// Stops the pump; records it has not handed to Kafka stay spooled.
    pub async fn stop_pump(&self) {
        self.pump.stop().await;
    }

    /// Commits what is pending, stops the committer and unlocks the directory. Run it
    /// after the producers drained, so that their settlements are committed.
    pub fn close(&self) {
        self.pump.forget_targets();
        for (_, tx) in self.acks.lock().drain() {
            let _ = tx.send(Err("the bridge stopped".into()));
        }
        self.ack_count.store(0, Ordering::Release);
        self.log.close();
        if let Some(committer) = self.committer.lock().take() {
            let _ = committer.join();
        }
        let (bytes, records, _) = self.log.usage();
        if records > 0 {
            ::log::info!(
                "{}: {records} records ({bytes} bytes) stay in spool {} for the next start",
                self.label,
                self.dir.display()
            );
        }
        self.lock.lock().take();
    }

    pub fn stats(&self) -> &SpoolStats {
        &self.stats
    }

    /// Bytes on disk, records not yet settled, and the age of the oldest.
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
            "records": records,
            "oldest_record_age_seconds": age.map(|a| a.as_secs_f64()),
            "replayed": s.replayed.load(Ordering::Relaxed),
            "redelivered": s.redelivered.load(Ordering::Relaxed),
            "torn_bytes": s.torn_bytes.load(Ordering::Relaxed),
            "corrupt_segments": s.corrupt_segments.load(Ordering::Relaxed),
            "kept": s.kept.load(Ordering::Relaxed),
        })
    }
}

impl Drop for Spool {
    /// A spool dropped without `close` (a refused reload built it) ends its committer.
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

/// Runs the group commit on its own thread: fsync blocks, so it stays off the async
/// workers.
fn start_committer(label: &str, log: Arc<Log>, active: File) -> std::thread::JoinHandle<()> {
    let label = label.to_owned();
    std::thread::Builder::new()
        .name("kafka-spool".into())
        .spawn(move || {
            if let Err(e) = log.commit_loop(active) {
                ::log::error!("{label}: the spool cannot write any more ({e}); new records are refused, what is on disk stays for the next start");
                log.break_down();
            }
        })
        .expect("a thread can be spawned")
}
