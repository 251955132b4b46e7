//! Ack mode (`remote.ack_after_delivery`): a QoS 1/2 publish is acknowledged only after
//! Kafka acknowledged all its records.
//!
//! rmqtt sends the PUBACK/PUBREC after the `MessagePublish` hook returns, so waiting in
//! that hook holds the ack back. A failure cannot be returned from that hook, but the
//! session asks the `MessagePublishCheckAcl` hook right after it; the bridge answers
//! there with the refusal recorded here (v5: reason code 0x80 or 0x97; v3 has no
//! negative ack, so the client is disconnected and resends).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytestring::ByteString;
use parking_lot::Mutex;
use rmqtt::codec::v5::PublishAckReason;
use rmqtt::types::PublishResult;
use slab::Slab;
use smallvec::SmallVec;
use tokio::sync::oneshot;

use crate::spool::Spool;

/// Why an ack-mode publish is refused.
#[derive(Debug, Clone)]
pub enum AckFailure {
    /// No room in the in-flight buffer (0x97 quota exceeded).
    BufferFull,
    /// Kafka did not take a record (0x80 unspecified error).
    Delivery(String),
}

impl AckFailure {
    fn publish_result(&self, protocol: u8) -> PublishResult {
        let (code, text) = match self {
            AckFailure::BufferFull => (
                PublishAckReason::QuotaExceeded,
                "Kafka bridge buffer full".to_owned(),
            ),
            AckFailure::Delivery(e) => (
                PublishAckReason::UnspecifiedError,
                format!("Kafka delivery failed: {e}"),
            ),
        };
        // MQTT 3.1.1 has no negative PUBACK: disconnect, so that the client resends.
        PublishResult::reason_code(code, Some(text.into()), protocol < 5)
    }
}

type Completion = oneshot::Sender<Result<(), String>>;
type Receiver = oneshot::Receiver<Result<(), String>>;

/// The completions of one entry's ack-mode records in flight; only its ledger uses them.
#[derive(Default)]
pub struct AckSlots {
    pending: Mutex<Slab<Completion>>,
}

impl AckSlots {
    /// Registers a record; settling its slot completes the returned receiver.
    pub fn register(&self) -> (usize, Receiver) {
        let (tx, rx) = oneshot::channel();
        (self.pending.lock().insert(tx), rx)
    }

    /// Settles a registered record.
    pub fn complete(&self, slot: usize, result: Result<(), String>) {
        if let Some(tx) = self.pending.lock().try_remove(slot) {
            let _ = tx.send(result);
        }
    }

    /// Fails every record still waiting (the plugin is stopping).
    pub fn fail_all(&self, reason: &str) {
        for tx in self.pending.lock().drain() {
            let _ = tx.send(Err(reason.to_owned()));
        }
    }
}

/// What one QoS 1/2 publish waits for before its acknowledgement, across all matching
/// entries: ack-mode records, and records spooled to disk (their durability).
#[derive(Default)]
pub struct AckWait {
    receivers: SmallVec<[Receiver; 4]>,
    /// The last record appended to each spool.
    spooled: SmallVec<[(Arc<Spool>, u64); 1]>,
    failure: Option<AckFailure>,
}

impl AckWait {
    pub fn track(&mut self, rx: Receiver) {
        self.receivers.push(rx);
    }

    /// Waits, too, for record `seq` of `spool` to be durable.
    pub fn durable(&mut self, spool: Arc<Spool>, seq: u64) {
        match self
            .spooled
            .iter_mut()
            .find(|(s, _)| Arc::ptr_eq(s, &spool))
        {
            Some((_, last)) => *last = (*last).max(seq),
            None => self.spooled.push((spool, seq)),
        }
    }

    /// Records a failure of an ack-mode record that never reached librdkafka.
    pub fn fail(&mut self, failure: AckFailure) {
        self.failure.get_or_insert(failure);
    }

