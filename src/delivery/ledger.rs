//! A record's life, owned by one type. An entry's [`Ledger`] is the one door for its
//! records ([`Ledger::submit`]), and memory or disk is decided behind it: in memory mode
//! the record takes room in its bridge's in-flight bound and goes to a producer; in disk
//! mode it is written to the bridge's spool, and the pump hands it over later
//! ([`Ledger::dispatch`]). The ledger registers what the entry's `remote.ack` level
//! waits for, settles each record's delivery report, and counts the record's one
//! outcome: at once when it never reaches librdkafka, otherwise in its report.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, DeliveryResult};
use rdkafka::Message as _;

use super::acks::{AckFailure, AckWait, Acks, Completion, Pending};
use super::handover::Handover;
use super::inflight::Inflight;
use super::pump::{Requeue, Requeued};
use super::tag::{wrapped_ms, Tag};
use crate::config::AckLevel;
use crate::kafka::partitions::TrackedTopic;
use crate::kafka::{Producers, Reports};
use crate::log_limited;
use crate::observe::histogram::ShardedHistogram;
use crate::observe::{EntryStats, LogLimiter, Outcome};
use crate::record::{size_of, Record};
use crate::spool::{Refused, Spool};

/// How an entry's records are acknowledged, and how long they may wait for room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub level: AckLevel,
    pub queue_timeout: Duration,
}

/// Where an entry's records go: the producers it sends through.
#[derive(Clone)]
pub struct Outlet {
    pub producers: Arc<Producers>,
    /// The entry's constant topic, tracked by its producers (with more than one).
    pub topic: Option<TrackedTopic>,
    /// Set when a reload gave the entry new producers: its records wait for the old ones
    /// to drain.
    pub handover: Option<Arc<Handover>>,
}

/// A bridge in disk mode: its spool, and the pump's queue of records to send again.
#[derive(Clone)]
pub struct Disk {
    pub spool: Arc<Spool>,
    pub requeue: Arc<Requeue>,
}

/// The accounting of one entry's records.
pub struct Ledger {
    /// `bridge "x" entry N`, for log lines.
    label: String,
    /// Its position among the ledgers its producers report to: 0 for an entry's own
    /// producers, the entry's index for a bridge's shared ones.
    position: usize,
    /// The entry's counters; shared with the ledger that succeeds this one when a
    /// reload gives the entry new producers, so its counts carry on.
    stats: Arc<EntryStats>,
    /// The bound of the entry's bridge, shared by its entries.
    inflight: Arc<Inflight>,
    /// The bridge's pending acknowledgements.
    acks: Arc<Acks>,
    /// The bridge's spool, in disk mode.
    disk: Option<Disk>,
    loss_log: LogLimiter,
    /// Receive-to-ack time of delivered records.
    latency: ShardedHistogram,
}

/// What the parts of a bridge give each of its ledgers.
#[derive(Clone)]
pub struct Bridge {
    pub inflight: Arc<Inflight>,
    pub acks: Arc<Acks>,
    pub disk: Option<Disk>,
}

