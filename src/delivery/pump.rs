//! The pump of a bridge's spool: one task that reads the spool's records in order and
//! hands each through its entry's ledger, as the bridge's in-flight bound allows. One
//! reader in sequence order keeps every key's order, across outages and restarts; records
//! that a reload purged from retired producers are sent again, before any newer one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::acks::Completion;
use super::ledger::{Ledger, Outlet};
use crate::log_limited;
use crate::observe::{EntryStats, LogLimiter, Outcome};
use crate::spool::{Reader, Spool, Stored};

/// Where an entry's spooled records go: its ledger and outlet in the running pipeline.
#[derive(Clone)]
pub struct Target {
    pub ledger: Arc<Ledger>,
    pub outlet: Outlet,
}

/// A spooled record that a reload purged from the producers it replaced.
pub struct Requeued {
    pub seq: u64,
    /// Purged before it was sent (else it may be in Kafka already).
    pub unsent: bool,
    /// The counters of the entry that produced it, which counted it `produced`.
    pub stats: Arc<EntryStats>,
    /// The publish waiting for it, at `"delivered"`.
    pub done: Option<Completion>,
}

/// Records to send again, by sequence number; closed once the pump stops, when what is
/// purged stays for the next start.
#[derive(Default)]
pub struct Requeue {
    items: Mutex<Option<BTreeMap<u64, Requeued>>>,
    count: AtomicUsize,
    offered: Notify,
}

impl Requeue {
    fn open() -> Requeue {
        Requeue {
            items: Mutex::new(Some(BTreeMap::new())),
            ..Requeue::default()
        }
    }

    /// Queues a record to be sent again; gives it back if the pump stopped.
    pub fn offer(&self, r: Requeued) -> Result<(), Requeued> {
        let mut items = self.items.lock();
        let Some(items) = items.as_mut() else {
            return Err(r);
        };
        items.insert(r.seq, r);
        self.count.fetch_add(1, Ordering::AcqRel);
        self.offered.notify_one();
        Ok(())
    }

    fn has_items(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    fn first(&self) -> Option<u64> {
        self.items.lock().as_ref()?.keys().next().copied()
    }

    fn take(&self, seq: u64) -> Option<Requeued> {
        let r = self.items.lock().as_mut()?.remove(&seq);
        if r.is_some() {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
        r
    }

    /// Stops taking records, and returns those not sent again yet.
    fn close(&self) -> Vec<Requeued> {
        let items = self.items.lock().take().unwrap_or_default();
        self.count.store(0, Ordering::Release);
        items.into_values().collect()
    }
}

/// Records between two sending marks: a crash replays at most this many records as
/// possible duplicates beyond those in flight.
const SENDING_STEP: u64 = 8192;

/// The pump of one spool and what steers it.
pub struct Pump {
    spool: Arc<Spool>,
    requeue: Arc<Requeue>,
    /// The entries' targets, with a count of the times the pump was aimed.
    targets: Mutex<(u64, Arc<[Target]>)>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
    log: LogLimiter,
}

impl Pump {
    /// A pump for `spool`, not yet running, and the queue its ledgers requeue to.
    pub fn new(spool: Arc<Spool>) -> (Arc<Pump>, Arc<Requeue>) {
        let requeue = Arc::new(Requeue::open());
        let pump = Arc::new(Pump {
            spool,
            requeue: requeue.clone(),
            targets: Mutex::new((0, Arc::new([]))),
            stop: watch::Sender::new(false),
            task: Mutex::new(None),
            log: LogLimiter::default(),
        });
        (pump, requeue)
    }

    /// Points the pump at the pipeline's entries (at start and after a reload), and
    /// starts it the first time.
    pub fn aim(self: &Arc<Pump>, targets: Vec<Target>) {
        {
            let mut t = self.targets.lock();
            *t = (t.0 + 1, targets.into());
        }
        let mut task = self.task.lock();
        if task.is_none() && !*self.stop.borrow() {
            *task = Some(tokio::spawn(run(self.clone(), self.stop.subscribe())));
        }
    }

    /// Stops the pump. What it had not handed over stays spooled, marked as never sent;
    /// records purged from here on stay for the next start.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        for r in self.requeue.close() {
            self.spool.keep(r.seq, r.unsent);
            if let Some(done) = r.done {
                let _ = done.send(Err("the bridge stopped".into()));
            }
        }
        self.targets.lock().1 = Arc::new([]);
    }

    fn targets(&self) -> Arc<[Target]> {
        self.targets.lock().1.clone()
    }

    /// The targets and the count of aims they belong to.
    fn aimed(&self) -> (u64, Arc<[Target]>) {
        self.targets.lock().clone()
    }

    fn aims(&self) -> u64 {
        self.targets.lock().0
    }

    /// The entry a record goes to; a record of an entry that no longer exists (the
    /// configuration changed across a restart) goes through the first.
    fn target<'t>(&self, targets: &'t [Target], stored: &Stored<'_>) -> Option<&'t Target> {
        targets.get(usize::from(stored.entry)).or(targets.first())
    }
}

/// The sending marks: before a record goes to Kafka, a synced mark must say that it may
/// have; marks are requested ahead so that the pump rarely waits for one.
#[derive(Default)]
struct Marks {
    requested: u64,
    synced: u64,
}

