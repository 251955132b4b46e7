//! The MQTT load: `n` rumqttc (MQTT 3.1.1) publishers, each on its own connection,
//! publishing as fast as the protocol lets them, or at a fixed rate.
//!
//! At a fixed rate each publisher follows a schedule: message `k` is due `k / rate` after
//! the start. A publisher ahead of it sleeps until the next message is due (to the
//! timer's millisecond, so messages leave in small bursts); one behind it publishes at
//! once, so an offered rate the broker cannot take shows as an ingest rate below it.
//!
//! QoS 1: the client keeps its in-flight window (100) full; a message counts once its
//! PUBACK arrived. QoS 0: a message counts once the client wrote it to its socket.
//! Acknowledgements and writes happen in publish order, so the counted messages of a
//! publisher are exactly its sequence numbers `0..count`.
//!
//! A publisher whose connection the broker closes reconnects at once, like a device
//! would, and rumqttc resends its unacknowledged publishes; the disconnects are counted.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::task::JoinHandle;

/// One load: a QoS and a payload size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    pub qos: u8,
    pub size: usize,
}

/// The smallest payload that holds the JSON fields around the padding.
const MIN_SIZE: usize = 128;

impl FromStr for Load {
    type Err = String;

    /// `qos0-256`, `qos1-4k`, ...
    fn from_str(s: &str) -> Result<Load, String> {
        let bad = || format!("`{s}` is not a load (e.g. qos0-256, qos1-4k)");
        let (qos, size) = s.split_once('-').ok_or_else(bad)?;
        let qos = match qos {
            "qos0" => 0,
            "qos1" => 1,
            _ => return Err(bad()),
        };
        let size = match size.strip_suffix('k') {
            Some(k) => k.parse::<usize>().map(|k| k * 1024),
            None => size.parse(),
        }
        .map_err(|_| bad())?;
        if size < MIN_SIZE {
            return Err(format!("{s}: payloads must be at least {MIN_SIZE} bytes"));
        }
        Ok(Load { qos, size })
    }
}

impl fmt::Display for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.size.is_multiple_of(1024) {
            write!(f, "qos{}-{}k", self.qos, self.size / 1024)
        } else {
            write!(f, "qos{}-{}", self.qos, self.size)
        }
    }
}

/// Microseconds since the Unix epoch: the clock of `t_us` and of Kafka arrivals.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The MQTT topic of publisher `i`: `bench/<site>/<line>/telemetry`.
pub fn topic(i: u32) -> String {
    format!("bench/site{}/line{i}/telemetry", i % 2)
}

/// A JSON object of exactly `size` bytes:
/// `{"device_id":"dev-<p>","pub":<p>,"seq":<n>,"t_us":<µs>,"pad":"xx…"}`.
pub fn payload(publisher: u32, seq: u64, t_us: u64, size: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(
        format!(
            r#"{{"device_id":"dev-{publisher}","pub":{publisher},"seq":{seq},"t_us":{t_us},"pad":""#
        )
        .as_bytes(),
    );
    v.resize(size - 2, b'x');
    v.extend_from_slice(b"\"}");
    v
}

/// What one publisher counted.
#[derive(Default)]
struct Counters {
    /// Publishes handed to the client.
    issued: AtomicU64,
    /// Publishes acknowledged (QoS 1) or written (QoS 0).
    done: AtomicU64,
    /// Connections the broker closed (or that failed).
    disconnects: AtomicU64,
    /// The broker could not be reached again: the publisher stopped.
    failed: AtomicBool,
}

struct Publisher {
    client: AsyncClient,
    counters: Arc<Counters>,
    eventloop: JoinHandle<()>,
    publishing: Option<JoinHandle<()>>,
}

/// Connected publishers.
pub struct Publishers {
    load: Load,
    list: Vec<Publisher>,
    /// The first connection error, if any.
    error: Arc<Mutex<Option<String>>>,
}

