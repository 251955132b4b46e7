//! The Kafka producers of an entry (`concurrent_client_limit` librdkafka clients) and
//! the delivery reports that settle every record's outcome. Producing never waits for
//! Kafka: records are handed to librdkafka and their reports arrive on its thread.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, PurgeConfig, ThreadedProducer};
use rdkafka::ClientContext;

use crate::ack::Acks;
use crate::config::BridgeConfig;
use crate::inflight::Inflight;
use crate::log_limited;
use crate::stats::{EntryStats, LogLimiter, Outcome};

/// What the delivery report of a record must know, packed into librdkafka's opaque
/// pointer so that a record costs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// A dead-letter record: counted as `dead_lettered` once delivered.
    pub dead_letter: bool,
    /// The ack-mode completion slot, if the publish waits for this record.
    pub ack_slot: Option<usize>,
}

impl Tag {
    pub fn encode(self) -> usize {
        let mut v = usize::from(self.dead_letter);
        if let Some(slot) = self.ack_slot {
            v |= 2 | (slot << 2);
        }
        v
    }

    pub fn decode(v: usize) -> Tag {
        Tag {
            dead_letter: v & 1 != 0,
            ack_slot: (v & 2 != 0).then_some(v >> 2),
        }
    }
}

/// State an entry shares with its delivery reports.
pub struct EntryShared {
    /// `bridge/entry N`, for log lines.
    pub label: String,
    pub stats: EntryStats,
    pub inflight: Arc<Inflight>,
    pub acks: Arc<Acks>,
    pub delivery_log: LogLimiter,
    pub client_log: LogLimiter,
}

impl EntryShared {
    /// Counts a record that will not reach Kafka and logs why (rate-limited).
    pub fn lost(&self, outcome: Outcome, why: std::fmt::Arguments<'_>) {
        self.stats.outcome(outcome);
        log_limited!(self.delivery_log, log::Level::Warn, "{}: {why}", self.label);
    }
}

/// librdkafka callbacks of one entry.
pub struct DeliveryContext(Arc<EntryShared>);

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        log_limited!(
            self.0.client_log,
            log::Level::Warn,
            "{}: Kafka client error: {error}: {reason}",
            self.0.label
        );
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let tag = Tag::decode(opaque);
        let shared = &self.0;
        let (msg, error) = match result {
            Ok(m) => (m, None),
            Err((e, m)) => (m, Some(e)),
        };
        shared
            .inflight
            .release(msg.payload_len() + msg.key().map_or(0, <[u8]>::len));
        match error {
            None => shared.stats.outcome(if tag.dead_letter {
                Outcome::DeadLettered
            } else {
                Outcome::Delivered
            }),
            Some(e) => shared.lost(
                Outcome::DeliveryFailed,
                format_args!("delivery to Kafka topic {} failed: {e}", msg.topic()),
            ),
        }
        if let Some(slot) = tag.ack_slot {
            shared
                .acks
                .complete(slot, error.map_or(Ok(()), |e| Err(e.to_string())));
        }
    }
}

pub type KafkaProducer = ThreadedProducer<DeliveryContext>;

/// A record on its way to librdkafka; its opaque is an encoded [`Tag`].
pub type Record<'a> = BaseRecord<'a, [u8], [u8], usize>;

/// The producers of one entry.
pub struct Producers {
    clients: Vec<KafkaProducer>,
    client_ids: Vec<String>,
    next: AtomicUsize,
}

impl Producers {
    /// Creates `concurrent_client_limit` producers with the seed's client ids.
    pub fn create(
        bridge: &BridgeConfig,
        node_id: u64,
        entry_index: usize,
        shared: &Arc<EntryShared>,
    ) -> Result<Producers, String> {
        let mut clients = Vec::with_capacity(bridge.concurrent_client_limit);
        let mut client_ids = Vec::with_capacity(bridge.concurrent_client_limit);
        for client_no in 1..=bridge.concurrent_client_limit {
            let id = bridge.client_id(node_id, entry_index, client_no);
            let config = client_config(bridge, &id);
            let producer = config
                .create_with_context(DeliveryContext(shared.clone()))
                .map_err(|e| {
                    format!("cannot create Kafka producer {id}: {e} (check [bridges.properties])")
                })?;
            clients.push(producer);
            client_ids.push(id);
        }
        Ok(Producers {
            clients,
            client_ids,
            next: AtomicUsize::new(0),
        })
    }

    pub fn client_ids(&self) -> &[String] {
        &self.client_ids
    }

    /// The producer for a record: by key hash, so one key always takes the same
    /// producer and keeps its order; keyless records go round-robin.
    #[inline]
    pub fn pick(&self, key: Option<&[u8]>) -> &KafkaProducer {
        let n = self.clients.len();
        let i = match key {
            _ if n == 1 => 0,
            Some(k) => {
                let mut h = DefaultHasher::new();
                k.hash(&mut h);
                (h.finish() % n as u64) as usize
            }
            None => self.next.fetch_add(1, Ordering::Relaxed) % n,
        };
        &self.clients[i]
    }

    /// Hands a record to librdkafka; on error the record comes back for a retry.
    #[allow(clippy::result_large_err)]
    pub fn send<'a>(&self, record: Record<'a>) -> Result<(), (KafkaError, Record<'a>)> {
        self.pick(record.key).send(record)
    }

    /// Waits up to `timeout` for in-flight records, then purges the rest, whose
    /// delivery reports count them as `delivery_failed`.
    pub fn shut_down(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        for p in &self.clients {
            let _ = p.flush(deadline.saturating_duration_since(std::time::Instant::now()));
        }
        for p in &self.clients {
            p.purge(PurgeConfig::default().queue().inflight());
            // Let the polling thread deliver the reports of purged records.
            let _ = p.flush(Duration::from_millis(500));
        }
    }
}

/// librdkafka settings: the plugin's defaults, then the bridge's `[bridges.properties]`.
fn client_config(bridge: &BridgeConfig, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bridge.servers())
        .set("client.id", client_id);
    // Retries neither reorder nor duplicate records.
    c.set("enable.idempotence", "true");
    // librdkafka's 5 ms default wakes its broker threads so often that they cost more
    // CPU than the records; 20 ms batches measured ~44% more throughput and a third of
    // the p99 latency on a saturated machine (docs/benchmarks.md).
    c.set("linger.ms", "20");
    // librdkafka's own queue must never be the tighter bound: the bridge's in-flight
    // bound applies first and is the one that is counted and documented.
    c.set(
        "queue.buffering.max.messages",
        bridge.max_inflight_messages.max(100_000).to_string(),
    );
    c.set(
        "queue.buffering.max.kbytes",
        (bridge.max_inflight_bytes / 1024 + 1)
            .max(1 << 20)
            .to_string(),
    );
    for (k, v) in bridge.active_properties() {
        c.set(k, v);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_roundtrip() {
        for tag in [
            Tag {
                dead_letter: false,
                ack_slot: None,
            },
            Tag {
                dead_letter: true,
                ack_slot: None,
            },
            Tag {
                dead_letter: false,
                ack_slot: Some(0),
            },
            Tag {
                dead_letter: true,
                ack_slot: Some(123_456),
            },
        ] {
            assert_eq!(Tag::decode(tag.encode()), tag);
        }
    }
}