    /// Waits for every tracked record; `Err` if any of them failed.
    pub async fn wait(self) -> Result<(), AckFailure> {
        let mut failure = self.failure;
        for (spool, seq) in self.spooled {
            if !spool.durable(seq).await {
                let why = "the spool could not write the record".to_owned();
                failure.get_or_insert(AckFailure::Delivery(why));
            }
        }
        for rx in self.receivers {
            match rx.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    failure.get_or_insert(AckFailure::Delivery(e));
                }
                Err(_) => {
                    failure.get_or_insert(AckFailure::Delivery("the bridge stopped".into()));
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// How long a refusal waits for the session to collect it. The session asks right after
/// the publish hook returns, so only a session that died in between leaves one behind.
const REFUSAL_TTL: Duration = Duration::from_secs(10);

/// Refusals of ack-mode publishes, waiting for the ACL hook of their session. One that is
/// not collected within its time to live is dropped and counted, so none stays forever.
pub struct Refusals {
    ttl: Duration,
    waiting: Mutex<Waiting>,
    /// Lets the ACL hook skip the lock while nothing is waiting (the common case).
    count: AtomicUsize,
    expired: AtomicU64,
}

#[derive(Default)]
struct Waiting {
    by_publish: HashMap<(ByteString, u16), (PublishResult, Instant)>,
    next_sweep: Option<Instant>,
}

impl Default for Refusals {
    fn default() -> Self {
        Refusals::with_ttl(REFUSAL_TTL)
    }
}

impl Refusals {
    pub fn with_ttl(ttl: Duration) -> Self {
        Refusals {
            ttl,
            waiting: Mutex::default(),
            count: AtomicUsize::new(0),
            expired: AtomicU64::new(0),
        }
    }

    /// Records that the publish `(client_id, packet_id)` must be refused.
    pub fn refuse(
        &self,
        client_id: ByteString,
        packet_id: u16,
        failure: &AckFailure,
        protocol: u8,
    ) {
        let now = Instant::now();
        let mut w = self.waiting.lock();
        if w.next_sweep.is_some_and(|at| now >= at) {
            self.sweep(&mut w, now);
        }
        w.next_sweep.get_or_insert(now + self.ttl);
        w.by_publish.insert(
            (client_id, packet_id),
            (failure.publish_result(protocol), now),
        );
        self.count.store(w.by_publish.len(), Ordering::Release);
    }

    /// Drops the refusals older than the time to live.
    fn sweep(&self, w: &mut Waiting, now: Instant) {
        let before = w.by_publish.len();
        w.by_publish
            .retain(|_, (_, at)| now.duration_since(*at) < self.ttl);
        let dropped = before - w.by_publish.len();
        if dropped > 0 {
            self.expired.fetch_add(dropped as u64, Ordering::Relaxed);
            log::warn!("{dropped} ack-mode refusals were never collected by their session and were dropped");
        }
        w.next_sweep = (!w.by_publish.is_empty()).then(|| now + self.ttl);
    }

    /// Takes the refusal recorded for this publish, if any.
    #[inline]
    pub fn take(&self, client_id: &ByteString, packet_id: u16) -> Option<PublishResult> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut w = self.waiting.lock();
        let found = w.by_publish.remove(&(client_id.clone(), packet_id));
        self.count.store(w.by_publish.len(), Ordering::Release);
        found.map(|(result, _)| result)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "waiting": self.count.load(Ordering::Relaxed),
            "expired": self.expired.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncollected_refusals_expire_and_are_counted() {
        let r = Refusals::with_ttl(Duration::from_millis(20));
        let failure = AckFailure::BufferFull;
        r.refuse("gone".into(), 1, &failure, 5);
        r.refuse("alive".into(), 2, &failure, 5);
        assert!(r.take(&"alive".into(), 2).is_some());
        std::thread::sleep(Duration::from_millis(30));
        // The next refusal sweeps the one nobody collected.
        r.refuse("next".into(), 3, &failure, 4);
        let j = r.to_json();
        assert_eq!(
            (j["waiting"].as_u64(), j["expired"].as_u64()),
            (Some(1), Some(1))
        );
        assert!(r.take(&"gone".into(), 1).is_none());
        assert!(r.take(&"next".into(), 3).is_some());
        assert_eq!(r.to_json()["waiting"], 0);
    }

    #[test]
    fn slots_complete_once_and_fail_at_stop() {
        let slots = AckSlots::default();
        let (a, mut rx_a) = slots.register();
        let (_, mut rx_b) = slots.register();
        slots.complete(a, Ok(()));
        slots.complete(a, Err("twice".into()));
        assert_eq!(rx_a.try_recv().unwrap(), Ok(()));
        slots.fail_all("stopping");
        assert_eq!(rx_b.try_recv().unwrap(), Err("stopping".to_owned()));
    }
}
