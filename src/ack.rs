//! Ack mode (`remote.ack_after_delivery`): a QoS 1/2 publish is acknowledged only after
//! Kafka acknowledged all its records.
//!
//! rmqtt sends the PUBACK/PUBREC after the `MessagePublish` hook returns, so waiting in
//! that hook holds the ack back. A failure cannot be returned from that hook, but the
//! session asks the `MessagePublishCheckAcl` hook right after it; the bridge answers
//! there with the rejection recorded here (v5: reason code 0x80 or 0x97; v3 has no
//! negative ack, so the client is disconnected and resends).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytestring::ByteString;
use parking_lot::Mutex;
use rmqtt::codec::v5::PublishAckReason;
use rmqtt::types::PublishResult;
use slab::Slab;
use smallvec::SmallVec;
use tokio::sync::oneshot;

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

/// Completions of ack-mode records, and refusals waiting for the ACL hook.
#[derive(Default)]
pub struct Acks {
    pending: Mutex<Slab<Completion>>,
    refusals: Mutex<HashMap<(ByteString, u16), PublishResult>>,
    refusal_count: AtomicUsize,
}

impl Acks {
    /// Registers a record; its delivery report completes the returned receiver.
    pub fn register(&self) -> (usize, oneshot::Receiver<Result<(), String>>) {
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

    /// Records that the publish `(client_id, packet_id)` must be refused.
    pub fn refuse(
        &self,
        client_id: ByteString,
        packet_id: u16,
        failure: &AckFailure,
        protocol: u8,
    ) {
        self.refusals
            .lock()
            .insert((client_id, packet_id), failure.publish_result(protocol));
        self.refusal_count.fetch_add(1, Ordering::Release);
    }

    /// Takes the refusal recorded for this publish, if any.
    #[inline]
    pub fn take_refusal(&self, client_id: &ByteString, packet_id: u16) -> Option<PublishResult> {
        if self.refusal_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let found = self.refusals.lock().remove(&(client_id.clone(), packet_id));
        if found.is_some() {
            self.refusal_count.fetch_sub(1, Ordering::Release);
        }
        found
    }
}

/// The ack-mode records of one publish, across all matching entries.
#[derive(Default)]
pub struct AckWait {
    receivers: SmallVec<[oneshot::Receiver<Result<(), String>>; 4]>,
    failure: Option<AckFailure>,
}

impl AckWait {
    pub fn track(&mut self, rx: oneshot::Receiver<Result<(), String>>) {
        self.receivers.push(rx);
    }

    /// Records a failure of an ack-mode record that never reached librdkafka.
    pub fn fail(&mut self, failure: AckFailure) {
        self.failure.get_or_insert(failure);
    }

    /// Waits for every tracked record; `Err` if any of them failed.
    pub async fn wait(self) -> Result<(), AckFailure> {
        let mut failure = self.failure;
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