/// Reads and dispatches until stopped.
async fn run(pump: Arc<Pump>, mut stop: watch::Receiver<bool>) {
    let mut reader = pump.spool.reader();
    let mut marks = Marks::default();
    let unsent_from = loop {
        let (back, filled) = reader.fill().await;
        reader = back;
        match filled {
            Ok(true) => {}
            Ok(false) => {
                tokio::select! {
                    _ = reader.written() => {}
                    _ = pump.requeue.offered.notified() => {}
                    _ = stop.changed() => break reader.seq(),
                }
                if pump.requeue.has_items() {
                    tokio::select! {
                        _ = redo(&pump) => {}
                        _ = stop.changed() => break reader.seq(),
                    }
                }
                continue;
            }
            Err(e) => {
                ::log::error!(
                    "{}: cannot read the spool ({e}); retrying",
                    pump.spool.label()
                );
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.changed() => break reader.seq(),
                }
            }
        }
        if let Some(at) = dispatch_read(&pump, &mut reader, &mut marks, &mut stop).await {
            break at;
        }
    };
    let below = marks.requested.min(pump.spool.next_seq());
    if unsent_from < below {
        pump.spool.never_sent(unsent_from, below);
    }
}

/// Dispatches the records `reader` read; the sequence number of the first one not
/// handed over if the pump stopped (or the spool broke).
async fn dispatch_read(
    pump: &Pump,
    reader: &mut Reader,
    marks: &mut Marks,
    stop: &mut watch::Receiver<bool>,
) -> Option<u64> {
    while let Some((seq, at)) = reader.next() {
        let Some(stored) = reader.record(at) else {
            ::log::error!(
                "{}: an unreadable record in the spool was skipped",
                pump.spool.label()
            );
            continue;
        };
        tokio::select! {
            sent = dispatch(pump, marks, seq, &stored) => if !sent { return Some(seq) },
            _ = stop.changed() => return Some(seq),
        }
    }
    None
}

/// Hands record `seq` to its entry, after the records a reload requeued; `false` if the
/// spool can take no more marks.
async fn dispatch(pump: &Pump, marks: &mut Marks, seq: u64, stored: &Stored<'_>) -> bool {
    if seq + SENDING_STEP / 2 >= marks.requested {
        marks.requested = seq + SENDING_STEP;
        pump.spool.request_sending(marks.requested);
    }
    if seq >= marks.synced {
        match pump.spool.sending_synced(seq + 1).await {
            Some(m) => marks.synced = m,
            None => return false,
        }
    }
    hand_over(pump, seq, stored, None).await;
    true
}

/// Hands a spooled record to its entry's ledger once its handover is open, the records
/// requeued before it went (unless it is one of them), and it has room. Room can take as
/// long as Kafka does to free some; a reload meanwhile retires the target, so it is then
/// picked again from the new targets.
async fn hand_over(pump: &Pump, seq: u64, stored: &Stored<'_>, again: Option<Requeued>) {
    loop {
        let (aims, targets) = pump.aimed();
        let Some(t) = pump.target(&targets, stored) else {
            log_limited!(
                pump.log,
                log::Level::Warn,
                "{}: the bridge has no entries; spooled records stay for the next start",
                pump.spool.label()
            );
            if let Some(r) = again {
                pump.spool.keep(seq, r.unsent);
            }
            return;
        };
        if let Some(h) = &t.outlet.handover {
            h.wait().await;
        }
        if again.is_none() && pump.requeue.has_items() {
            Box::pin(redo(pump)).await;
            continue;
        }
        if !t.ledger.room_for(&stored.record).await {
            return t.ledger.too_large(seq, &stored.record, again);
        }
        if pump.aims() == aims {
            return t
                .ledger
                .dispatch(&t.outlet, seq, &stored.record, again)
                .await;
        }
        t.ledger.give_back_room(&stored.record);
    }
}

/// Sends the requeued records again, in order, once every replaced producer drained (so
/// that all the records it purged are here).
async fn redo(pump: &Pump) {
    for t in pump.targets().iter() {
        if let Some(h) = &t.outlet.handover {
            h.wait().await;
        }
    }
    while let Some(first) = pump.requeue.first() {
        let mut reader = pump.spool.reader_from(first);
        loop {
            let (back, filled) = reader.fill().await;
            reader = back;
            if !matches!(filled, Ok(true)) {
                break;
            }
            while let Some((seq, at)) = reader.next() {
                let Some(again) = pump.requeue.take(seq) else {
                    continue;
                };
                match reader.record(at) {
                    Some(stored) => {
                        pump.spool.stats().requeued.fetch_add(1, Ordering::Relaxed);
                        hand_over(pump, seq, &stored, Some(again)).await;
                    }
                    None => lost(pump, again),
                }
            }
            if pump.requeue.first().is_none_or(|f| f < reader.seq()) {
                break;
            }
        }
        if pump.requeue.first() == Some(first) {
            if let Some(r) = pump.requeue.take(first) {
                lost(pump, r);
            }
        }
    }
}

/// A requeued record the spool no longer holds whole: counted, never silently gone.
fn lost(pump: &Pump, r: Requeued) {
    r.stats.outcome(Outcome::DeliveryFailed);
    ::log::error!(
        "{}: record {} was purged from retired producers and cannot be read back from the spool",
        pump.spool.label(),
        r.seq
    );
    if let Some(done) = r.done {
        let _ = done.send(Err(
            "the record could not be read back from the spool".into()
        ));
    }
}
