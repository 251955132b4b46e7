//! The Kafka producers of an entry: `concurrent_client_limit` librdkafka clients.
//! Producing never waits for Kafka: records are handed to librdkafka, and their delivery
//! reports arrive on its polling thread, where the entry's [`Ledger`] settles them.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, PurgeConfig, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;

use super::client_stats::{ClientStats, Summary, DEFAULT_INTERVAL_MS};
use super::ledger::Ledger;
use crate::config::BridgeConfig;

/// librdkafka's callbacks: delivery reports and logs go to the entry's ledger,
/// statistics to this producer's summary.
pub struct DeliveryContext(Arc<Ledger>, ClientStats);

impl ClientContext for DeliveryContext {
    fn stats(&self, statistics: Statistics) {
        self.1.update(&statistics);
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let level = match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => log::Level::Error,
            RDKafkaLogLevel::Warning => log::Level::Warn,
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => log::Level::Info,
            RDKafkaLogLevel::Debug => log::Level::Debug,
        };
        self.0.client_log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.client_error(&error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        match result {
            Ok(m) => self.0.report(opaque, m, None),
            Err((e, m)) => self.0.report(opaque, m, Some(e)),
        }
    }
}

type KafkaProducer = ThreadedProducer<DeliveryContext>;

/// A record on its way to librdkafka; its opaque is an encoded ledger tag.
pub type Record<'a> = BaseRecord<'a, [u8], [u8], usize>;

/// The producers of one entry.
pub struct Producers {
    clients: Vec<KafkaProducer>,
    client_ids: Vec<String>,
    next: AtomicUsize,
}

impl Producers {
    /// Creates `concurrent_client_limit` producers with the seed's client ids, whose
    /// delivery reports go to `ledger`.
    pub fn create(
        bridge: &BridgeConfig,
        node_id: u64,
        entry_index: usize,
        ledger: &Arc<Ledger>,
    ) -> Result<Producers, String> {
        let mut clients = Vec::with_capacity(bridge.concurrent_client_limit);
        let mut client_ids = Vec::with_capacity(bridge.concurrent_client_limit);
        for client_no in 1..=bridge.concurrent_client_limit {
            let id = bridge.client_id(node_id, entry_index, client_no);
            let producer = client_config(bridge, &id)
                .create_with_context(DeliveryContext(ledger.clone(), ClientStats::default()))
                .map_err(|e| format!("cannot create Kafka producer {id}: {e}"))?;
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

    /// Each producer's latest librdkafka statistics, for a scrape.
    pub fn statistics(&self) -> impl Iterator<Item = Summary> + '_ {
        self.clients.iter().filter_map(|p| p.context().1.latest())
    }

    /// The producer for a record: by key hash, so one key always takes the same
    /// producer and keeps its order; keyless records go round-robin.
    #[inline]
    fn pick(&self, key: Option<&[u8]>) -> &KafkaProducer {
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

    /// Connects every producer and fetches the metadata of `topic` (of every topic
    /// when the entry's topic is a template), so that the first records wait for
    /// neither. Blocks up to `timeout` per producer; run it off the async threads.
    pub fn warm_up(&self, topic: Option<&str>, timeout: Duration) -> Result<(), KafkaError> {
        for p in &self.clients {
            p.client().fetch_metadata(topic, timeout)?;
        }
        Ok(())
    }

    /// Hands a record to librdkafka; on error the record comes back for a retry.
    #[allow(clippy::result_large_err)]
    pub fn send<'a>(&self, record: Record<'a>) -> Result<(), (KafkaError, Record<'a>)> {
        self.pick(record.key).send(record)
    }

    /// Waits up to `timeout` for in-flight records, then purges the rest, whose
    /// delivery reports count them as `delivery_failed`.
    pub fn shut_down(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for p in &self.clients {
            let _ = p.flush(deadline.saturating_duration_since(Instant::now()));
        }
        for p in &self.clients {
            p.purge(PurgeConfig::default().queue().inflight());
            // Let the polling thread deliver the reports of purged records.
            let _ = p.flush(Duration::from_millis(500));
        }
    }
}

/// Whether producers of bridge `a` would be created exactly as those of bridge `b`:
/// same librdkafka settings and same client ids. A reload keeps producers only then.
pub fn same_clients(a: &BridgeConfig, b: &BridgeConfig) -> bool {
    a.client_id_prefix == b.client_id_prefix
        && a.name == b.name
        && a.concurrent_client_limit == b.concurrent_client_limit
        && client_config(a, "").config_map() == client_config(b, "").config_map()
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
    // Feeds /metrics' per-producer series and /health's broker reachability.
    c.set("statistics.interval.ms", DEFAULT_INTERVAL_MS);
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
