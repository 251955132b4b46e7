//! Pending acknowledgements, for every level of `remote.ack`. A bridge's [`Acks`] is the
//! one registry of what must hear of a record's delivery report: a publish waiting for
//! Kafka (`"delivered"`), and in disk mode the record's place in the spool. A publish's
//! [`AckWait`] gathers what it waits for across the entries it matched.
//!
//! rmqtt sends the PUBACK/PUBREC after the `MessagePublish` hook returns, so waiting in
//! that hook holds the acknowledgement back. A failure cannot be returned from that hook;
//! the bridge refuses the publish through its ACL hook instead (`hooks/refusals.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use slab::Slab;
use smallvec::SmallVec;
use tokio::sync::oneshot;

use crate::spool::SyncWait;

/// Why a publish is refused.
#[derive(Debug, Clone)]
pub enum AckFailure {
    /// No room in the in-flight buffer or the spool (MQTT v5: 0x97 quota exceeded).
    BufferFull,
    /// A record could not be written, or Kafka did not take it (0x80 unspecified error).
    Delivery(String),
}

/// Completes a waiting publish with its record's result.
pub type Completion = oneshot::Sender<Result<(), String>>;
pub type Receiver = oneshot::Receiver<Result<(), String>>;

/// What must hear of one record's delivery report.
pub struct Pending {
    /// Its sequence number in the bridge's spool (disk mode).
    pub seq: Option<u64>,
    /// The publish waiting for it (`"delivered"`).
    pub done: Option<Completion>,
}

/// The registry of one bridge, shared by its entries' ledgers.
#[derive(Default)]
pub struct Acks {
    /// Records handed to librdkafka that something needs to hear of, by the slot in
    /// their tag. Bounded: each holds room in the in-flight bound.
    slots: Mutex<Slab<Pending>>,
    /// Publishes at `"delivered"` waiting for spooled records the pump has not handed
    /// over yet, by sequence number.
    spooled: Mutex<HashMap<u64, Completion>>,
    /// Lets the pump skip `spooled`'s lock while no such publish waits.
    spooled_count: AtomicUsize,
}

impl Acks {
    /// Registers a record handed to librdkafka; its report settles the returned slot.
    pub fn track(&self, pending: Pending) -> usize {
        self.slots.lock().insert(pending)
    }

    /// A completion for a record that a publish will wait for, and what it waits on.
    pub fn completion() -> (Completion, Receiver) {
        oneshot::channel()
    }

    /// Registers a publish waiting for spooled record `seq`, which the pump has not
    /// handed over yet (it cannot have: this runs while the record is appended).
    pub fn wait_for_spooled(&self, seq: u64) -> Receiver {
        let (tx, rx) = oneshot::channel();
        self.spooled.lock().insert(seq, tx);
        self.spooled_count.fetch_add(1, Ordering::AcqRel);
        rx
    }

    /// The publish waiting for spooled record `seq`, as the pump hands it over.
    #[inline]
    pub fn take_spooled(&self, seq: u64) -> Option<Completion> {
        if self.spooled_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let done = self.spooled.lock().remove(&seq);
        if done.is_some() {
            self.spooled_count.fetch_sub(1, Ordering::AcqRel);
        }
        done
    }

    /// Takes what slot `slot` registered, as its record's report settles it.
    pub fn settle(&self, slot: usize) -> Option<Pending> {
        self.slots.lock().try_remove(slot)
    }

    /// Fails every publish still waiting (the bridge is stopping), and forgets every
    /// slot.
    pub fn fail_all(&self, reason: &str) {
        let slots = std::mem::take(&mut *self.slots.lock());
        let spooled = std::mem::take(&mut *self.spooled.lock());
        self.spooled_count.store(0, Ordering::Release);
        let waiting = slots.into_iter().filter_map(|(_, p)| p.done);
        for tx in waiting.chain(spooled.into_values()) {
            let _ = tx.send(Err(reason.to_owned()));
        }
    }
}

/// What one QoS 1/2 publish waits for before its acknowledgement, across all the entries
/// it matched.
#[derive(Default)]
pub struct AckWait {
    /// Records at `"delivered"`.
    receivers: SmallVec<[Receiver; 4]>,
    /// Records at `"synced"`.
    synced: SmallVec<[SyncWait; 2]>,
    failure: Option<AckFailure>,
}

impl AckWait {
    /// Waits, too, for a record's delivery report.
    pub fn track(&mut self, rx: Receiver) {
        self.receivers.push(rx);
    }

    /// Waits, too, for a record's sync.
    pub fn synced(&mut self, wait: SyncWait) {
        self.synced.push(wait);
    }

    /// Records a failure of a record that never got where its level needs it.
    pub fn fail(&mut self, failure: AckFailure) {
        self.failure.get_or_insert(failure);
    }

    /// Waits for every tracked record; `Err` if any of them failed.
    pub async fn wait(self) -> Result<(), AckFailure> {
        let mut failure = self.failure;
        for wait in self.synced {
            if !wait.await.unwrap_or(false) {
                let why = "the spool could not sync the record".to_owned();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_settles_once_and_the_rest_fail_at_stop() {
        let acks = Acks::default();
        let (tx, mut rx_a) = Acks::completion();
        let a = acks.track(Pending {
            seq: None,
            done: Some(tx),
        });
        let (tx, mut rx_b) = Acks::completion();
        acks.track(Pending {
            seq: Some(7),
            done: Some(tx),
        });
        let pending = acks.settle(a).expect("registered");
        let _ = pending.done.unwrap().send(Ok(()));
        assert!(acks.settle(a).is_none(), "settled once");
        assert_eq!(rx_a.try_recv().unwrap(), Ok(()));
        let mut rx_c = acks.wait_for_spooled(9);
        acks.fail_all("stopping");
        assert_eq!(rx_b.try_recv().unwrap(), Err("stopping".to_owned()));
        assert_eq!(rx_c.try_recv().unwrap(), Err("stopping".to_owned()));
    }

    #[test]
    fn a_spooled_wait_is_handed_over_to_its_record() {
        let acks = Acks::default();
        assert!(
            acks.take_spooled(3).is_none(),
            "nothing waits: no lock taken"
        );
        let mut rx = acks.wait_for_spooled(3);
        assert!(acks.take_spooled(4).is_none());
        let done = acks.take_spooled(3).expect("the publish of record 3");
        let slot = acks.track(Pending {
            seq: Some(3),
            done: Some(done),
        });
        let p = acks.settle(slot).unwrap();
        assert_eq!(p.seq, Some(3));
        let _ = p.done.unwrap().send(Err("refused".into()));
        assert_eq!(rx.try_recv().unwrap(), Err("refused".to_owned()));
    }
}
