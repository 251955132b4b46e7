//! Refusals of publishes whose records did not get where their entry's `remote.ack`
//! level needs them. A failure cannot be returned from the `MessagePublish` hook, but
//! the session asks the `MessagePublishCheckAcl` hook right after it; the bridge answers
//! there with the refusal recorded here (v5: reason code 0x80 or 0x97; v3 has no
//! negative ack, so the client is disconnected and resends).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytestring::ByteString;
use parking_lot::Mutex;
use rmqtt::codec::v5::PublishAckReason;
use rmqtt::types::PublishResult;

use crate::delivery::AckFailure;

/// The answer to a refused publish.
fn publish_result(failure: &AckFailure, protocol: u8) -> PublishResult {
    let (code, text) = match failure {
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
            (publish_result(failure, protocol), now),
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
}
