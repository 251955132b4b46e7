//! Keyed records by partition. When the producers know a topic's partition count, the
//! plugin partitions that topic's keyed records itself, with librdkafka's own
//! partitioner functions, and each partition is written by one producer (partition mod
//! producers). A linger window then makes one batch per partition instead of one per
//! partition and producer, which costs librdkafka's threads and Kafka less
//! (docs/benchmark-history.md, "Keyed records by partition"). A key keeps its order: while the
//! count holds, its partition and so its producer are fixed.
//!
//! A topic's keyed records are routed one way for the producers' life, decided at the
//! topic's first keyed record: by partition when the count is known by then (from the
//! metadata fetched at start), by key hash otherwise. Moving a key from its hash's
//! producer to its partition's later could let its newer records overtake older ones
//! still queued.

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::RwLock;
use rdkafka::metadata::Metadata;
use rdkafka::statistics::Statistics;
use serde_json::{json, Value};

use crate::config::BridgeConfig;

/// librdkafka's partitioner for non-empty keys, by the `partitioner` property. The
/// `_random` variants differ from their base only for empty or missing keys, which the
/// plugin leaves to librdkafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioner {
    /// CRC32 of the key: `consistent` and `consistent_random` (librdkafka's default).
    Consistent,
    /// Java's partitioner: `murmur2` and `murmur2_random`.
    Murmur2,
    /// `fnv1a` and `fnv1a_random`.
    Fnv1a,
    /// `random`, or a value librdkafka will refuse: no key has a partition of its own.
    Random,
}

impl Partitioner {
    /// The bridge's partitioner (`[bridges.properties] partitioner`).
    pub fn of(bridge: &BridgeConfig) -> Partitioner {
        let set = bridge
            .active_properties()
            .find(|(k, _)| k.trim() == "partitioner")
            .map(|(_, v)| v.trim());
        match set.unwrap_or("consistent_random") {
            "consistent" | "consistent_random" => Partitioner::Consistent,
            "murmur2" | "murmur2_random" => Partitioner::Murmur2,
            "fnv1a" | "fnv1a_random" => Partitioner::Fnv1a,
            _ => Partitioner::Random,
        }
    }

