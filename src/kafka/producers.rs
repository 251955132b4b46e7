//! The Kafka producers of an entry, or shared by a bridge's entries:
//! `concurrent_client_limit` librdkafka clients.
//! Producing never waits for Kafka: records are handed to librdkafka, and their delivery
//! reports arrive on its polling thread, where whoever created the producers
//! ([`Reports`]) settles them.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, PurgeConfig, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;

use super::client_stats::{ClientStats, Summary, DEFAULT_INTERVAL_MS};
use super::partitions::{Partitioner, Topics, TrackedTopic};
use crate::config::{BridgeConfig, BufferMode, PluginConfig, ProducerPool};
use crate::log_limited;
use crate::observe::LogLimiter;
use crate::record::Record;

/// Where the delivery reports of a set of producers go, with the opaque value each
/// record was sent with.
pub trait Reports: Send + Sync {
    fn report(&self, opaque: usize, result: &DeliveryResult<'_>);
}

/// librdkafka's callbacks: each delivery report goes to the producers' [`Reports`], logs
/// to the producers' shared rate limiter, statistics to this producer's summary and
/// the partition counts of the producers' topics.
pub struct DeliveryContext {
    reports: Arc<dyn Reports>,
    log: Arc<ClientLog>,
    stats: ClientStats,
    topics: Arc<Topics>,
}

/// librdkafka's own log lines about a set of producers: tagged with their owner (an
/// entry, or a bridge for shared producers) and rate-limited, so a dead Kafka cannot
/// flood the log from every broker thread on every reconnect.
struct ClientLog {
    label: String,
    limiter: LogLimiter,
}

impl ClientContext for DeliveryContext {
    fn stats(&self, statistics: Statistics) {
        self.stats.update(&statistics);
        self.topics.learn_from_statistics(&statistics);
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
        if log::log_enabled!(level) {
            let ClientLog { label, limiter } = &*self.log;
            log_limited!(limiter, level, "{label}: librdkafka {facility}: {message}");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let ClientLog { label, limiter } = &*self.log;
        log_limited!(
            limiter,
            log::Level::Warn,
            "{label}: Kafka client error: {error}: {reason}"
        );
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        self.reports.report(opaque, result);
    }
}

type KafkaProducer = ThreadedProducer<DeliveryContext>;

/// A record as librdkafka takes it; its opaque comes back with its delivery report.
type Base<'a> = BaseRecord<'a, [u8], [u8], usize>;

/// The producers of one entry.
pub struct Producers {
    clients: Vec<KafkaProducer>,
    client_ids: Vec<String>,
    /// How long one producer takes every keyless record before the next takes over:
    /// the producers' `linger.ms`, so that each linger window fills one batch.
    turn_ms: u32,
    /// The topics whose keyed records may be routed by partition, and how.
    topics: Arc<Topics>,
    partitioner: Partitioner,
}

impl Producers {
    /// Creates `concurrent_client_limit` producers whose delivery reports go to
    /// `reports`: an entry's own, with the seed's client ids (`entry` is its index), or a
    /// bridge's shared ones (`entry` is `None`).
    pub fn create(
        bridge: &BridgeConfig,
        node_id: u64,
        entry: Option<usize>,
        reports: Arc<dyn Reports>,
    ) -> Result<Producers, String> {
        let owner = match entry {
            Some(i) => crate::config::entry_label(&bridge.name, i),
            None => format!("bridge \"{}\" shared producers", bridge.name),
        };
        let log = Arc::new(ClientLog {
            label: owner,
            limiter: LogLimiter::default(),
        });
        let topics = Arc::new(Topics::default());
        let mut clients = Vec::with_capacity(bridge.concurrent_client_limit);
        let mut client_ids = Vec::with_capacity(bridge.concurrent_client_limit);
        for client_no in 1..=bridge.concurrent_client_limit {
            let id = bridge.client_id(node_id, entry, client_no);
            let context = DeliveryContext {
                reports: reports.clone(),
                log: log.clone(),
                stats: ClientStats::default(),
                topics: topics.clone(),
            };
            let producer = client_config(bridge, &id)
                .create_with_context(context)
                .map_err(|e| format!("cannot create Kafka producer {id}: {e}"))?;
            clients.push(producer);
            client_ids.push(id);
        }
        Ok(Producers {
            clients,
            client_ids,
            turn_ms: keyless_turn_ms(bridge),
            topics,
            partitioner: Partitioner::of(bridge),
        })
    }

