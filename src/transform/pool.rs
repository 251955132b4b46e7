//! The instances of one entry: `transform.instances` of them, reused across messages,
//! handed out first come first served. [`TransformPool::run`] is the one way in: it
//! checks an instance out, calls it, validates the output with the ABI's rules, and
//! discards and replaces an instance that failed. The caller sees records or a failure.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use abi::input::InputFields;
use abi::output::{Output, Record, Records};
use parking_lot::Mutex;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::failure::{Cause, Failure};
use super::instance::GuestInstance;
use super::module::TransformModule;

pub struct TransformPool {
    module: Arc<TransformModule>,
    idle: Mutex<Vec<GuestInstance>>,
    /// One permit per instance; tokio's semaphore is fair (FIFO).
    permits: Semaphore,
    /// Slots whose instance was discarded and not yet replaced.
    missing: AtomicUsize,
    /// Set once a call ran too long for the fast path: calls run on fibers from then on.
    on_fiber: AtomicBool,
    replaced: AtomicU64,
    /// Replacements that could not be created (their init failed, say).
    replace_failures: AtomicU64,
    /// Failed calls by cause, whatever `on_error` then did with the message.
    failures: [AtomicU64; Cause::ALL.len()],
}

impl TransformPool {
    /// Creates all instances up front, so a module whose init fails refuses the start.
    pub async fn new(module: Arc<TransformModule>) -> Result<TransformPool, Failure> {
        let size = module.instances;
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size {
            idle.push(GuestInstance::new(&module).await?);
        }
        Ok(TransformPool {
            module,
            idle: Mutex::new(idle),
            permits: Semaphore::new(size),
            missing: AtomicUsize::new(0),
            on_fiber: AtomicBool::new(false),
            replaced: AtomicU64::new(0),
            replace_failures: AtomicU64::new(0),
            failures: Default::default(),
        })
    }

    /// Transforms one message: checks out an instance (waiting in FIFO order while all
    /// are busy), writes the input, calls the module under the deadline, and validates
    /// every record it returned. An instance the failure may have left inconsistent is
    /// discarded and replaced. Calls take the fast path (a plain call) until one is
    /// still running at its second epoch tick; that one is run again on a fresh instance
    /// on a fiber, and so is every later call of this pool. The records borrow the instance's memory, and
    /// the instance goes back to the pool when the result is dropped.
    pub async fn run<U: AsRef<[u8]>>(
        &self,
        input: &InputFields<'_, U>,
    ) -> Result<Transformed<'_>, Failure> {
        let result = match self.checkout().await {
            Ok(mut checkout) => match checkout.call(input).await {
                Ok(packed) => return Ok(Transformed { checkout, packed }),
                Err(failure) => {
                    if failure.poisons_instance() {
                        checkout.discard();
                        self.replenish().await;
                    }
                    failure
                }
            },
            Err(failure) => failure,
        };
        self.failures[result.cause as usize].fetch_add(1, Ordering::Relaxed);
        Err(result)
    }

    /// Waits for a free instance, first come first served.
    async fn checkout(&self) -> Result<Checkout<'_>, Failure> {
        // An uncontended permit without building a waiter; tokio hands released permits
        // to queued waiters first, so this never jumps the queue.
        let permit = match self.permits.try_acquire() {
            Ok(p) => p,
            Err(_) => self
                .permits
                .acquire()
                .await
                .map_err(|_| Failure::new(Cause::Unavailable, "the instance pool is closed"))?,
        };
        let idle = self.idle.lock().pop();
        let instance = match idle {
            Some(i) => i,
            // A permit with no idle instance means a discarded instance's slot is empty.
            None => {
                let _ = self
                    .missing
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| m.checked_sub(1));
                self.fresh_instance().await.map_err(|f| {
                    self.missing.fetch_add(1, Ordering::AcqRel);
                    Failure::new(Cause::Unavailable, f.message)
                })?
            }
        };
        Ok(Checkout {
            pool: self,
            instance: Some(instance),
            _permit: permit,
        })
    }

    /// Replaces the instances that failures discarded, so that the next messages find
    /// healthy ones.
    async fn replenish(&self) {
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
        match GuestInstance::new(&self.module).await {
            Ok(i) => {
                self.replaced.fetch_add(1, Ordering::Relaxed);
                Ok(i)
            }
            Err(f) => {
                self.replace_failures.fetch_add(1, Ordering::Relaxed);
                Err(Failure::new(
                    f.cause,
                    format!("could not replace a discarded instance: {f}"),
                ))
            }
        }
    }

    /// Failed calls with this cause so far.
    pub fn failures(&self, cause: Cause) -> u64 {
        self.failures[cause as usize].load(Ordering::Relaxed)
    }

    /// Instances discarded after a failure and created anew.
    pub fn replaced(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }

    /// Replacements that could not be created.
    pub fn replace_failures(&self) -> u64 {
        self.replace_failures.load(Ordering::Relaxed)
    }

    /// The pool's size, `transform.instances`.
    pub fn instances(&self) -> usize {
        self.module.instances
    }

    /// Instances waiting for a call (the rest are busy, or discarded and not replaced).
    pub fn idle(&self) -> usize {
        self.idle.lock().len()
    }

    pub fn module(&self) -> &TransformModule {
        &self.module
    }

    pub fn to_json(&self) -> serde_json::Value {
        let failures: serde_json::Map<String, serde_json::Value> = Cause::ALL
            .iter()
            .map(|c| (c.as_str().to_owned(), self.failures(*c).into()))
            .collect();
        serde_json::json!({
            "module": self.module.path().display().to_string(),
            "instances": self.module.instances,
            "idle": self.idle(),
            "replaced": self.replaced(),
            "replace_failures": self.replace_failures(),
            "calls_on_fibers": self.on_fiber.load(Ordering::Relaxed),
            "failures": failures,
        })
    }
}

