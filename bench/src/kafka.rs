//! The Kafka side: a fresh tansu process per run, and a reader that counts what arrived.
//!
//! The reader is a librdkafka consumer that `assign`s every partition from the beginning
//! (tansu's consumer-group join takes over 15 s) on a thread of its own. It reads during
//! the load and after it, and takes a record's arrival time when it receives it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bridge_testkit::procs::free_port;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::load::now_us;
use crate::process::{wait_for_port, Proc};

/// A tansu broker with in-memory storage.
pub struct Tansu {
    proc: Proc,
    url: String,
    pub bootstrap: String,
}

impl Tansu {
    pub fn start(bin: &Path, log: &Path) -> Result<Tansu> {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut cmd = Command::new(bin);
        cmd.args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"]);
        let mut proc = Proc::spawn("tansu", cmd, log, false)?;
        wait_for_port(
            &mut proc,
            ([127, 0, 0, 1], port).into(),
            Duration::from_secs(15),
        )?;
        Ok(Tansu {
            proc,
            url,
            bootstrap: format!("127.0.0.1:{port}"),
        })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn create_topic(&self, bin: &Path, name: &str, partitions: u32) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = Command::new(bin)
                .args(["topic", "create", name, "--broker", &self.url])
                .args(["--partitions", &partitions.to_string()])
                .output()
                .context("cannot run `tansu topic create`")?;
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "tansu topic create {name} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn stop(self) -> Result<()> {
        self.proc.terminate(Duration::from_secs(5))
    }
}

/// The steady-state window, in µs since the epoch.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub start_us: u64,
    pub end_us: u64,
    /// When the configuration is reloaded, if it is.
    pub reload_us: Option<u64>,
}

impl Window {
    fn contains(&self, t_us: u64) -> bool {
        (self.start_us..self.end_us).contains(&t_us)
    }

    /// Within half a second of the reload.
    fn around_reload(&self, t_us: u64) -> bool {
        self.reload_us.is_some_and(|r| t_us.abs_diff(r) <= 500_000)
    }
}

/// What [`Received::key_order`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeyOrder {
    pub out_of_order: u64,
    pub keys_split: u64,
}

/// What the reader found in Kafka.
#[derive(Default)]
pub struct Received {
    /// Per publisher, which sequence numbers arrived.
    seen: Vec<Bits>,
    /// Records that arrived more than once.
    pub duplicates: u64,
    /// Records whose arrival time lies in the window.
    pub arrived_in_window: u64,
    /// Publish-to-arrival latencies (µs) of the records published in the window, but
    /// not around the reload.
    pub latencies_us: Vec<u64>,
    /// The same, of the records published within half a second of the reload.
    pub reload_latencies_us: Vec<u64>,
    /// Records whose key is their payload's `device_id`.
    pub keyed: u64,
    /// Where each of those landed, `(partition, offset, publisher, seq)`: a key is its
    /// publisher, so its sequence numbers must rise through its partition.
    keyed_at: Vec<(i32, i64, u32, u64)>,
    /// Records that are not the benchmark's.
    pub foreign: u64,
    /// Consumer errors (the first one is kept).
    pub errors: u64,
    /// Per partition, the next offset expected: a record at a later offset leaves a gap,
    /// one at an earlier offset is a rewind.
    next_offset: Vec<i64>,
    /// The offset ranges `(partition, start..end)` the live read skipped. (tansu
    /// sometimes answers a fetch with records past the offset asked for while
    /// producers append to the partition; the skipped records are there when read
    /// again.)
    gaps: Vec<(i32, std::ops::Range<i64>)>,
    /// Offsets the live read skipped, and how many of them were never read.
    pub offsets_skipped: u64,
    pub offsets_unread: u64,
    pub offset_rewinds: u64,
    pub first_error: Option<String>,
    /// Arrival of the last record, µs since the epoch.
    pub last_arrival_us: Option<u64>,
}

impl Received {
    /// Distinct records of `publisher` with a sequence number below `count`.
    pub fn distinct_below(&self, publisher: usize, count: u64) -> u64 {
        self.seen
            .get(publisher)
            .map_or(0, |bits| bits.count_below(count))
    }