    /// Tracks `topic` (an entry's constant topic) so that its keyed records can be
    /// routed by partition; `None` with one producer, where every record takes it, and
    /// with the random partitioner, which gives no key a partition of its own.
    pub fn track(&self, topic: &str) -> Option<TrackedTopic> {
        let by_partition = self.clients.len() > 1 && self.partitioner != Partitioner::Random;
        by_partition.then(|| self.topics.track(topic))
    }

    pub fn client_ids(&self) -> &[String] {
        &self.client_ids
    }

    /// Each producer's latest librdkafka statistics, for a scrape.
    pub fn statistics(&self) -> impl Iterator<Item = Summary> + '_ {
        self.clients
            .iter()
            .filter_map(|p| p.context().stats.latest())
    }

    /// The producer for a record. A keyed record of a topic routed by partition
    /// (`partitions.rs`) gets its partition here and takes that partition's producer;
    /// other keyed records take their key hash's. Either way one key keeps one producer,
    /// and its order. Keyless records take turns by the time the broker received them
    /// (`received_ms`): one producer takes them all for `turn_ms`, then the next.
    /// Spreading records over the producers record by record would cut every linger
    /// window into one small batch per producer and partition, and each batch costs the
    /// broker, librdkafka's threads and Kafka (docs/benchmark-history.md, "Keyless records: one
    /// producer at a time", "Keyed records by partition").
    #[inline]
    fn pick(
        &self,
        record: &mut Base<'_>,
        received_ms: u32,
        topic: Option<&TrackedTopic>,
    ) -> &KafkaProducer {
        let n = self.clients.len();
        let i = match record.key {
            _ if n == 1 => 0,
            Some(key) => match self.partition_of(record, key, topic) {
                Some(p) => {
                    record.partition = Some(p);
                    p as usize % n
                }
                None => {
                    let mut h = DefaultHasher::new();
                    key.hash(&mut h);
                    (h.finish() % n as u64) as usize
                }
            },
            None => (received_ms / self.turn_ms) as usize % n,
        };
        &self.clients[i]
    }

    /// A keyed record's partition when its topic routes by partition: the one it was
    /// given (`remote.partition`, a module's), or the partitioner's for its key. An
    /// empty key is left to its hash and to librdkafka, whose default partitioner treats
    /// it as a missing one.
    #[inline]
    fn partition_of(
        &self,
        record: &Base<'_>,
        key: &[u8],
        topic: Option<&TrackedTopic>,
    ) -> Option<i32> {
        if key.is_empty() {
            return None;
        }
        let count = match topic.and_then(|t| t.get(record.topic)) {
            Some(t) => t.for_keyed_record(),
            None => self.topics.for_keyed_record(record.topic),
        }?;
        match record.partition {
            Some(p) => (p >= 0).then_some(p),
            None => self.partitioner.partition(key, count),
        }
    }

    /// Connects every producer and fetches the metadata of the tracked topics (of
    /// every topic when there are none: templates), so that the first records wait for
    /// neither and the tracked topics' keyed records can be routed by partition.
    /// Blocks up to `timeout` per request; run it off the async threads.
    pub fn warm_up(&self, timeout: Duration) -> Result<(), KafkaError> {
        let names = self.topics.names();
        let first = names.first().map(|t| &**t);
        for p in &self.clients {
            let metadata = p.client().fetch_metadata(first, timeout)?;
            self.topics.learn_from_metadata(&metadata);
        }
        for topic in names.iter().skip(1) {
            let metadata = self.clients[0]
                .client()
                .fetch_metadata(Some(topic), timeout)?;
            self.topics.learn_from_metadata(&metadata);
        }
        Ok(())
    }

    /// Hands a record to librdkafka, with `opaque` for its delivery report. `topic`: the
    /// sending entry's constant topic, if it has one.
    pub fn send(
        &self,
        record: &Record<'_>,
        opaque: usize,
        topic: Option<&TrackedTopic>,
    ) -> Result<(), KafkaError> {
        let headers = record.headers.iter().fold(
            OwnedHeaders::new_with_capacity(record.headers.len()),
            |h, &(key, value)| h.insert(Header { key, value }),
        );
        let mut base = Base::with_opaque_to(record.topic, opaque)
            .timestamp(record.timestamp)
            .headers(headers);
        base.key = record.key;
        base.payload = record.payload;
        base.partition = record.partition;
        // Keyless records take turns by the receive time's low 32 bits.
        let received_ms = record.received_ms as u32;
        let producer = self.pick(&mut base, received_ms, topic);
        producer.send(base).map_err(|(e, _)| e)
    }