/// An instance on loan; it goes back to the pool on drop unless it was discarded.
struct Checkout<'p> {
    pool: &'p TransformPool,
    instance: Option<GuestInstance>,
    _permit: SemaphorePermit<'p>,
}

impl Checkout<'_> {
    /// Calls the instance, on the fast path while the pool allows it, and checks its
    /// whole output before any record is used, so a bad output sends nothing.
    async fn call<U: AsRef<[u8]>>(&mut self, input: &InputFields<'_, U>) -> Result<u64, Failure> {
        if !self.pool.on_fiber.load(Ordering::Relaxed) {
            match self.instance()?.call_fast(input) {
                Ok(packed) => return self.checked(packed),
                Err(Some(failure)) => return Err(failure),
                Err(None) => self.leave_the_fast_path().await?,
            }
        }
        let packed = self.instance()?.call(input).await?;
        self.checked(packed)
    }

    /// After a fast-path call ran too long: from now on the pool's calls run on fibers,
    /// and this one gets a fresh instance, since the interrupted one may be inconsistent.
    async fn leave_the_fast_path(&mut self) -> Result<(), Failure> {
        if !self.pool.on_fiber.swap(true, Ordering::Relaxed) {
            log::info!(
                "{}: a call ran longer than {:?}; calls now run on fibers, which can yield",
                self.pool.module.label,
                super::state::EPOCH_TICK
            );
        }
        self.instance = None;
        let fresh = GuestInstance::new(&self.pool.module).await.map_err(|f| {
            self.pool.missing.fetch_add(1, Ordering::AcqRel);
            Failure::new(
                Cause::Unavailable,
                format!("could not replace an instance: {f}"),
            )
        })?;
        self.instance = Some(fresh);
        Ok(())
    }

    fn instance(&mut self) -> Result<&mut GuestInstance, Failure> {
        self.instance
            .as_mut()
            .ok_or_else(|| Failure::new(Cause::Unavailable, "the instance was discarded"))
    }

    /// Checks every record of the output document at `packed`.
    fn checked(&mut self, packed: u64) -> Result<u64, Failure> {
        let instance = self.instance()?;
        match instance.output(packed)? {
            Output::Error(msg) => Err(Failure::new(
                Cause::GuestError,
                String::from_utf8_lossy(msg),
            )),
            Output::Records(records) => {
                for record in records.iter() {
                    let record =
                        record.map_err(|e| Failure::new(Cause::BadOutput, e.to_string()))?;
                    abi::rules::check_record(&record)
                        .map_err(|e| Failure::new(Cause::BadOutput, e.to_string()))?;
                }
                Ok(packed)
            }
        }
    }

    /// Drops the instance instead of returning it; its slot is refilled later.
    fn discard(&mut self) {
        if self.instance.take().is_some() {
            self.pool.missing.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take() {
            self.pool.idle.lock().push(instance);
        }
    }
}

/// The validated output of one call. Holding it holds the instance.
pub struct Transformed<'p> {
    checkout: Checkout<'p>,
    packed: u64,
}

impl Transformed<'_> {
    /// The records, in the order the module returned them; none when it filtered the
    /// message out.
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        // `run` checked every record of this output, and the instance has not run since,
        // so reading them again cannot fail; it costs a few loads per record, the checks
        // are not repeated.
        self.output()
            .into_iter()
            .flat_map(|r| r.iter().map_while(Result::ok))
    }

    /// Whether the module filtered the message out; reads only the output's header.
    pub fn is_empty(&self) -> bool {
        self.output().is_none_or(|r| r.is_empty())
    }

    fn output(&self) -> Option<Records<'_>> {
        match self.checkout.instance.as_ref()?.output(self.packed) {
            Ok(Output::Records(r)) => Some(r),
            _ => None,
        }
    }
}