impl Ledger {
    pub fn new(
        label: String,
        position: usize,
        stats: Arc<EntryStats>,
        bridge: &Bridge,
        latency: ShardedHistogram,
    ) -> Ledger {
        Ledger {
            label,
            position,
            stats,
            inflight: bridge.inflight.clone(),
            acks: bridge.acks.clone(),
            disk: bridge.disk.clone(),
            loss_log: LogLimiter::default(),
            latency,
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn stats(&self) -> &Arc<EntryStats> {
        &self.stats
    }

    /// Counts a message that ends without a record (`filtered`, `transform_error`).
    pub fn count(&self, outcome: Outcome) {
        self.stats.outcome(outcome);
    }

    /// Counts a record that will never reach Kafka, logs why (rate-limited), and fails
    /// its publish if the publish waits for it.
    pub fn lose(&self, outcome: Outcome, ack: Option<&mut AckWait>, why: fmt::Arguments<'_>) {
        self.stats.outcome(outcome);
        if let Some(wait) = ack {
            wait.fail(match outcome {
                Outcome::DroppedBufferFull => AckFailure::BufferFull,
                _ => AckFailure::Delivery(why.to_string()),
            });
        }
        log_limited!(self.loss_log, log::Level::Warn, "{}: {why}", self.label);
    }

    /// Takes one record of entry `entry`: the door. `wait` is set for a QoS 1/2 publish
    /// whose level holds its acknowledgement (above `"received"`); what the level waits
    /// for is registered there.
    pub async fn submit(
        &self,
        outlet: &Outlet,
        entry: usize,
        record: &Record<'_>,
        policy: Policy,
        wait: Option<&mut AckWait>,
    ) {
        match &self.disk {
            None => self.send(outlet, record, policy, wait).await,
            Some(disk) => self.write(disk, entry, record, policy, wait).await,
        }
    }

    /// Memory mode: takes room (waiting up to `queue_timeout`, except at `"delivered"`,
    /// which refuses the publish at once rather than holding the client), registers the
    /// waiting publish, and hands the record to a producer.
    async fn send(
        &self,
        outlet: &Outlet,
        record: &Record<'_>,
        policy: Policy,
        wait: Option<&mut AckWait>,
    ) {
        if let Some(handover) = &outlet.handover {
            handover.wait().await;
        }
        let size = record.size();
        let timeout = wait
            .as_ref()
            .map_or(policy.queue_timeout, |_| Duration::ZERO);
        let has_room =
            self.inflight.try_acquire(size) || self.inflight.acquire_within(size, timeout).await;
        if !has_room {
            return self.lose_for_room(record, wait);
        }
        let slot = wait.map(|w| {
            let (done, rx) = Acks::completion();
            w.track(rx);
            let pending = Pending {
                seq: None,
                done: Some(done),
            };
            self.acks.track(pending)
        });
        self.hand_over(outlet, record, slot, Some(policy.queue_timeout), true)
            .await;
    }

    fn lose_for_room(&self, record: &Record<'_>, wait: Option<&mut AckWait>) {
        let (messages, bytes) = (self.inflight.messages(), self.inflight.bytes());
        self.lose(
            Outcome::DroppedBufferFull,
            wait,
            format_args!(
                "in-flight buffer full ({messages} records, {bytes} bytes), record for {} dropped",
                record.topic
            ),
        );
    }

    /// Disk mode: writes the record to the spool, waiting up to `queue_timeout` for room
    /// (except at `"delivered"`, which refuses at once), and registers what its level
    /// waits for: the sync (`"synced"`), or Kafka (`"delivered"`).
    async fn write(
        &self,
        disk: &Disk,
        entry: usize,
        record: &Record<'_>,
        policy: Policy,
        wait: Option<&mut AckWait>,
    ) {
        let delivered = policy.level == AckLevel::Delivered && wait.is_some();
        let timeout = match delivered {
            true => Duration::ZERO,
            false => policy.queue_timeout,
        };
        let register = |seq| delivered.then(|| self.acks.wait_for_spooled(seq));
        let sync = policy.level == AckLevel::Synced && wait.is_some();
        match disk
            .spool
            .append(entry, record, timeout, sync, register)
            .await
        {
            Ok(appended) => {
                if let Some(w) = wait {
                    appended.made.into_iter().for_each(|rx| w.track(rx));
                    appended.synced.into_iter().for_each(|s| w.synced(s));
                }
            }
            Err(refused) => {
                let (outcome, why) = match refused {
                    Refused::Full => (Outcome::DroppedBufferFull, "spool full (buffer.max_bytes)"),
                    Refused::Closed => (Outcome::DeliveryFailed, "the spool is closed"),
                };
                let why = format_args!("{why}, record for {} dropped", record.topic);
                self.lose(outcome, wait, why);
            }
        }
    }

    /// Takes room for a spooled record (the pump), waiting as long as it takes (the spool
    /// holds what waits); `false` if the record can never fit.
    pub async fn room_for(&self, record: &Record<'_>) -> bool {
        let size = record.size();
        if !self.inflight.fits_at_all(size) {
            return false;
        }
        self.inflight.acquire(size).await;
        true
    }

    /// Gives back room taken for a record that then went elsewhere.
    pub fn give_back_room(&self, record: &Record<'_>) {
        self.inflight.release(record.size());
    }

    /// Settles a spooled record larger than the whole in-flight bound: counted dropped.
    pub fn too_large(&self, seq: u64, record: &Record<'_>, again: Option<Requeued>) {
        let Some(disk) = &self.disk else { return };
        let (size, topic) = (record.size(), record.topic);
        let why = format!("record of {size} bytes for {topic} exceeds max_inflight_bytes");
        self.stats.outcome(Outcome::DroppedBufferFull);
        log_limited!(self.loss_log, log::Level::Warn, "{}: {why}", self.label);
        disk.spool.settled(seq);
        let done = match again {
            Some(r) => r.done,
            None => self.acks.take_spooled(seq),
        };
        if let Some(done) = done {
            let _ = done.send(Err(why));
        }
    }

    /// Hands a spooled record, for which [`Ledger::room_for`] took room, to a producer
    /// (the pump). `again` is set for a record that a reload purged from the producers
    /// it replaced.
    pub async fn dispatch(
        &self,
        outlet: &Outlet,
        seq: u64,
        record: &Record<'_>,
        again: Option<Requeued>,
    ) {
        let (done, counted) = match again {
            Some(r) => (r.done, Arc::ptr_eq(&r.stats, &self.stats)),
            None => (self.acks.take_spooled(seq), false),
        };
        let slot = self.acks.track(Pending {
            seq: Some(seq),
            done,
        });
        self.hand_over(outlet, record, Some(slot), None, !counted)
            .await;
    }

    /// Hands a record that has room to its producer, counting it `produced` (unless it
    /// was already, before a reload purged it); a record librdkafka refuses is settled
    /// at once.
    async fn hand_over(
        &self,
        outlet: &Outlet,
        record: &Record<'_>,
        slot: Option<usize>,
        timeout: Option<Duration>,
        count: bool,
    ) {
        let tag = Tag {
            dead_letter: record.dead_letter,
            ledger: self.position,
            slot,
            received_ms: wrapped_ms(record.received_ms),
        };
        match produce(outlet, record, tag.encode(), timeout).await {
            Ok(()) if count => self.stats.produced(),
            Ok(()) => {}
            Err((outcome, why)) => {
                let pending = slot.and_then(|s| self.acks.settle(s));
                let failed = Some((outcome, format_args!("{why}")));
                self.settle(record.dead_letter, record.size(), pending, failed);
            }
        }
    }

    /// Settles the delivery report of a record that librdkafka took.
    fn report(&self, tag: Tag, message: &BorrowedMessage<'_>, error: Option<&KafkaError>) {
        let size = size_of(message.key(), message.payload());
        let pending = tag.slot.and_then(|s| self.acks.settle(s));
        if let (Some(e), Some(disk), Some(seq)) =
            (error, &self.disk, pending.as_ref().and_then(|p| p.seq))
        {
            if matches!(
                e,
                KafkaError::MessageProduction(
                    RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight
                )
            ) {
                self.inflight.release(size);
                let done = pending.and_then(|p| p.done);
                return self.purged(disk, seq, !possibly_persisted(message), done);
            }
        }
        let failed = match error {
            None => {
                if !tag.dead_letter {
                    let now = wrapped_ms(crate::observe::clock::wall_ms());
                    // Clocks of two threads: a record acked within a millisecond of
                    // being received can read as a millisecond early.
                    let ms = (now.wrapping_sub(tag.received_ms) as i32).max(0);
                    self.latency.observe(f64::from(ms) / 1000.0);
                }
                None
            }
            Some(e) if possibly_persisted(message) => Some((
                Outcome::PossiblyDelivered,
                format!(
                    "no answer from Kafka for a record sent to topic {} ({e}); it may be there",
                    message.topic()
                ),
            )),
            Some(e) => Some((
                Outcome::DeliveryFailed,
                format!("delivery to Kafka topic {} failed: {e}", message.topic()),
            )),
        };
        match &failed {
            Some((outcome, why)) => {
                let failed = Some((*outcome, format_args!("{why}")));
                self.settle(tag.dead_letter, size, pending, failed);
            }
            None => self.settle(tag.dead_letter, size, pending, None),
        }
    }

    /// A spooled record that librdkafka purged from producers being retired: sent again
    /// in this run when the pump still runs (a reload), else left for the next start.
    fn purged(&self, disk: &Disk, seq: u64, unsent: bool, done: Option<Completion>) {
        let again = Requeued {
            seq,
            unsent,
            stats: self.stats.clone(),
            done,
        };
        let Err(kept) = disk.requeue.offer(again) else {
            return;
        };
        disk.spool.keep(seq, unsent);
        if let Some(done) = kept.done {
            let _ = done.send(Err("the bridge stopped".into()));
        }
        if !unsent {
            self.stats.outcome(Outcome::PossiblyDelivered);
            let why = "sent, but the bridge stopped before Kafka answered; it may be there, and is sent again at the next start";
            log_limited!(self.loss_log, log::Level::Warn, "{}: {why}", self.label);
        }
    }

    /// Gives back a record's room, counts its one outcome, and tells what waits for it:
    /// the spool (a record possibly in Kafka stays for the next start, any other leaves)
    /// and the waiting publish.
    fn settle(
        &self,
        dead_letter: bool,
        size: usize,
        pending: Option<Pending>,
        failed: Option<(Outcome, fmt::Arguments<'_>)>,
    ) {
        self.inflight.release(size);
        match failed {
            None => self.stats.outcome(if dead_letter {
                Outcome::DeadLettered
            } else {
                Outcome::Delivered
            }),
            Some((outcome, why)) => {
                self.stats.outcome(outcome);
                log_limited!(self.loss_log, log::Level::Warn, "{}: {why}", self.label);
            }
        }
        let Some(pending) = pending else { return };
        if let (Some(seq), Some(disk)) = (pending.seq, &self.disk) {
            match failed {
                Some((Outcome::PossiblyDelivered, _)) => disk.spool.keep(seq, false),
                _ => disk.spool.settled(seq),
            }
        }
        if let Some(done) = pending.done {
            let _ = done.send(failed.map_or(Ok(()), |(_, why)| Err(why.to_string())));
        }
    }
}

/// The ledgers that a set of producers reports to, by their position in a record's tag.
pub struct Ledgers(pub Vec<Arc<Ledger>>);

impl Reports for Ledgers {
    fn report(&self, opaque: usize, result: &DeliveryResult<'_>) {
        let tag = Tag::decode(opaque);
        // Tags are written by these very ledgers.
        let Some(ledger) = self.0.get(tag.ledger) else {
            return log::error!("a delivery report for no entry (ledger {})", tag.ledger);
        };
        match result {
            Ok(m) => ledger.report(tag, m, None),
            Err((e, m)) => ledger.report(tag, m, Some(e)),
        }
    }
}

/// Whether a failed record had been sent and Kafka's answer never came, so that it may
/// be in Kafka (librdkafka's message status, which rust-rdkafka does not wrap).
#[allow(unsafe_code)]
fn possibly_persisted(message: &BorrowedMessage<'_>) -> bool {
    // SAFETY: the pointer is the report's message, valid while `message` is borrowed;
    // reading its status does not modify it.
    let status = unsafe { rdkafka_sys::rd_kafka_message_status(message.ptr()) };
    status == rdkafka_sys::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED
}

/// Hands a record to its producer. librdkafka's queue is sized above the bridge's bound,
/// so it is full only when `[bridges.properties]` made it smaller; then this retries
/// until `timeout` (for ever without one: a spooled record waits rather than drops).
async fn produce(
    outlet: &Outlet,
    record: &Record<'_>,
    opaque: usize,
    timeout: Option<Duration>,
) -> Result<(), (Outcome, String)> {
    let mut deadline = None;
    loop {
        match outlet.producers.send(record, opaque, outlet.topic.as_ref()) {
            Ok(()) => return Ok(()),
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                let now = tokio::time::Instant::now();
                let deadline = *deadline.get_or_insert(timeout.map(|t| now + t));
                if deadline.is_some_and(|d| now >= d) {
                    let why = format!("librdkafka queue full, record for {} dropped", record.topic);
                    return Err((Outcome::DroppedBufferFull, why));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => {
                let why = format!("cannot produce to {}: {e}", record.topic);
                return Err((Outcome::DeliveryFailed, why));
            }
        }
    }
}