    /// Waits up to `timeout` for in-flight records, then purges the rest, whose
    /// delivery reports count them as `delivery_failed`, or `possibly_delivered` when
    /// they had been sent.
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

/// Producers past which `producer_pool = "entry"` is warned about at start.
pub const MANY_PRODUCERS: usize = 64;

/// The warning for a configuration whose entry-owned producers number more than
/// [`MANY_PRODUCERS`], with what they cost: each librdkafka producer runs a main
/// thread, an internal one, one per Kafka broker and the plugin's polling thread, and
/// keeps a connection to each broker it sends to.
pub fn too_many_producers(config: &PluginConfig) -> Option<String> {
    let own = config
        .enabled_bridges()
        .filter(|(_, b)| b.producer_pool == ProducerPool::Entry);
    let (mut producers, mut threads, mut connections) = (0, 0, 0);
    let mut bridges = Vec::new();
    for (_, b) in own {
        let n = b.entries.len() * b.concurrent_client_limit;
        let brokers = b
            .servers()
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .count()
            .max(1);
        producers += n;
        threads += n * (3 + brokers);
        connections += n * brokers;
        bridges.push(format!("\"{}\" {n}", b.name));
    }
    (producers > MANY_PRODUCERS).then(|| {
        format!(
            "{producers} Kafka producers ({}): about {threads} threads and up to {connections} connections to Kafka; \
             producer_pool = \"bridge\" shares concurrent_client_limit producers among a bridge's entries",
            bridges.join(", ")
        )
    })
}

/// Whether producers of bridge `a` would be created exactly as those of bridge `b`:
/// same librdkafka settings, same client ids, same owners. A reload keeps producers only then.
pub fn same_clients(a: &BridgeConfig, b: &BridgeConfig) -> bool {
    a.client_id_prefix == b.client_id_prefix
        && a.name == b.name
        && a.producer_pool == b.producer_pool
        && a.concurrent_client_limit == b.concurrent_client_limit
        && client_config(a, "").config_map() == client_config(b, "").config_map()
}

/// The keyless records' turn: the producers' `linger.ms` in whole ms, at least 1.
fn keyless_turn_ms(bridge: &BridgeConfig) -> u32 {
    let c = client_config(bridge, "");
    let linger = c
        .get(LINGER.0)
        .or_else(|| c.get(LINGER.1))
        .map(str::parse::<f64>);
    match linger {
        Some(Ok(ms)) if ms.is_finite() => ms.ceil().clamp(1.0, 3_600_000.0) as u32,
        _ => DEFAULT_LINGER_MS,
    }
}

/// librdkafka's `linger.ms` unless the bridge's properties set it.
const DEFAULT_LINGER_MS: u32 = 15;

/// librdkafka settings the plugin sets that have a second name (librdkafka's aliases,
/// `_RK_C_ALIAS`): with both names in one configuration, which value librdkafka takes
/// depends on the order rust-rdkafka applies them, which is a `HashMap`'s.
const LINGER: (&str, &str) = ("linger.ms", "queue.buffering.max.ms");
const MESSAGE_TIMEOUT: (&str, &str) = ("message.timeout.ms", "delivery.timeout.ms");

/// Sets a plugin default unless the bridge's properties set it under either name.
fn set_default(c: &mut ClientConfig, bridge: &BridgeConfig, (key, alias): (&str, &str), v: &str) {
    if !bridge
        .active_properties()
        .any(|(k, _)| k == key || k == alias)
    {
        c.set(key, v);
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
    // CPU than the records. 15 ms keeps the p99 at half load under 25 ms; at saturation
    // it measured the same throughput as 20 ms (docs/benchmark-history.md, "`linger.ms` and latency").
    set_default(&mut c, bridge, LINGER, &DEFAULT_LINGER_MS.to_string());
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
    // A spooled record waits for Kafka however long it takes: a timeout would fail a
    // record that is safe on disk, while the records behind it go on.
    if bridge.buffer.mode == BufferMode::Disk {
        c.remove(MESSAGE_TIMEOUT.1).set(MESSAGE_TIMEOUT.0, "0");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoReports;

    impl Reports for NoReports {
        fn report(&self, _: usize, _: &DeliveryResult<'_>) {}
    }

    fn no_reports() -> Arc<dyn Reports> {
        Arc::new(NoReports)
    }

    fn config(pool: &str, entries: usize) -> PluginConfig {
        let entry = "[[bridges.entries]]\nlocal.topic_filter = \"t/#\"\nremote.topic = \"t\"\n";
        let toml = format!(
            "[[bridges]]\nname = \"b1\"\nservers = \"k1:9092,k2:9092\"\nconcurrent_client_limit = 4\nproducer_pool = \"{pool}\"\n{}",
            entry.repeat(entries)
        );
        PluginConfig::from_toml(&toml).unwrap()
    }

    /// The producer a record takes (its index), and the partition it is sent with.
    fn pick(
        p: &Producers,
        (topic, key, partition): (&str, Option<&[u8]>, Option<i32>),
        received_ms: u32,
        tracked: Option<&TrackedTopic>,
    ) -> (usize, Option<i32>) {
        let mut record = Base::with_opaque_to(topic, 0);
        record.key = key;
        record.partition = partition;
        let c = p.pick(&mut record, received_ms, tracked);
        let i = p.clients.iter().position(|x| std::ptr::eq(x, c)).unwrap();
        (i, record.partition)
    }

    #[test]
    fn keys_keep_their_producer_and_keyless_records_take_turns() {
        let bridge = &config("bridge", 3).bridges[0];
        let p = Producers::create(bridge, 1, None, no_reports()).unwrap();
        let keyless = |ms| pick(&p, ("t", None, None), ms, None);
        assert_eq!(p.turn_ms, 15, "the default linger.ms");
        // Received in the same turn: one producer; in the next turns: the next ones.
        let within: Vec<_> = (30..45).map(keyless).collect();
        assert_eq!(within, vec![(2, None); 15], "a turn is one producer");
        let turns: Vec<_> = (0..8).map(|t| keyless(t * 15 + 7).0).collect();
        let expected: Vec<_> = (0..8).map(|i| i % 4).collect();
        assert_eq!(turns, expected, "keyless: turns over the 4 producers");
        for key in [&b"k1"[..], b"k2", b"another"] {
            let first = pick(&p, ("t", Some(key), None), 0, None);
            assert_eq!(first.1, None, "an untracked topic: librdkafka partitions");
            assert!(
                (0..10).all(|t| pick(&p, ("t", Some(key), None), t * 15, None) == first),
                "{key:?}"
            );
        }
        assert_eq!(p.client_ids()[3], "rmqtt:b1:egress:1:shared:4");
    }

    #[test]
    fn keyed_records_of_a_topic_with_a_known_count_take_their_partitions_producer() {
        let bridge = &config("bridge", 1).bridges[0];
        let p = Producers::create(bridge, 1, None, no_reports()).unwrap();
        let tracked = p.track("t").unwrap();
        p.topics.learn("t", 6);
        let mut producers_of = [None; 6];
        for k in 0..300 {
            let key = format!("device-{k}");
            let expected = Partitioner::Consistent.partition(key.as_bytes(), 6);
            let held = pick(&p, ("t", Some(key.as_bytes()), None), k, Some(&tracked));
            let (i, partition) = held;
            assert_eq!(partition, expected, "{key}: librdkafka's partition");
            let partition = partition.unwrap() as usize;
            assert_eq!(i, partition % 4, "{key}: its partition's producer");
            assert_eq!(*producers_of[partition].get_or_insert(i), i);
            // Without the entry's hint (a module named the topic), the table says the same.
            assert_eq!(pick(&p, ("t", Some(key.as_bytes()), None), 0, None), held);
        }
        assert!(
            producers_of.iter().all(Option::is_some),
            "every partition used"
        );
        let given = pick(&p, ("t", Some(b"k"), Some(5)), 0, Some(&tracked));
        assert_eq!(
            given,
            (1, Some(5)),
            "a partition given keeps it, and takes its producer"
        );
        let empty = pick(&p, ("t", Some(b""), None), 0, Some(&tracked));
        assert_eq!(empty.1, None, "an empty key is librdkafka's to partition");
        let (_, keyless) = pick(&p, ("t", None, None), 0, Some(&tracked));
        assert_eq!(keyless, None, "keyless records take turns, unpartitioned");
        assert_eq!(tracked.to_json()["keyed_records"], "by_partition");
    }

    #[test]
    fn a_topic_whose_count_came_late_keeps_routing_by_key_hash() {
        let bridge = &config("bridge", 1).bridges[0];
        let p = Producers::create(bridge, 1, None, no_reports()).unwrap();
        let tracked = p.track("t").unwrap();
        let first = pick(&p, ("t", Some(b"k1"), None), 0, Some(&tracked));
        assert_eq!(first.1, None);
        p.topics.learn("t", 6);
        assert_eq!(pick(&p, ("t", Some(b"k1"), None), 0, Some(&tracked)), first);
        assert_eq!(tracked.to_json()["keyed_records"], "by_key_hash");
    }

    #[test]
    fn one_producer_or_the_random_partitioner_tracks_no_topic() {
        let bridge = |extra: &str| {
            let toml = format!("[[bridges]]\nname = \"b1\"\nservers = \"k:9092\"\n{extra}");
            PluginConfig::from_toml(&toml).unwrap().bridges.remove(0)
        };
        let one = Producers::create(
            &bridge("concurrent_client_limit = 1\n"),
            1,
            Some(0),
            no_reports(),
        );
        let p = one.unwrap();
        assert!(p.track("t").is_none(), "one producer takes every record");
        assert_eq!(pick(&p, ("t", Some(b"k"), None), 0, None), (0, None));
        let random =
            "concurrent_client_limit = 4\n[bridges.properties]\npartitioner = \"random\"\n";
        let p = Producers::create(&bridge(random), 1, Some(0), no_reports()).unwrap();
        assert!(
            p.track("t").is_none(),
            "random: keys have no partition of their own"
        );
    }

    #[test]
    fn a_keyless_turn_lasts_the_producers_linger() {
        let turn = |linger: &str| {
            let toml = format!(
                "[[bridges]]\nname = \"b1\"\nservers = \"k:9092\"\n[bridges.properties]\n{linger}\n"
            );
            keyless_turn_ms(&PluginConfig::from_toml(&toml).unwrap().bridges[0])
        };
        assert_eq!(turn(""), 15);
        assert_eq!(turn("\"linger.ms\" = \"100\""), 100);
        assert_eq!(turn("\"linger.ms\" = \"2.5\""), 3);
        assert_eq!(turn("\"linger.ms\" = \"0\""), 1, "at least 1 ms");
        assert_eq!(turn("\"#linger.ms\" = \"100\""), 15, "commented out");
        assert_eq!(turn("\"queue.buffering.max.ms\" = \"40\""), 40, "the alias");
    }

    #[test]
    fn a_setting_made_under_its_alias_is_not_raced_by_the_default() {
        let config = |extra: &str| {
            let toml = format!(
                "[[bridges]]\nname = \"b1\"\nservers = \"k:9092\"\n{extra}\n[bridges.properties]\n\"queue.buffering.max.ms\" = \"40\"\n\"delivery.timeout.ms\" = \"9000\"\n"
            );
            let bridge = &PluginConfig::from_toml(&toml).unwrap().bridges[0];
            let map = client_config(bridge, "c").config_map().clone();
            let get = |k: &str| map.get(k).cloned();
            (
                get("linger.ms"),
                get("queue.buffering.max.ms"),
                get("message.timeout.ms"),
                get("delivery.timeout.ms"),
            )
        };
        let (linger, alias, timeout, timeout_alias) = config("");
        assert_eq!((linger, alias.as_deref()), (None, Some("40")));
        assert_eq!((timeout, timeout_alias.as_deref()), (None, Some("9000")));
        // Disk mode's "wait for ever" wins over the bridge's own timeout, under either name.
        let dir = tempfile::tempdir().unwrap();
        let disk = format!("buffer = {{ mode = \"disk\", dir = {:?} }}", dir.path());
        let (_, _, timeout, timeout_alias) = config(&disk);
        assert_eq!((timeout.as_deref(), timeout_alias), (Some("0"), None));
    }

    #[test]
    fn many_entry_producers_are_warned_about_with_their_cost() {
        assert_eq!(too_many_producers(&config("entry", 16)), None, "64 is fine");
        let warning = too_many_producers(&config("entry", 17)).expect("68 producers");
        assert!(
            warning.starts_with(
                "68 Kafka producers (\"b1\" 68): about 340 threads and up to 136 connections"
            ),
            "{warning}"
        );
        assert!(warning.contains("producer_pool = \"bridge\""), "{warning}");
        assert_eq!(
            too_many_producers(&config("bridge", 500)),
            None,
            "shared: 4 producers"
        );
    }
}
