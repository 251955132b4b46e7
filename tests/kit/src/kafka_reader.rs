//! Reading Kafka back: every record of a topic, by assigning its partitions directly
//! (no consumer group: tansu's group join takes over 15 s).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// A record read back from Kafka.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    /// The first header with this name, as text (`None` if absent or null).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_ref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(k, _)| k == name)
    }

    pub fn payload_str(&self) -> String {
        String::from_utf8_lossy(self.payload.as_deref().unwrap_or_default()).into_owned()
    }

    fn from_message(m: &impl Message) -> Record {
        Record {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub fn key_str(&self) -> Option<String> {
        self.key
            .as_ref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
    }
}

/// Reads every record of `topic` from the beginning, until `want` arrived (then for
/// `quiet` more, to catch extras) or `timeout` passed. Assigns partitions directly:
/// no consumer group is involved.
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    want: usize,
    timeout: Duration,
    quiet: Duration,
) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let Some(partitions) = wait_for_partitions(&consumer, topic, deadline) else {
        return Vec::new();
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut stop_at = deadline;
    while Instant::now() < stop_at {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(Record::from_message(&m));
            if out.len() == want {
                stop_at = Instant::now() + quiet;
            }
        }
    }
    let read = out.len();
    read_what_fetches_skipped(&consumer, topic, partitions as i32, &mut out);
    if out.len() > read {
        eprintln!(
            "{topic}: read again {} records tansu's fetches had skipped",
            out.len() - read
        );
        // Each partition in offset order again, as a reader would have seen it.
        out.sort_by_key(|r| (r.partition, r.offset));
    }
    out
}

/// tansu's fetches sometimes answer from past the offset asked for, so that a live
/// reader never sees some stored records (docs/benchmark-history.md): a stretch in the middle
/// of a partition, or its first records. Reads again, from the first offset missing,
/// every partition that holds records below its last one read that were not seen.
/// Records it adds come after the others in `out`.
fn read_what_fetches_skipped(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: i32,
    out: &mut Vec<Record>,
) {
    for _pass in 0..3 {
        let mut tpl = TopicPartitionList::new();
        let mut seen: HashMap<i32, std::collections::BTreeSet<i64>> = HashMap::new();
        for r in out.iter() {
            seen.entry(r.partition).or_default().insert(r.offset);
        }
        for p in 0..partitions {
            let offsets = seen.remove(&p).unwrap_or_default();
            let Some(&last) = offsets.last() else {
                continue;
            };
            let Ok((low, _)) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5)) else {
                continue;
            };
            if let Some(first_missing) = (low..last).find(|o| !offsets.contains(o)) {
                tpl.add_partition_offset(topic, p, Offset::Offset(first_missing))
                    .unwrap();
            }
        }
        if tpl.count() == 0 {
            return;
        }
        consumer.assign(&tpl).unwrap();
        let known: std::collections::HashSet<(i32, i64)> =
            out.iter().map(|r| (r.partition, r.offset)).collect();
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                if !known.contains(&(m.partition(), m.offset())) {
                    out.push(Record::from_message(&m));
                }
            }
        }
    }
}

/// The number of partitions of `topic`, once it exists (`None` if not by `deadline`).
fn wait_for_partitions(consumer: &BaseConsumer, topic: &str, deadline: Instant) -> Option<usize> {
    loop {
        let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
        if let Ok(meta) = meta {
            let n = meta.topics().first().map_or(0, |t| {
                if t.error().is_none() {
                    t.partitions().len()
                } else {
                    0
                }
            });
            if n > 0 {
                return Some(n);
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// [`read_topic`] off the async threads.
pub async fn read(bootstrap: &str, topic: &str, want: usize) -> Vec<Record> {
    let (b, t) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        read_topic(
            &b,
            &t,
            want,
            Duration::from_secs(20),
            Duration::from_millis(300),
        )
    })
    .await
    .unwrap()
}

/// Checks that nothing arrives in `topic` for a while.
pub async fn read_none(bootstrap: &str, topic: &str) -> Vec<Record> {
    let (b, t) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        read_topic(&b, &t, usize::MAX, Duration::from_secs(2), Duration::ZERO)
    })
    .await
    .unwrap()
}

/// Headers of a record as a map (first value of each name).
pub fn header_map(r: &Record) -> HashMap<String, Option<String>> {
    let mut m = HashMap::new();
    for (k, v) in &r.headers {
        m.entry(k.clone())
            .or_insert_with(|| v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()));
    }
    m
}
