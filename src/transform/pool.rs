//! The instances of one entry: `transform.instances` of them, reused across messages,
//! handed out first come first served, and replaced after a failure.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::failure::{Cause, Failure};
use super::instance::GuestInstance;
use super::module::TransformModule;

pub struct TransformPool {
    module: Arc<TransformModule>,
    size: usize,
    idle: Mutex<Vec<GuestInstance>>,
    /// One permit per instance; tokio's semaphore is fair (FIFO).
    permits: Semaphore,
    /// Slots whose instance was discarded and not yet replaced.
    missing: AtomicUsize,
    replaced: AtomicU64,
    /// Failed calls by cause, whatever `on_error` then did with the message.
    failures: [AtomicU64; Cause::ALL.len()],
}

impl TransformPool {
    /// Creates all instances up front, so a module whose init fails refuses the start.
    pub async fn new(module: Arc<TransformModule>, size: usize) -> Result<TransformPool, Failure> {
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size {
            idle.push(GuestInstance::new(&module).await?);
        }
        Ok(TransformPool {
            module,
            size,
            idle: Mutex::new(idle),
            permits: Semaphore::new(size),
            missing: AtomicUsize::new(0),
            replaced: AtomicU64::new(0),
            failures: Default::default(),
        })
    }

    /// Waits for a free instance, first come first served.
    pub async fn checkout(&self) -> Result<Checkout<'_>, Failure> {
        // An uncontended permit without building a waiter; tokio hands released permits
        // to queued waiters first, so this never jumps the queue.
        let permit = match self.permits.try_acquire() {
            Ok(p) => p,
            Err(_) => self
                .permits
                .acquire()
                .await
                .map_err(|_| Failure::new(Cause::Trap, "the instance pool is closed"))?,
        };
        let idle = self.idle.lock().pop();
        let instance = match idle {
            Some(i) => i,
            // Holding a permit with no idle instance means a discarded one's slot is empty.
            None => {
                let _ = self
                    .missing
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| m.checked_sub(1));
                self.fresh_instance().await?
            }
        };
        Ok(Checkout {
            pool: self,
            instance: Some(instance),
            _permit: permit,
        })
    }

    /// Replaces the instances that failures discarded, so that the next messages find
    /// healthy ones. The bridge calls it right after a failed call.
    pub async fn replenish(&self) {
        while self
            .missing
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| m.checked_sub(1))
            .is_ok()
        {
            match self.fresh_instance().await {
                Ok(i) => self.idle.lock().push(i),
                Err(f) => {
                    self.missing.fetch_add(1, Ordering::AcqRel);
                    log::warn!("{}: {}", self.module.label, f.message);
                    return;
                }
            }
        }
    }

    async fn fresh_instance(&self) -> Result<GuestInstance, Failure> {
        let i = GuestInstance::new(&self.module).await.map_err(|f| {
            self.failures[f.cause as usize].fetch_add(1, Ordering::Relaxed);
            Failure::new(
                f.cause,
                format!("could not replace a discarded instance: {}", f.message),
            )
        })?;
        self.replaced.fetch_add(1, Ordering::Relaxed);
        Ok(i)
    }

    /// Failed calls with this cause so far.
    pub fn failures(&self, cause: Cause) -> u64 {
        self.failures[cause as usize].load(Ordering::Relaxed)
    }

    /// Instances discarded after a failure and created anew.
    pub fn replaced(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let failures: serde_json::Map<String, serde_json::Value> = Cause::ALL
            .iter()
            .map(|c| (c.as_str().to_owned(), self.failures(*c).into()))
            .collect();
        serde_json::json!({
            "module": self.module.path().display().to_string(),
            "instances": self.size,
            "idle": self.idle.lock().len(),
            "replaced": self.replaced(),
            "failures": failures,
        })
    }
}

/// An instance on loan; it goes back to the pool on drop, unless a failure poisoned it.
pub struct Checkout<'p> {
    pool: &'p TransformPool,
    instance: Option<GuestInstance>,
    _permit: SemaphorePermit<'p>,
}

impl Checkout<'_> {
    /// Transforms one message; the records borrow guest memory until the next call.
    pub async fn transform<U: AsRef<[u8]>>(
        &mut self,
        input: &abi::input::InputFields<'_, U>,
    ) -> Result<abi::output::Records<'_>, Failure> {
        let pool = self.pool;
        let Some(instance) = self.instance.as_mut() else {
            return Err(Failure::new(
                Cause::Trap,
                "the instance was already returned",
            ));
        };
        instance.call(input).await.inspect_err(|f| {
            pool.failures[f.cause as usize].fetch_add(1, Ordering::Relaxed);
        })
    }

    /// Counts a failure found by the caller, such as an invalid record in the output.
    pub fn reject_output(&mut self, failure: &Failure) {
        self.pool.failures[failure.cause as usize].fetch_add(1, Ordering::Relaxed);
        if let Some(i) = self.instance.as_mut() {
            i.poisoned = true;
        }
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take() {
            if instance.poisoned {
                self.pool.missing.fetch_add(1, Ordering::AcqRel);
            } else {
                self.pool.idle.lock().push(instance);
            }
        }
    }
}
