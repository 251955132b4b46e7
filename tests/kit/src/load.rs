//! A steady, keyed MQTT load for the reload tests, and the checks on what reached
//! Kafka: every message exactly once, each key in order, and, across a switch of
//! configuration, a clean cut per publisher.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::{Record, V3Client};

/// Publishers in a [`KeyedLoad`].
pub const PUBLISHERS: usize = 4;

/// Each publisher's message numbers (`p0`…), as read from one topic, in its order.
pub type Seqs = BTreeMap<String, Vec<u64>>;

/// Publishers sending keyed messages, paced, until told to finish.
pub struct KeyedLoad {
    stop: Arc<AtomicBool>,
    /// Messages sent so far, per publisher.
    sent: Arc<[AtomicU64; PUBLISHERS]>,
    tasks: Vec<JoinHandle<u64>>,
}

impl KeyedLoad {
    /// Starts [`PUBLISHERS`] clients `p<n>`, each publishing
    /// `{"device_id":"p<n>","type":"reading","seq":<i>}` to `load/p<n>`, QoS 1, about
    /// a thousand a second each.
    pub fn start(addr: SocketAddr) -> KeyedLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let sent: Arc<[AtomicU64; PUBLISHERS]> = Arc::default();
        let tasks = (0..PUBLISHERS)
            .map(|p| tokio::spawn(publish_until(addr, p, stop.clone(), sent.clone())))
            .collect();
        KeyedLoad { stop, sent, tasks }
    }

    /// Waits until every publisher has sent at least `n` more messages than now, so
    /// that what comes next happens under load however slow the machine is.
    pub async fn run_for(&self, n: u64) {
        let start: Vec<u64> = self
            .sent
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self
            .sent
            .iter()
            .zip(&start)
            .any(|(s, &from)| s.load(Ordering::Relaxed) < from + n)
        {
            assert!(tokio::time::Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Keeps the load on for `n` more messages per publisher, then stops it and waits
    /// for every PUBACK; how many each publisher sent. No publisher was disconnected.
    pub async fn finish_after(self, n: u64) -> Vec<u64> {
        self.run_for(n).await;
        self.stop.store(true, Ordering::Relaxed);
        let mut sent = Vec::new();
        for task in self.tasks {
            sent.push(task.await.unwrap());
        }
        sent
    }
}

/// The numbers below `n` that `seen` lacks.
fn missing(seen: &[u64], n: u64) -> Vec<u64> {
    let seen: std::collections::HashSet<u64> = seen.iter().copied().collect();
    (0..n).filter(|s| !seen.contains(s)).collect()
}

async fn publish_until(
    addr: SocketAddr,
    p: usize,
    stop: Arc<AtomicBool>,
    counts: Arc<[AtomicU64; PUBLISHERS]>,
) -> u64 {
    let mut c = V3Client::connect(addr, &format!("p{p}")).await;
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) {
        let payload = format!(r#"{{"device_id":"p{p}","type":"reading","seq":{sent}}}"#);
        c.publish(&format!("load/p{p}"), 1, payload).await;
        sent += 1;
        counts[p].store(sent, Ordering::Relaxed);
        if sent % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for _ in 0..sent {
        c.next_ack(Duration::from_secs(60))
            .await
            .expect("every publish is acknowledged");
    }
    let disconnects = c.disconnects.load(Ordering::Relaxed);
    assert_eq!(disconnects, 0, "p{p} was disconnected");
    sent
}

/// Each publisher's message numbers in `recs`, checking that each key's records are in
/// publish order (a key stays in one partition, which the reader returns in order).
pub fn seqs(recs: &[Record]) -> Seqs {
    let mut by_key = Seqs::new();
    for r in recs {
        let payload = r.payload.as_deref().unwrap_or_default();
        let doc: serde_json::Value = serde_json::from_slice(payload).unwrap();
        let device = doc["device_id"].as_str().unwrap().to_owned();
        let seq = doc["seq"].as_u64().unwrap();
        by_key.entry(device).or_default().push(seq);
    }
    for (key, s) in &by_key {
        assert!(s.windows(2).all(|w| w[0] < w[1]), "order of {key}: {s:?}");
    }
    by_key
}

/// Every message of every publisher is in exactly one of `parts`, which took turns: per
/// publisher, `parts[0]` holds a prefix of its messages, `parts[1]` the next stretch,
/// and so on, none of them empty. That is a clean switch at each reload, with load on
/// both sides of it.
pub fn exactly_once_in_turn(sent: &[u64], parts: &[&Seqs]) {
    let none = Vec::new();
    for (p, &n) in sent.iter().enumerate() {
        let key = format!("p{p}");
        let stretches: Vec<&Vec<u64>> =
            parts.iter().map(|s| s.get(&key).unwrap_or(&none)).collect();
        let lengths: Vec<usize> = stretches.iter().map(|s| s.len()).collect();
        assert!(!lengths.contains(&0), "{key}: records per part {lengths:?}");
        let in_turn: Vec<u64> = stretches.into_iter().flatten().copied().collect();
        let expected: Vec<u64> = (0..n).collect();
        assert!(
            in_turn == expected,
            "{key}: {n} sent, per part {lengths:?}, not each once in turn; missing {:?}",
            missing(&in_turn, n)
        );
    }
}