    /// The first and the last sequence number below `count` that `publisher` has no
    /// record of.
    pub fn missing_span(&self, publisher: usize, count: u64) -> Option<(u64, u64)> {
        let bits = self.seen.get(publisher);
        let missing = |i: &u64| !bits.is_some_and(|b| b.contains(*i));
        let first = (0..count).find(missing)?;
        let last = (0..count).rev().find(missing)?;
        Some((first, last))
    }

    /// Each key's order in Kafka, from everything read (the live read and the gaps
    /// read again): records that sit after a later record of their key in its
    /// partition, and keys found in more than one partition.
    pub fn key_order(&mut self) -> KeyOrder {
        self.keyed_at.sort_unstable();
        let mut last: HashMap<u32, (i32, u64)> = HashMap::new();
        let mut order = KeyOrder::default();
        for &(partition, _, key, seq) in &self.keyed_at {
            match last.insert(key, (partition, seq)) {
                Some((p, _)) if p != partition => order.keys_split += 1,
                Some((_, before)) if before > seq => order.out_of_order += 1,
                _ => {}
            }
        }
        order
    }

    /// Distinct records of every publisher.
    pub fn distinct(&self) -> u64 {
        self.seen.iter().map(|b| b.count_below(u64::MAX)).sum()
    }

    /// A record of the live read: counted, and timed if published in the window.
    fn record(&mut self, m: &BorrowedMessage<'_>, window: Window) {
        let arrival = now_us();
        self.last_arrival_us = Some(arrival);
        if let Ok(p) = usize::try_from(m.partition()) {
            if self.next_offset.len() <= p {
                self.next_offset.resize(p + 1, 0);
            }
            let expected = self.next_offset[p];
            match m.offset() {
                o if o > expected => {
                    self.offsets_skipped += (o - expected) as u64;
                    self.gaps.push((m.partition(), expected..o));
                }
                o if o < expected => self.offset_rewinds += 1,
                _ => {}
            }
            self.next_offset[p] = m.offset() + 1;
        }
        if window.contains(arrival) {
            self.arrived_in_window += 1;
        }
        if let Some(f) = self.identify(m) {
            let latency = arrival.saturating_sub(f.t_us);
            if window.around_reload(f.t_us) {
                self.reload_latencies_us.push(latency);
            } else if window.contains(f.t_us) {
                self.latencies_us.push(latency);
            }
        }
    }

    /// Counts a record as found; `None` if it is a duplicate or not the benchmark's.
    fn identify(&mut self, m: &BorrowedMessage<'_>) -> Option<Fields> {
        let Some(f) = m.payload().and_then(Fields::parse) else {
            self.foreign += 1;
            return None;
        };
        if self.seen.len() <= f.publisher {
            self.seen.resize_with(f.publisher + 1, Bits::default);
        }
        if !self.seen[f.publisher].insert(f.seq) {
            self.duplicates += 1;
            return None;
        }
        let key_publisher = m
            .key()
            .and_then(|k| k.strip_prefix(b"dev-"))
            .and_then(|k| std::str::from_utf8(k).ok()?.parse::<usize>().ok());
        if key_publisher == Some(f.publisher) {
            self.keyed += 1;
            let at = (m.partition(), m.offset(), f.publisher as u32, f.seq);
            self.keyed_at.push(at);
        }
        Some(f)
    }

    /// Reads the offsets the live read skipped (up to three passes). Their records
    /// count as found, without an arrival time.
    fn fill_gaps(&mut self, consumer: &BaseConsumer, topic: &str) -> Result<()> {
        let mut missing: HashSet<(i32, i64)> = self
            .gaps
            .iter()
            .flat_map(|(p, r)| r.clone().map(move |o| (*p, o)))
            .collect();
        for _ in 0..3 {
            if missing.is_empty() {
                break;
            }
            // Per partition, from its first missing offset to past its last one.
            let mut span: HashMap<i32, (i64, i64)> = HashMap::new();
            for &(p, o) in &missing {
                let e = span.entry(p).or_insert((o, o));
                e.0 = e.0.min(o);
                e.1 = e.1.max(o);
            }
            let mut tpl = TopicPartitionList::new();
            for (&p, &(first, _)) in &span {
                tpl.add_partition_offset(topic, p, Offset::Offset(first))?;
            }
            consumer.assign(&tpl)?;
            let deadline = Instant::now() + Duration::from_secs(30);
            while !span.is_empty() && Instant::now() < deadline {
                let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let (p, o) = (m.partition(), m.offset());
                if missing.remove(&(p, o)) {
                    self.identify(&m);
                }
                if span.get(&p).is_some_and(|&(_, last)| o >= last) {
                    span.remove(&p);
                }
            }
        }
        self.offsets_unread = missing.len() as u64;
        Ok(())
    }
}

