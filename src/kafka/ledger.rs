//! A record's life, owned by one type. The [`Ledger`] of an entry takes room for the
//! record in its bridge's in-flight bound, registers an ack slot when the publish waits
//! for Kafka, hands the record to a producer (retrying while librdkafka's queue is full),
//! and settles its delivery report. Every record ends in exactly one counted outcome:
//! at once when it never reaches librdkafka, otherwise in its report.
//!
//! What settling a record needs travels with it as a [`Tag`] plus its key and payload
//! (whose sizes give back its room), in librdkafka's opaque pointer.
//!
//! In disk mode (`buffer.mode = "disk"`) the record is first appended to the bridge's
//! spool (`spool_record`); the spool's pump later hands it over (`dispatch`), and the
//! tag's slot is the spool's, which its settlement removes from disk or keeps for the
//! next start.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::Message as _;

use super::inflight::Inflight;
use super::partitions::TrackedTopic;
use super::producers::{Producers, Record};
use crate::ack::{AckFailure, AckSlots, AckWait};
use crate::log_limited;
use crate::observe::histogram::ShardedHistogram;
use crate::observe::{EntryStats, LogLimiter, Outcome};
use crate::spool::{Fate, Refused, Spool, StoredRecord};

/// What the delivery report of a record must know, packed into librdkafka's opaque
/// pointer so that a record costs no allocation: bit 0 dead letter, bit 1 has an ack
/// slot, bits 2..12 the entry among its producers' ledgers, bits 12..32 the slot, bits
/// 32..64 the receive time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// A dead-letter record: counted as `dead_lettered` once delivered.
    pub dead_letter: bool,
    /// Whose record it is: the ledger's position among those its producers report to
    /// (always 0 for an entry's own producers); below [`MAX_SHARED_ENTRIES`].
    pub ledger: usize,
    /// The ack-mode completion slot, if the publish waits for this record, or in disk
    /// mode the record's spool slot; below [`MAX_ACK_SLOTS`] (slots are bounded by
    /// `max_inflight_messages`, which the configuration caps there).
    pub ack_slot: Option<usize>,
    /// When the broker received the publish, in ms since the epoch, wrapping at 32 bits
    /// (49 days): enough for the delivery latency, which is a difference.
    pub received_ms: u32,
}

/// Entries that can share producers: what a tag's 10 ledger bits hold.
pub const MAX_SHARED_ENTRIES: usize = 1 << 10;
/// Ack slots that fit a tag's 20 bits.
pub const MAX_ACK_SLOTS: usize = 1 << 20;

// A tag needs the whole 64 bits of the opaque pointer.
const _: () = assert!(usize::BITS >= 64);

impl Tag {
    pub fn encode(self) -> usize {
        debug_assert!(self.ledger < MAX_SHARED_ENTRIES);
        let mut v = usize::from(self.dead_letter) | (self.ledger & (MAX_SHARED_ENTRIES - 1)) << 2;
        if let Some(slot) = self.ack_slot {
            debug_assert!(slot < MAX_ACK_SLOTS);
            v |= 2 | ((slot & (MAX_ACK_SLOTS - 1)) << 12);
        }
        v | ((self.received_ms as usize) << 32)
    }

    pub fn decode(v: usize) -> Tag {
        Tag {
            dead_letter: v & 1 != 0,
            ledger: (v >> 2) & (MAX_SHARED_ENTRIES - 1),
            ack_slot: (v & 2 != 0).then_some((v >> 12) & (MAX_ACK_SLOTS - 1)),
            received_ms: (v >> 32) as u32,
        }
    }
}

/// Milliseconds since the epoch, wrapped to a tag's 32 bits.
fn wrapped_ms(ms: i64) -> u32 {
    ms as u32
}

/// The room a record takes in the in-flight bound: the one formula, used when the room
/// is taken and when it is given back.
#[inline]
pub fn record_size(key: Option<&[u8]>, payload: Option<&[u8]>) -> usize {
    key.map_or(0, <[u8]>::len) + payload.map_or(0, <[u8]>::len)
}

/// A record ready to be handed to librdkafka.
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub partition: Option<i32>,
    pub timestamp: i64,
    /// When the broker received the publish (ms since the epoch), for the latency.
    pub received_ms: i64,
    pub headers: OwnedHeaders,
    pub dead_letter: bool,
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
    acks: AckSlots,
    loss_log: LogLimiter,
    /// Receive-to-ack time of delivered records.
    latency: ShardedHistogram,
    /// The bridge's disk spool (`buffer.mode = "disk"`): records are appended there,
    /// and a tag's slot is the spool's.
    spool: Option<Arc<Spool>>,
}

impl Ledger {
    pub fn new(
        label: String,
        position: usize,
        stats: Arc<EntryStats>,
        inflight: Arc<Inflight>,
        latency: ShardedHistogram,
        spool: Option<Arc<Spool>>,
    ) -> Ledger {
        Ledger {
            label,
            position,
            stats,
            inflight,
            acks: AckSlots::default(),
            loss_log: LogLimiter::default(),
            latency,
            spool,
        }
    }

