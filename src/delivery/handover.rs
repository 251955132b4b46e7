//! Order across a switch of producers: when a reload gives an entry new producers, its
//! records wait until the producers it replaces have drained, so that two records of
//! one key never race each other to Kafka through two producers.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Opened once the replaced producers have drained.
pub struct Handover {
    open: AtomicBool,
    /// Drains still to finish.
    pending: AtomicUsize,
    opened: Notify,
}

impl Handover {
    /// A handover that opens after `drains` drains finished (the producers of every
    /// entry whose records the successor takes over).
    pub fn after(drains: usize) -> Handover {
        Handover {
            open: AtomicBool::new(drains == 0),
            pending: AtomicUsize::new(drains),
            opened: Notify::new(),
        }
    }

    /// Waits until the handover is open; at once (one atomic load) once it is.
    #[inline]
    pub async fn wait(&self) {
        while !self.open.load(Ordering::Acquire) {
            let opened = self.opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            if self.open.load(Ordering::Acquire) {
                return;
            }
            opened.await;
        }
    }

    /// One drain finished; the last one lets the successor send.
    pub fn drained(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.open.store(true, Ordering::Release);
            self.opened.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_pass_once_every_drain_finished() {
        let h = Arc::new(Handover::after(2));
        let waiter = tokio::spawn({
            let h = h.clone();
            async move { h.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "closed: the send waits");
        h.drained();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "one of two drains: still closed");
        h.drained();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("opened: the send goes")
            .unwrap();
        h.wait().await;
    }
}