    /// The partition librdkafka gives `key` among `count`; `None` for an empty key or
    /// the random partitioner, whose records have no partition of their own.
    #[allow(unsafe_code)]
    #[inline]
    pub fn partition(self, key: &[u8], count: u32) -> Option<i32> {
        type Function = unsafe extern "C" fn(
            *const rdkafka_sys::rd_kafka_topic_t,
            *const std::ffi::c_void,
            usize,
            i32,
            *mut std::ffi::c_void,
            *mut std::ffi::c_void,
        ) -> i32;
        let count = i32::try_from(count).ok().filter(|&c| c > 0)?;
        let function: Function = match self {
            _ if key.is_empty() => return None,
            Partitioner::Consistent => rdkafka_sys::rd_kafka_msg_partitioner_consistent,
            Partitioner::Murmur2 => rdkafka_sys::rd_kafka_msg_partitioner_murmur2,
            Partitioner::Fnv1a => rdkafka_sys::rd_kafka_msg_partitioner_fnv1a,
            Partitioner::Random => return None,
        };
        // SAFETY: these three functions hash `keylen` bytes at `key` and take the rest
        // modulo `partition_cnt` (> 0 here); they read neither the topic nor the opaque
        // pointers (librdkafka's rdkafka_msg.c), so null is fine for those. `key` is a
        // live slice of that length.
        let p = unsafe {
            function(
                ptr::null(),
                key.as_ptr().cast(),
                key.len(),
                count,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        Some(p)
    }
}

/// What the producers know of one topic: its partition count, and how its keyed
/// records are routed, which the first of them decides.
#[derive(Debug, Default)]
pub struct TopicPartitions(AtomicU32);

/// Not decided yet; the count is unknown.
const UNDECIDED: u32 = 0;
/// Decided: keyed records take their key hash's producer, librdkafka partitions them.
const BY_KEY_HASH: u32 = u32::MAX;

impl TopicPartitions {
    /// Takes a partition count from metadata or statistics. It replaces the last one
    /// (partitions added, or a topic made again), unless the topic routes by key hash.
    pub fn learn(&self, count: u32) {
        if count != UNDECIDED && count != BY_KEY_HASH {
            let _ = self
                .0
                .fetch_update(Relaxed, Relaxed, |s| (s != BY_KEY_HASH).then_some(count));
        }
    }

    /// The partition count to route a keyed record by, or `None`: by key hash. The
    /// first call decides for good. One atomic word, so the decision and a count learned
    /// at the same moment cannot disagree.
    #[inline]
    pub fn for_keyed_record(&self) -> Option<u32> {
        match self.0.load(Relaxed) {
            BY_KEY_HASH => None,
            UNDECIDED => match self
                .0
                .compare_exchange(UNDECIDED, BY_KEY_HASH, Relaxed, Relaxed)
            {
                Ok(_) | Err(BY_KEY_HASH) => None,
                Err(count) => Some(count),
            },
            count => Some(count),
        }
    }

    /// For the entry's attributes: the count, and the routing once decided.
    fn to_json(&self, topic: &str) -> Value {
        let (partitions, keyed) = match self.0.load(Relaxed) {
            UNDECIDED => (None, "undecided"),
            BY_KEY_HASH => (None, "by_key_hash"),
            count => (Some(count), "by_partition"),
        };
        json!({ "topic": topic, "partitions": partitions, "keyed_records": keyed })
    }
}

/// A topic the producers track, as an entry with that constant topic holds it, so that
/// its records find their topic's state without a lookup.
#[derive(Debug, Clone)]
pub struct TrackedTopic {
    name: Arc<str>,
    partitions: Arc<TopicPartitions>,
}

impl TrackedTopic {
    /// The topic's state if `topic` is this topic.
    #[inline]
    pub fn get(&self, topic: &str) -> Option<&TopicPartitions> {
        (*self.name == *topic).then_some(&*self.partitions)
    }

    pub fn to_json(&self) -> Value {
        self.partitions.to_json(&self.name)
    }
}

/// The topics a set of producers tracks: the constant topics of the entries they serve.
/// Written when entries are built and when counts are learned; read per keyed record
/// only for topics an entry does not hold (templates, a module's own topics).
#[derive(Debug, Default)]
pub struct Topics {
    tracked: RwLock<Vec<TrackedTopic>>,
    /// Whether `tracked` has any: spares the lock when it has none.
    any: AtomicBool,
}

impl Topics {
    /// The topic's state, tracked from now on.
    pub fn track(&self, name: &str) -> TrackedTopic {
        let mut tracked = self.tracked.write();
        if let Some(t) = tracked.iter().find(|t| *t.name == *name) {
            return t.clone();
        }
        let t = TrackedTopic {
            name: name.into(),
            partitions: Arc::default(),
        };
        tracked.push(t.clone());
        self.any.store(true, Relaxed);
        t
    }

    /// The names of the tracked topics, for the metadata fetched at start.
    pub fn names(&self) -> Vec<Arc<str>> {
        self.tracked.read().iter().map(|t| t.name.clone()).collect()
    }

    /// [`TopicPartitions::for_keyed_record`] for a topic no entry holds; `None` when
    /// the topic is not tracked.
    pub fn for_keyed_record(&self, topic: &str) -> Option<u32> {
        if !self.any.load(Relaxed) {
            return None;
        }
        let tracked = self.tracked.read();
        tracked
            .iter()
            .find_map(|t| t.get(topic))?
            .for_keyed_record()
    }

    /// Learns the partition counts of the tracked topics in `metadata`.
    pub fn learn_from_metadata(&self, metadata: &Metadata) {
        for topic in metadata.topics() {
            if topic.error().is_none() {
                self.learn(topic.name(), topic.partitions().len());
            }
        }
    }

    /// Learns the partition counts of the tracked topics in a producer's statistics:
    /// librdkafka refreshes its metadata on its own (`topic.metadata.refresh.interval.ms`),
    /// and its statistics carry the result.
    pub fn learn_from_statistics(&self, statistics: &Statistics) {
        if !self.any.load(Relaxed) {
            return;
        }
        for (name, topic) in &statistics.topics {
            let count = topic
                .partitions
                .values()
                .filter(|p| p.partition >= 0 && !p.unknown)
                .count();
            self.learn(name, count);
        }
    }

    /// Learns `name`'s partition count, if the topic is tracked.
    pub fn learn(&self, name: &str, count: usize) {
        let tracked = self.tracked.read();
        if let (Some(t), Ok(count)) = (tracked.iter().find(|t| *t.name == *name), count.try_into())
        {
            t.partitions.learn(count);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bridge_testkit::MockKafka;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::ClientConfig;

    use super::*;
    use crate::config::PluginConfig;

    /// Keyed records that librdkafka partitions land where [`Partitioner::partition`]
    /// says, for each value of `partitioner` (and with none set).
    #[tokio::test]
    async fn the_partitions_are_librdkafkas() {
        let kafka = MockKafka::start(1);
        kafka.create_topic("t", 7);
        for name in [
            None,
            Some("consistent"),
            Some("murmur2_random"),
            Some("murmur2"),
            Some("fnv1a_random"),
            Some("fnv1a"),
        ] {
            let set = name.map_or(String::new(), |n| {
                format!("[bridges.properties]\npartitioner = \"{n}\"\n")
            });
            let toml = format!("[[bridges]]\nname = \"b\"\nservers = \"k:9092\"\n{set}");
            let ours = Partitioner::of(&PluginConfig::from_toml(&toml).unwrap().bridges[0]);
            let producer: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", &kafka.bootstrap)
                .set("partitioner", name.unwrap_or("consistent_random"))
                .create()
                .unwrap();
            let keys: Vec<String> = (0..100).map(|k| format!("key-{k}")).collect();
            let sent: Vec<_> = keys
                .iter()
                .map(|key| {
                    producer
                        .send_result(FutureRecord::<str, str>::to("t").key(key).payload(""))
                        .unwrap()
                })
                .collect();
            for (key, delivery) in keys.iter().zip(sent) {
                let delivered = tokio::time::timeout(Duration::from_secs(10), delivery).await;
                let partition = delivered.unwrap().unwrap().unwrap().partition;
                assert_eq!(
                    ours.partition(key.as_bytes(), 7),
                    Some(partition),
                    "{name:?} {key}"
                );
            }
        }
    }

    #[test]
    fn a_count_known_before_the_first_keyed_record_routes_by_partition() {
        let t = TopicPartitions::default();
        t.learn(4);
        assert_eq!(t.for_keyed_record(), Some(4));
        t.learn(6);
        assert_eq!(t.for_keyed_record(), Some(6), "partitions added");
        assert_eq!(t.to_json("t")["keyed_records"], "by_partition");
    }

    #[test]
    fn a_first_keyed_record_without_a_count_routes_by_key_hash_for_good() {
        let t = TopicPartitions::default();
        assert_eq!(t.to_json("t")["keyed_records"], "undecided");
        assert_eq!(t.for_keyed_record(), None);
        t.learn(4);
        assert_eq!(t.for_keyed_record(), None);
        assert_eq!(t.to_json("t")["keyed_records"], "by_key_hash");
    }

    #[test]
    fn entries_with_one_topic_share_its_state() {
        let topics = Topics::default();
        assert_eq!(topics.for_keyed_record("t"), None, "nothing tracked");
        let a = topics.track("t");
        let b = topics.track("t");
        assert!(Arc::ptr_eq(&a.partitions, &b.partitions));
        assert!(a.get("u").is_none());
        topics.learn("t", 3);
        topics.learn("u", 5);
        assert_eq!(topics.names(), [Arc::from("t")]);
        assert_eq!(
            b.get("t").and_then(TopicPartitions::for_keyed_record),
            Some(3)
        );
        assert_eq!(topics.for_keyed_record("t"), Some(3));
        assert_eq!(topics.for_keyed_record("u"), None, "not tracked");
    }

    #[test]
    fn empty_keys_and_the_random_partitioner_give_no_partition() {
        assert_eq!(Partitioner::Consistent.partition(b"", 4), None);
        assert_eq!(Partitioner::Random.partition(b"k", 4), None);
        assert_eq!(Partitioner::Murmur2.partition(b"k", 0), None);
        for p in [
            Partitioner::Consistent,
            Partitioner::Murmur2,
            Partitioner::Fnv1a,
        ] {
            let all: Vec<_> = (0..200)
                .map(|i| p.partition(format!("k{i}").as_bytes(), 4))
                .collect();
            assert!(all.iter().all(|p| matches!(p, Some(0..=3))), "{all:?}");
            assert_eq!(
                p.partition(b"k7", 4),
                all[7],
                "the same key, the same partition"
            );
        }
    }
}
