//! Order across a switch of producers: when a reload gives an entry new producers, its
//! records wait until the producers it replaces have drained, so that two records of
//! one key never race each other to Kafka through two producers.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Opened once the replaced producers have drained.
#[derive(Default)]
pub struct Handover {
    open: AtomicBool,
    opened: Notify,
}

impl Handover {
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

    /// Lets the successor send.
    pub fn open(&self) {
        self.open.store(true, Ordering::Release);
        self.opened.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_pass_once_it_opens() {
        let h = Arc::new(Handover::default());
        let waiter = tokio::spawn({
            let h = h.clone();
            async move { h.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "closed: the send waits");
        h.open();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("opened: the send goes")
            .unwrap();
        h.wait().await;
    }
}