/// A growable bit set of sequence numbers.
#[derive(Default)]
struct Bits(Vec<u64>);

impl Bits {
    /// Sets `i`; false if it was set already.
    fn insert(&mut self, i: u64) -> bool {
        let (word, bit) = ((i / 64) as usize, i % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        let was = self.0[word] & (1 << bit) != 0;
        self.0[word] |= 1 << bit;
        !was
    }

    fn contains(&self, i: u64) -> bool {
        usize::try_from(i / 64)
            .ok()
            .and_then(|w| self.0.get(w))
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn count_below(&self, n: u64) -> u64 {
        let full = usize::try_from(n / 64).unwrap_or(usize::MAX);
        let mut count: u64 = self
            .0
            .iter()
            .take(full)
            .map(|w| u64::from(w.count_ones()))
            .sum();
        if let Some(w) = self.0.get(full) {
            let mask = (1u64 << (n % 64)) - 1;
            count += u64::from((w & mask).count_ones());
        }
        count
    }
}

/// The fields of a benchmark payload the reader needs. Its layout is fixed (see
/// `load::payload`), so they are read from its first bytes without a JSON parser; as
/// configuration l encodes it (Confluent's framing, then Avro: `device_id`, `pub`,
/// `seq`, `t_us` in `bench/telemetry.avsc`'s order), from the Avro encoding.
#[derive(Debug, PartialEq, Eq)]
struct Fields {
    publisher: usize,
    seq: u64,
    t_us: u64,
}

impl Fields {
    fn parse(payload: &[u8]) -> Option<Fields> {
        if payload.first() == Some(&0) {
            return Fields::from_avro(payload.get(5..)?);
        }
        let head = &payload[..payload.len().min(128)];
        Some(Fields {
            publisher: usize::try_from(number_after(head, b"\"pub\":")?).ok()?,
            seq: number_after(head, b"\"seq\":")?,
            t_us: number_after(head, b"\"t_us\":")?,
        })
    }
}

impl Fields {
    fn from_avro(mut avro: &[u8]) -> Option<Fields> {
        let device_len = usize::try_from(zigzag(&mut avro)?).ok()?;
        avro = avro.get(device_len..)?;
        Some(Fields {
            publisher: usize::try_from(zigzag(&mut avro)?).ok()?,
            seq: u64::try_from(zigzag(&mut avro)?).ok()?,
            t_us: u64::try_from(zigzag(&mut avro)?).ok()?,
        })
    }
}

/// Avro's `int` or `long` at the start of `bytes`, which it then skips.
fn zigzag(bytes: &mut &[u8]) -> Option<i64> {
    let mut z = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        z |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some((z >> 1) as i64 ^ -((z & 1) as i64));
        }
    }
    None
}

fn number_after(haystack: &[u8], key: &[u8]) -> Option<u64> {
    let at = haystack.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = haystack[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&haystack[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// How the reader ends once the publishers stopped: when nothing new arrived for
/// `quiet`, or after `max`.
#[derive(Clone, Copy)]
pub struct Drain {
    pub quiet: Duration,
    pub max: Duration,
}

/// A reader on its own thread.
pub struct Reader {
    window: mpsc::Sender<Window>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Received>>,
}

impl Reader {
    /// Assigns every partition of `topic` from the beginning. Reading starts when
    /// [`Reader::begin`] gives the window.
    pub fn start(bootstrap: &str, topic: &str, partitions: u32, drain: Drain) -> Result<Reader> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "bridge-bench")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            // The arrival time is taken when a record is read, so a fetch must return as
            // soon as tansu has something: a 10 ms wait added 3.5 ms to the p50 and p99
            // measured at 80k msg/s. The extra fetches show in tansu's CPU column.
            .set("fetch.wait.max.ms", "1")
            .create()
            .context("cannot create the Kafka reader")?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, i32::try_from(p)?, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let (window_tx, window_rx) = mpsc::channel();
        let topic = topic.to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("kafka-reader".into())
            .spawn(move || {
                let mut got = read(&consumer, &window_rx, &s, drain)?;
                got.fill_gaps(&consumer, &topic)?;
                Ok(got)
            })?;
        Ok(Reader {
            window: window_tx,
            stop,
            thread,
        })
    }

    pub fn begin(&self, window: Window) -> Result<()> {
        self.window
            .send(window)
            .map_err(|_| anyhow!("the Kafka reader stopped"))
    }

    /// Tells the reader that the publishers stopped, and waits for it to drain.
    pub fn finish(self) -> Result<Received> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow!("the Kafka reader panicked"))?
    }
}