/// What the publishers did over the whole run.
pub struct Published {
    /// Per publisher, the publishes acknowledged (QoS 1) or written (QoS 0): its
    /// sequence numbers `0..n`.
    pub per_publisher: Vec<u64>,
    /// Publishes handed to the clients but never acknowledged or written.
    pub unconfirmed: u64,
    pub disconnects: u64,
    /// The first connection error, if any.
    pub error: Option<String>,
}

impl Publishers {
    /// Connects `n` publishers and waits for their CONNACKs.
    /// `n` publishers on `addr`, with client ids `<prefix>-<i>` (distinct across the
    /// nodes of a cluster, where a shared id would take a session over).
    pub async fn connect(addr: SocketAddr, prefix: &str, n: u32, load: Load) -> Result<Publishers> {
        let error = Arc::new(Mutex::new(None));
        let mut list = Vec::new();
        for i in 0..n {
            let mut opts =
                MqttOptions::new(format!("{prefix}-{i}"), addr.ip().to_string(), addr.port());
            opts.set_keep_alive(Duration::from_secs(30))
                .set_clean_session(true)
                .set_inflight(100)
                .set_max_packet_size(64 * 1024, 64 * 1024);
            // A short request queue: a message's t_us is taken just before it enters it.
            let (client, eventloop) = AsyncClient::new(opts, 10);
            let counters = Arc::new(Counters::default());
            let (conn_tx, conn_rx) = tokio::sync::oneshot::channel();
            let eventloop = tokio::spawn(drive(
                eventloop,
                load.qos,
                counters.clone(),
                conn_tx,
                error.clone(),
            ));
            match tokio::time::timeout(Duration::from_secs(10), conn_rx).await {
                Ok(Ok(())) => {}
                _ => {
                    let e = error.lock().expect("lock").clone();
                    bail!(
                        "publisher {i} could not connect to {addr}: {}",
                        e.unwrap_or_else(|| "no CONNACK within 10 s".into())
                    );
                }
            }
            list.push(Publisher {
                client,
                counters,
                eventloop,
                publishing: None,
            });
        }
        Ok(Publishers { load, list, error })
    }

    /// Starts publishing until `stop` is set: as fast as possible, or `rate` messages per
    /// second in all, spread evenly over the publishers.
    pub fn start(&mut self, stop: &Arc<AtomicBool>, rate: Option<u32>) {
        let Load { qos, size } = self.load;
        let interval = rate.map(|r| Duration::from_secs_f64(self.list.len() as f64 / r as f64));
        let qos = if qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        for (i, p) in self.list.iter_mut().enumerate() {
            let i = i as u32;
            let (client, counters, stop) = (p.client.clone(), p.counters.clone(), stop.clone());
            p.publishing = Some(tokio::spawn(async move {
                let topic = topic(i);
                let mut seq = 0;
                let start = tokio::time::Instant::now();
                while !stop.load(Ordering::Relaxed) && !counters.failed.load(Ordering::Relaxed) {
                    if let Some(interval) = interval {
                        let due = start + interval * seq as u32;
                        if due > tokio::time::Instant::now() {
                            tokio::time::sleep_until(due).await;
                        }
                    }
                    let body = payload(i, seq, now_us(), size);
                    if client.publish(&topic, qos, false, body).await.is_err() {
                        break;
                    }
                    seq += 1;
                    counters.issued.store(seq, Ordering::Relaxed);
                }
            }));
        }
    }

    /// Publishes acknowledged (QoS 1) or written (QoS 0) so far, all publishers.
    pub fn done(&self) -> u64 {
        self.list
            .iter()
            .map(|p| p.counters.done.load(Ordering::Relaxed))
            .sum()
    }