    pub fn spool(&self) -> Option<&Arc<Spool>> {
        self.spool.as_ref()
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
    /// its publish in ack mode.
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

    /// Sends one record: takes room (waiting up to `queue_timeout`, except in ack mode,
    /// which refuses the publish at once rather than holding the client), registers the
    /// ack slot, and hands the record to a producer. `ack` is set in ack mode; `topic`
    /// is the entry's constant topic, if it has one.
    pub async fn send(
        &self,
        (producers, topic): (&Producers, Option<&TrackedTopic>),
        record: Outgoing<'_>,
        queue_timeout: Duration,
        ack: Option<&mut AckWait>,
    ) {
        let size = record_size(record.key, record.payload);
        let has_room = self.inflight.try_acquire(size)
            || (ack.is_none() && self.inflight.acquire_within(size, queue_timeout).await);
        if !has_room {
            let (messages, bytes) = (self.inflight.messages(), self.inflight.bytes());
            return self.lose(
                Outcome::DroppedBufferFull,
                ack,
                format_args!("in-flight buffer full ({messages} records, {bytes} bytes), record for {} dropped", record.topic),
            );
        }
        let ack_slot = ack.map(|wait| {
            let (slot, rx) = self.acks.register();
            wait.track(rx);
            slot
        });
        let tag = Tag {
            dead_letter: record.dead_letter,
            ledger: self.position,
            ack_slot,
            received_ms: wrapped_ms(record.received_ms),
        };
        let mut base = Record::with_opaque_to(record.topic, tag.encode())
            .timestamp(record.timestamp)
            .headers(record.headers);
        base.key = record.key;
        base.payload = record.payload;
        base.partition = record.partition;
        let timeout = Some(queue_timeout);
        match hand_over((producers, topic), base, tag.received_ms, timeout).await {
            Ok(()) => self.stats.produced(),
            Err((outcome, why)) => self.settle(tag, size, Some((outcome, format_args!("{why}")))),
        }
    }

    /// Appends one record to the spool (disk mode), waiting up to `queue_timeout` for
    /// room on disk, except in ack mode, which refuses the publish at once. `wait` is
    /// set for a QoS 1/2 publish: it waits for the record to be durable, or in ack mode
    /// for Kafka.
    pub async fn spool_record(
        &self,
        spool: &Arc<Spool>,
        entry: usize,
        record: Outgoing<'_>,
        queue_timeout: Duration,
        wait: Option<&mut AckWait>,
        ack_mode: bool,
    ) {
        let ack = ack_mode && wait.is_some();
        let timeout = if ack { Duration::ZERO } else { queue_timeout };
        match spool.append(entry, &record, timeout, ack).await {
            Ok((seq, receiver)) => match (wait, receiver) {
                (Some(w), Some(rx)) => w.track(rx),
                (Some(w), None) => w.durable(spool.clone(), seq),
                (None, _) => {}
            },
            Err(refused) => {
                let (outcome, why) = match refused {
                    Refused::Full => (Outcome::DroppedBufferFull, "spool full (buffer.max_bytes)"),
                    Refused::Closed => (Outcome::DeliveryFailed, "the spool is closed"),
                };
                let wait = wait.filter(|_| ack_mode);
                self.lose(
                    outcome,
                    wait,
                    format_args!("{why}, record for {} dropped", record.topic),
                );
            }
        }
    }

    /// Hands a spooled record to a producer (the pump, in disk mode): takes room,
    /// waiting as long as it takes (the spool holds what waits), and tags the record
    /// with a spool slot.
    pub async fn dispatch(
        &self,
        producers: &Producers,
        spool: &Spool,
        seq: u64,
        r: &StoredRecord<'_>,
    ) {
        let size = record_size(r.key, r.payload);
        if !self.inflight.fits_at_all(size) {
            self.stats.outcome(Outcome::DroppedBufferFull);
            let why = format!(
                "record of {size} bytes for {} exceeds max_inflight_bytes",
                r.topic
            );
            log_limited!(self.loss_log, log::Level::Warn, "{}: {why}", self.label);
            return spool.settle_unsent(seq, Err(why));
        }
        self.inflight.acquire(size).await;
        let tag = Tag {
            dead_letter: r.dead_letter,
            ledger: self.position,
            ack_slot: Some(spool.take_slot(seq)),
            received_ms: wrapped_ms(r.received_ms),
        };
        let headers = r.headers.iter().fold(
            OwnedHeaders::new_with_capacity(r.headers.len()),
            |h, &(key, value)| h.insert(Header { key, value }),
        );
        let mut base = Record::with_opaque_to(r.topic, tag.encode())
            .timestamp(r.timestamp)
            .headers(headers);
        base.key = r.key;
        base.payload = r.payload;
        base.partition = r.partition;
        match hand_over((producers, None), base, tag.received_ms, None).await {
            Ok(()) => self.stats.produced(),
            Err((outcome, why)) => self.settle(tag, size, Some((outcome, format_args!("{why}")))),
        }
    }

    /// Settles the delivery report of a record that librdkafka took.
    pub fn report(&self, tag: Tag, message: &BorrowedMessage<'_>, error: Option<&KafkaError>) {
        let size = record_size(message.key(), message.payload());
        if let (Some(e), Some(spool)) = (error, &self.spool) {
            if purged_unsent(e, message) {
                // Never sent: it stays spooled for the next start, and is not lost.
                self.inflight.release(size);
                let slot = tag.ack_slot.expect("a spooled record has a slot");
                return spool.settle(slot, Fate::KeptUnsent, Err("the bridge stopped".into()));
            }
        }
        match error {
            None => {
                if !tag.dead_letter {
                    let now = wrapped_ms(crate::observe::clock::wall_ms());
                    // Clocks of two threads: a record acked within a millisecond of
                    // being received can read as a millisecond early.
                    let ms = (now.wrapping_sub(tag.received_ms) as i32).max(0);
                    self.latency.observe(f64::from(ms) / 1000.0);
                }
                self.settle(tag, size, None)
            }
            Some(e) if possibly_persisted(message) => self.settle(
                tag,
                size,
                Some((
                    Outcome::PossiblyDelivered,
                    format_args!(
                        "no answer from Kafka for a record sent to topic {} ({e}); it may be there",
                        message.topic()
                    ),
                )),
            ),
            Some(e) => self.settle(
                tag,
                size,
                Some((
                    Outcome::DeliveryFailed,
                    format_args!("delivery to Kafka topic {} failed: {e}", message.topic()),
                )),
            ),
        }
    }

    /// Gives back a record's room, counts its one outcome, and completes its ack slot
    /// (in disk mode: its spool slot, which keeps a possibly delivered record for the
    /// next start and removes any other).
    fn settle(&self, tag: Tag, size: usize, failed: Option<(Outcome, fmt::Arguments<'_>)>) {
        self.inflight.release(size);
        let fate = match failed {
            Some((Outcome::PossiblyDelivered, _)) => Fate::KeptMaybeSent,
            _ => Fate::Settled,
        };
        match failed {
            None => self.stats.outcome(if tag.dead_letter {
                Outcome::DeadLettered
            } else {
                Outcome::Delivered
            }),
            Some((outcome, why)) => {
                self.stats.outcome(outcome);
                log_limited!(self.loss_log, log::Level::Warn, "{}: {why}", self.label);
            }
        }
        if let Some(slot) = tag.ack_slot {
            let result = failed.map_or(Ok(()), |(_, why)| Err(why.to_string()));
            match &self.spool {
                Some(spool) => spool.settle(slot, fate, result),
                None => self.acks.complete(slot, result),
            }
        }
    }

    /// Fails the publishes still waiting for a record (the plugin stopped).
    pub fn fail_waiting_acks(&self) {
        self.acks.fail_all("the bridge stopped");
    }
}

/// Whether a record was purged (a stop) before librdkafka sent it.
fn purged_unsent(e: &KafkaError, message: &BorrowedMessage<'_>) -> bool {
    matches!(
        e,
        KafkaError::MessageProduction(RDKafkaErrorCode::PurgeQueue)
    ) && !possibly_persisted(message)
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
async fn hand_over(
    (producers, topic): (&Producers, Option<&TrackedTopic>),
    mut record: Record<'_>,
    received_ms: u32,
    timeout: Option<Duration>,
) -> Result<(), (Outcome, String)> {
    let mut deadline = None;
    loop {
        match producers.send(record, received_ms, topic) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                let now = tokio::time::Instant::now();
                let deadline = *deadline.get_or_insert(timeout.map(|t| now + t));
                if deadline.is_some_and(|d| now >= d) {
                    let why = format!("librdkafka queue full, record for {} dropped", r.topic);
                    return Err((Outcome::DroppedBufferFull, why));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                record = r;
            }
            Err((e, r)) => {
                let why = format!("cannot produce to {}: {e}", r.topic);
                return Err((Outcome::DeliveryFailed, why));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_roundtrip() {
        for (dead_letter, ledger, ack_slot, received_ms) in [
            (false, 0, None, 0),
            (true, 7, None, u32::MAX),
            (false, 0, Some(0), 1),
            (true, MAX_SHARED_ENTRIES - 1, Some(123_456), 0x8000_0000),
            (false, 513, Some(MAX_ACK_SLOTS - 1), u32::MAX),
        ] {
            let tag = Tag {
                dead_letter,
                ledger,
                ack_slot,
                received_ms,
            };
            assert_eq!(Tag::decode(tag.encode()), tag);
        }
    }

    #[test]
    fn latency_survives_the_32_bit_wrap() {
        let received = wrapped_ms((1 << 32) - 5);
        let acked = wrapped_ms((1 << 32) + 20);
        assert_eq!(acked.wrapping_sub(received), 25);
    }
}