fn read(
    consumer: &BaseConsumer,
    window: &mpsc::Receiver<Window>,
    stop: &AtomicBool,
    drain: Drain,
) -> Result<Received> {
    let window = window
        .recv()
        .map_err(|_| anyhow!("no measurement window"))?;
    let mut got = Received::default();
    let mut last_new = Instant::now();
    let mut stopped_at = None;
    loop {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                got.record(&m, window);
                last_new = Instant::now();
            }
            Some(Err(e)) => {
                got.errors += 1;
                got.first_error.get_or_insert_with(|| e.to_string());
            }
            None => {}
        }
        if stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let since = *stopped_at.get_or_insert(now);
            if now - last_new.max(since) >= drain.quiet || now - since >= drain.max {
                return Ok(got);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::payload;

    #[test]
    fn fields_of_a_payload() {
        let p = payload(3, 123_456, 1_700_000_000_123_456, 256);
        assert_eq!(
            Fields::parse(&p),
            Some(Fields {
                publisher: 3,
                seq: 123_456,
                t_us: 1_700_000_000_123_456
            })
        );
        assert_eq!(Fields::parse(b"hello"), None);
    }

    #[test]
    fn fields_of_a_payload_encoded_as_configuration_l_encodes_it() {
        use rmqtt_bridge_egress_kafka::config::SchemaFormat;
        use rmqtt_bridge_egress_kafka::schema::Encoder;
        let avsc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("telemetry.avsc");
        let schema = std::fs::read_to_string(avsc).unwrap();
        let id = crate::config::AVRO_ID;
        let encoder = Encoder::compile(SchemaFormat::Avro, &schema, None, id).unwrap();
        let mut avro = Vec::new();
        let p = payload(3, 123_456, 1_700_000_000_123_456, 256);
        encoder.encode(&p, &mut avro).unwrap();
        assert_eq!(Fields::parse(&avro), Fields::parse(&p));
        assert!(Fields::parse(&avro).is_some());
        assert_eq!(Fields::parse(&avro[..8]), None, "cut short");
    }

    #[test]
    fn bits() {
        let mut b = Bits::default();
        assert!(b.insert(0));
        assert!(b.insert(64));
        assert!(b.insert(200));
        assert!(!b.insert(64));
        assert_eq!(b.count_below(0), 0);
        assert_eq!(b.count_below(1), 1);
        assert_eq!(b.count_below(64), 1);
        assert_eq!(b.count_below(65), 2);
        assert_eq!(b.count_below(u64::MAX), 3);
        assert!(b.contains(64) && !b.contains(65) && !b.contains(1 << 20));
        let mut r = Received::default();
        r.seen.push(b);
        assert_eq!(r.missing_span(0, 1), None);
        assert_eq!(r.missing_span(0, 201), Some((1, 199)));
        assert_eq!(r.missing_span(1, 2), Some((0, 1)));
    }

    #[test]
    fn key_order_is_checked_in_offset_order() {
        // Read out of offset order (a gap read again), but in order in Kafka.
        let mut r = Received {
            keyed_at: vec![(0, 2, 7, 12), (0, 0, 7, 10), (1, 0, 8, 1), (0, 1, 7, 11)],
            ..Received::default()
        };
        assert_eq!(r.key_order(), KeyOrder::default());
        r.keyed_at.push((0, 3, 7, 9));
        r.keyed_at.push((1, 1, 7, 13));
        let found = r.key_order();
        assert_eq!((found.out_of_order, found.keys_split), (1, 1));
    }
}
