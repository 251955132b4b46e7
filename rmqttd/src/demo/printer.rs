//! The demo's printer: every record that lands in the embedded Kafka, on stdout.
//!
//! It assigns partitions itself instead of subscribing: a regex subscription makes the
//! consumer rejoin its group for every new topic, and the mock cluster holds that
//! JoinGroup, so nothing prints from then on, and the consumer's drop then waits for a
//! LeaveGroup queued behind it. Here new topics are found by a metadata scan between
//! short polls and read from their beginning; no group is joined (librdkafka wants a
//! `group.id` for `assign` all the same). The thread ends within one poll of the stop
//! flag, and dropping the printer waits a bounded time for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// How long one poll may block the stop check.
const POLL: Duration = Duration::from_millis(100);
/// How long one metadata request may block it.
const METADATA_WAIT: Duration = Duration::from_millis(500);
/// How often the printer looks for new topics.
const SCAN_EVERY: Duration = Duration::from_millis(300);
/// How long stopping waits for the thread and its consumer's close.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The printing consumer's callbacks: client errors (the embedded Kafka going away at
/// shutdown, for one) are the demo's plumbing, logged at debug level only.
struct Quiet;

impl ClientContext for Quiet {
    fn error(&self, error: KafkaError, reason: &str) {
        log::debug!("demo consumer: {error}: {reason}");
    }
}

impl ConsumerContext for Quiet {}

/// The printing thread; dropping it stops and joins it.
pub struct Printer {
    stop: Arc<AtomicBool>,
    /// Disconnected once the thread has closed its consumer.
    done: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl Printer {
    /// Starts printing every record of every topic of the Kafka at `bootstrap`.
    pub fn start(bootstrap: &str) -> Result<Printer> {
        let consumer: BaseConsumer<Quiet> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "rmqttd-demo-printer")
            .set("enable.auto.commit", "false")
            .create_with_context(Quiet)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("demo-printer".into())
            .spawn(move || {
                run(&consumer, &flag);
                drop(consumer);
                drop(done_tx);
            })?;
        Ok(Printer {
            stop,
            done,
            thread: Some(thread),
        })
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        match self.done.recv_timeout(STOP_WAIT) {
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
            }
            // The thread is left behind; the process is on its way out.
            _ => log::warn!("the demo printer did not stop within {STOP_WAIT:?}"),
        }
    }
}

/// Where to read each assigned partition next: past its last printed record, or from
/// its beginning.
type Positions = HashMap<(String, i32), Offset>;

/// Polls and prints until `stop`, looking for new topics every [`SCAN_EVERY`].
fn run(consumer: &BaseConsumer<Quiet>, stop: &AtomicBool) {
    let mut positions = Positions::new();
    let mut next_scan = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_scan {
            assign_new_topics(consumer, &mut positions);
            next_scan = Instant::now() + SCAN_EVERY;
        }
        match consumer.poll(POLL) {
            Some(Ok(m)) => {
                print_record(&m);
                let next = Offset::Offset(m.offset() + 1);
                positions.insert((m.topic().to_owned(), m.partition()), next);
            }
            Some(Err(e)) => log::debug!("demo consumer: {e}"),
            None => {}
        }
    }
}

/// Adds the partitions of every topic not yet read, from their beginning. Without a
/// joined group there is no incremental assign: the whole assignment is set again,
/// every partition at its position, so that nothing is printed twice.
fn assign_new_topics(consumer: &BaseConsumer<Quiet>, positions: &mut Positions) {
    let metadata = match consumer.fetch_metadata(None, METADATA_WAIT) {
        Ok(m) => m,
        Err(e) => return log::debug!("demo consumer metadata: {e}"),
    };
    let mut wanted = positions.clone();
    for t in metadata.topics() {
        // A topic still being created has no partitions yet: a later scan takes it.
        for p in t.partitions() {
            wanted
                .entry((t.name().to_owned(), p.id()))
                .or_insert(Offset::Beginning);
        }
    }
    if wanted.len() == positions.len() {
        return;
    }
    let assigned =
        TopicPartitionList::from_topic_map(&wanted).and_then(|list| consumer.assign(&list));
    match assigned {
        Ok(()) => *positions = wanted,
        Err(e) => log::warn!("demo printer: cannot read the new topics yet: {e}"),
    }
}

fn print_record(m: &BorrowedMessage<'_>) {
    let key = m
        .key()
        .map_or_else(|| "-".into(), |k| String::from_utf8_lossy(k).into_owned());
    println!(
        "kafka <- topic={} partition={} offset={} key={key}",
        m.topic(),
        m.partition(),
        m.offset()
    );
    if let Some(h) = m.headers() {
        let pairs: Vec<String> = h
            .iter()
            .map(|h| {
                let value = h
                    .value
                    .map_or_else(|| "null".into(), String::from_utf8_lossy);
                format!("{}={value}", h.key)
            })
            .collect();
        println!("   headers: {}", pairs.join(", "));
    }
    let payload = m
        .payload()
        .map_or_else(|| "null".into(), String::from_utf8_lossy);
    println!("   payload: {payload}");
}
