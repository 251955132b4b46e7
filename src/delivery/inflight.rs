//! The bound on a bridge's in-flight records, in count and in bytes (payload + key).
//! A record takes room before it is produced and gives it back in its delivery report,
//! so memory held for Kafka stays bounded however far Kafka falls behind.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The bound of one bridge, shared by its entries' ledgers.
pub struct Inflight {
    /// The limits; a reload may change them while records are in flight.
    max_messages: AtomicUsize,
    max_bytes: AtomicUsize,
    messages: AtomicUsize,
    bytes: AtomicUsize,
    waiters: AtomicUsize,
    released: Notify,
}

impl Inflight {
    pub fn new(max_messages: usize, max_bytes: usize) -> Self {
        Inflight {
            max_messages: AtomicUsize::new(max_messages),
            max_bytes: AtomicUsize::new(max_bytes),
            messages: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            released: Notify::new(),
        }
    }

    /// Whether a record of `bytes` could ever fit.
    pub fn fits_at_all(&self, bytes: usize) -> bool {
        bytes <= self.max_bytes.load(Ordering::Relaxed)
    }

    /// Takes room for one record if there is some now.
    #[inline]
    pub fn try_acquire(&self, bytes: usize) -> bool {
        let m = self.messages.fetch_add(1, Ordering::AcqRel);
        let b = self.bytes.fetch_add(bytes, Ordering::AcqRel);
        let (max_messages, max_bytes) = self.limits();
        if m < max_messages && b + bytes <= max_bytes {
            return true;
        }
        self.messages.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        false
    }

    /// Takes room for one record, waiting up to `timeout` for some to be released.
    pub async fn acquire_within(&self, bytes: usize, timeout: Duration) -> bool {
        if self.try_acquire(bytes) {
            return true;
        }
        if timeout.is_zero() || !self.fits_at_all(bytes) {
            return false;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        self.waiters.fetch_add(1, Ordering::AcqRel);
        let acquired = loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.try_acquire(bytes) {
                break true;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                break self.try_acquire(bytes);
            }
        };
        self.waiters.fetch_sub(1, Ordering::AcqRel);
        acquired
    }

    /// Takes room for one record that fits at all, waiting as long as it takes (a
    /// spool's pump, whose records wait on disk meanwhile).
    pub async fn acquire(&self, bytes: usize) {
        self.waiters.fetch_add(1, Ordering::AcqRel);
        // Counted out however the wait ends, cancellation included.
        let _waiting = Waiting(&self.waiters);
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.try_acquire(bytes) {
                return;
            }
            released.await;
        }
    }

    /// Gives back the room of one settled record.
    #[inline]
    pub fn release(&self, bytes: usize) {
        self.messages.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        if self.waiters.load(Ordering::Acquire) > 0 {
            self.released.notify_waiters();
        }
    }

    pub fn messages(&self) -> usize {
        self.messages.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The bound: `max_inflight_messages` and `max_inflight_bytes`.
    pub fn limits(&self) -> (usize, usize) {
        (
            self.max_messages.load(Ordering::Relaxed),
            self.max_bytes.load(Ordering::Relaxed),
        )
    }

    /// Applies new limits (a reload): records in flight keep their room; a lower
    /// limit takes effect as they settle, a higher one at once.
    pub fn set_limits(&self, max_messages: usize, max_bytes: usize) {
        self.max_messages.store(max_messages, Ordering::Relaxed);
        self.max_bytes.store(max_bytes, Ordering::Relaxed);
        self.released.notify_waiters();
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "messages": self.messages(),
            "bytes": self.bytes(),
            "max_messages": self.limits().0,
            "max_bytes": self.limits().1,
        })
    }
}

/// One waiter for released room, counted until dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn bounds_messages_and_bytes() {
        let f = Inflight::new(2, 100);
        assert!(f.try_acquire(40));
        assert!(!f.try_acquire(61), "byte bound");
        assert!(f.try_acquire(60));
        assert!(!f.try_acquire(0), "message bound");
        f.release(40);
        assert!(f.try_acquire(10));
        assert_eq!((f.messages(), f.bytes()), (2, 70));
        assert!(!f.fits_at_all(101));
    }

    #[tokio::test]
    async fn waits_for_release_until_timeout() {
        let f = Arc::new(Inflight::new(1, 100));
        assert!(f.try_acquire(10));
        assert!(!f.acquire_within(10, Duration::ZERO).await);
        assert!(!f.acquire_within(10, Duration::from_millis(20)).await);
        let g = f.clone();
        let waiter =
            tokio::spawn(async move { g.acquire_within(10, Duration::from_secs(10)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        f.release(10);
        assert!(waiter.await.unwrap());
        assert_eq!(f.messages(), 1);
    }
}