    /// After `stop` was set: waits (up to `timeout`) until every issued publish is
    /// acknowledged or written, then disconnects.
    pub async fn finish(self, timeout: Duration) -> Published {
        for p in &self.list {
            if let Some(task) = &p.publishing {
                while !task.is_finished() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        let deadline = Instant::now() + timeout;
        let settled = |p: &Publisher| {
            p.counters.failed.load(Ordering::Relaxed)
                || p.counters.done.load(Ordering::Relaxed)
                    >= p.counters.issued.load(Ordering::Relaxed)
        };
        while !self.list.iter().all(settled) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut per_publisher = Vec::new();
        let mut unconfirmed = 0;
        for p in &self.list {
            let (issued, done) = (
                p.counters.issued.load(Ordering::Relaxed),
                p.counters.done.load(Ordering::Relaxed),
            );
            // A resent publish may be acknowledged twice.
            per_publisher.push(done.min(issued));
            unconfirmed += issued.saturating_sub(done);
            let _ = p.client.try_disconnect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        for p in &self.list {
            p.eventloop.abort();
        }
        let error = self.error.lock().expect("lock").take();
        Published {
            per_publisher,
            unconfirmed,
            disconnects: self
                .list
                .iter()
                .map(|p| p.counters.disconnects.load(Ordering::Relaxed))
                .sum(),
            error,
        }
    }
}

/// Consecutive failed reconnections (100 ms apart) after which a publisher gives up.
const MAX_RECONNECTS: u32 = 50;

/// Polls a client's event loop, counting acknowledgements (QoS 1) or writes (QoS 0).
async fn drive(
    mut eventloop: EventLoop,
    qos: u8,
    counters: Arc<Counters>,
    connected: tokio::sync::oneshot::Sender<()>,
    error: Arc<Mutex<Option<String>>>,
) {
    let mut connected = Some(connected);
    let mut failures = 0;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                failures = 0;
                if let Some(tx) = connected.take() {
                    let _ = tx.send(());
                }
            }
            Ok(Event::Incoming(Packet::PubAck(_))) if qos == 1 => {
                counters.done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Publish(_))) if qos == 0 => {
                counters.done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                error
                    .lock()
                    .expect("lock")
                    .get_or_insert_with(|| format!("MQTT connection failed: {e}"));
                if connected.is_some() {
                    return; // never connected
                }
                failures += 1;
                if failures == 1 {
                    counters.disconnects.fetch_add(1, Ordering::Relaxed);
                }
                if failures > MAX_RECONNECTS {
                    counters.failed.store(true, Ordering::Relaxed);
                    return;
                }
                if failures > 1 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// `bridge-bench load`: `publishers` on each of `addrs` for `duration`; prints the
/// publishes acknowledged per address and in all.
pub fn main(addrs: &[SocketAddr], publishers: u32, load: Load, duration: Duration) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let mut sets = Vec::new();
        for (n, addr) in addrs.iter().enumerate() {
            let mut set =
                Publishers::connect(*addr, &format!("load-{n}"), publishers, load).await?;
            set.start(&stop, None);
            sets.push(set);
        }
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut total = 0;
        for (addr, set) in addrs.iter().zip(sets) {
            let acked: u64 = set
                .finish(Duration::from_secs(10))
                .await
                .per_publisher
                .iter()
                .sum();
            println!("{addr} {acked}");
            total += acked;
        }
        println!("total {total} in {:.1} s", duration.as_secs_f64());
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_parse_and_print() {
        let l: Load = "qos1-4k".parse().unwrap();
        assert_eq!(l, Load { qos: 1, size: 4096 });
        assert_eq!(l.to_string(), "qos1-4k");
        let l: Load = "qos0-256".parse().unwrap();
        assert_eq!(l, Load { qos: 0, size: 256 });
        assert_eq!(l.to_string(), "qos0-256");
        assert!("qos2-256".parse::<Load>().is_err());
        assert!("qos1-64".parse::<Load>().is_err());
        assert!("qos1".parse::<Load>().is_err());
    }

    #[test]
    fn payloads_are_exact_json() {
        for size in [128, 256, 4096] {
            let p = payload(63, u64::from(u32::MAX), now_us(), size);
            assert_eq!(p.len(), size);
            let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
            assert_eq!(v["device_id"], "dev-63");
            assert_eq!(v["seq"], u32::MAX);
        }
    }
}
