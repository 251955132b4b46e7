//! The instances of one entry: `transform.instances` of them, reused across messages,
//! handed out first come first served. [`TransformPool::run`] is the one way in: it
//! checks an instance out, calls it, validates the output with the ABI's rules, and
//! discards and replaces an instance that failed. The caller sees records or a failure.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use abi::input::InputFields;
use abi::output::{Output, Record, Records};

use super::failure::{Cause, Failure};
use super::instance::GuestInstance;
use super::module::TransformModule;
use super::slots::Slots;
use super::state_store::StateStore;

/// Quick calls on fibers in a row (each over before its second epoch tick, as the fast
/// path requires) after which a pool's calls take the fast path again: a module slow on
/// one message once must not cost every later call a fiber. One slow on one message in
/// more than this many goes back and forth, each return costing one call interrupted
/// after two ticks.
pub const QUICK_CALLS_TO_RETURN: u32 = 100_000;

pub struct TransformPool {
    module: Arc<TransformModule>,
    /// The entry's state store, which a reload may hand to the next pool.
    store: Arc<StateStore>,
    /// One slot per instance, handed out in FIFO order.
    slots: Slots<GuestInstance>,
    /// Set when a call ran long on the fast path and again on a fiber: calls run on
    /// fibers until [`QUICK_CALLS_TO_RETURN`] of them in a row were quick.
    on_fiber: AtomicBool,
    /// Quick calls on fibers since the last slow one.
    quick_in_a_row: AtomicU32,
    /// Fast-path calls that ran past their ticks and were run again on a fiber.
    overruns: AtomicU64,
    /// Times the pool left the fast path, and came back to it.
    fast_path_exits: AtomicU64,
    fast_path_returns: AtomicU64,
    replaced: AtomicU64,
    /// Replacements that could not be created (their init failed, say).
    replace_failures: AtomicU64,
    /// Failed calls by cause, whatever `on_error` then did with the message.
    failures: [AtomicU64; Cause::ALL.len()],
}

impl TransformPool {
    /// Creates all instances up front, so a module whose init fails refuses the start.
    /// They share a new state store.
    pub async fn new(module: Arc<TransformModule>) -> Result<TransformPool, Failure> {
        let (max_keys, max_bytes) = module.state_limits;
        Self::over(module, Arc::new(StateStore::new(max_keys, max_bytes))).await
    }

    /// Like [`TransformPool::new`], over the state store of the pool a reload replaces
    /// (its module unchanged), with the new settings' bounds.
    pub async fn carrying(
        module: Arc<TransformModule>,
        store: Arc<StateStore>,
    ) -> Result<TransformPool, Failure> {
        let (max_keys, max_bytes) = module.state_limits;
        store.set_limits(max_keys, max_bytes);
        Self::over(module, store).await
    }

    async fn over(
        module: Arc<TransformModule>,
        store: Arc<StateStore>,
    ) -> Result<TransformPool, Failure> {
        let size = module.instances;
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size {
            idle.push(GuestInstance::new(&module, &store).await?);
        }
        Ok(TransformPool {
            module,
            store,
            slots: Slots::new(idle),
            on_fiber: AtomicBool::new(false),
            quick_in_a_row: AtomicU32::new(0),
            overruns: AtomicU64::new(0),
            fast_path_exits: AtomicU64::new(0),
            fast_path_returns: AtomicU64::new(0),
            replaced: AtomicU64::new(0),
            replace_failures: AtomicU64::new(0),
            failures: Default::default(),
        })
    }

    /// Transforms one message: checks out an instance (waiting in FIFO order while all
    /// are busy), writes the input, calls the module under the deadline, and validates
    /// every record it returned. An instance the failure may have left inconsistent is
    /// discarded and replaced. A call takes the fast path (a plain call); one still
    /// running at its second epoch tick is run again on a fresh instance on a fiber, and
    /// if it runs long there too, the pool's later calls run on fibers until
    /// [`QUICK_CALLS_TO_RETURN`] of them in a row were quick. The records borrow the
    /// instance's memory, and the instance goes back to the pool when the result is
    /// dropped.
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

    /// Waits for a slot, first come first served, and fills it if it is empty.
    async fn checkout(&self) -> Result<Checkout<'_>, Failure> {
        let slot = self.slots.take().await;
        // From here the slot is the checkout's: dropped, it goes back (empty if the
        // instance could not be created).
        let mut checkout = Checkout {
            pool: self,
            instance: slot,
        };
        if checkout.instance.is_none() {
            let fresh = self.fresh_instance().await;
            let fresh = fresh.map_err(|f| Failure::new(Cause::Unavailable, f.message))?;
            checkout.instance = Some(fresh);
        }
        Ok(checkout)
    }

    /// Fills the slots whose instances failures discarded, so that the next messages
    /// find healthy ones.
    async fn replenish(&self) {
        while self.slots.take_empty() {
            match self.fresh_instance().await {
                Ok(i) => self.slots.give_back(Some(i)),
                Err(f) => {
                    self.slots.give_back(None);
                    log::warn!("{}: {}", self.module.label, f.message);
                    return;
                }
            }
        }
    }

    async fn fresh_instance(&self) -> Result<GuestInstance, Failure> {
        match GuestInstance::new(&self.module, &self.store).await {
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

    /// Makes the pool's calls run on fibers, after a call that was slow on a fiber too.
    fn leave_the_fast_path(&self) {
        self.quick_in_a_row.store(0, Ordering::Relaxed);
        if !self.on_fiber.swap(true, Ordering::Relaxed) {
            self.fast_path_exits.fetch_add(1, Ordering::Relaxed);
            log::info!(
                "{}: a call ran longer than {:?}, twice; calls now run on fibers, which can yield",
                self.module.label,
                super::ticker::EPOCH_TICK
            );
        }
    }

    /// Counts a call on a fiber; after enough quick ones in a row, calls take the fast
    /// path again.
    fn fiber_call_done(&self, quick: bool) {
        if !quick {
            self.quick_in_a_row.store(0, Ordering::Relaxed);
            return;
        }
        if self.quick_in_a_row.fetch_add(1, Ordering::Relaxed) + 1 < QUICK_CALLS_TO_RETURN {
            return;
        }
        self.quick_in_a_row.store(0, Ordering::Relaxed);
        if self.on_fiber.swap(false, Ordering::Relaxed) {
            self.fast_path_returns.fetch_add(1, Ordering::Relaxed);
            log::info!(
                "{}: {QUICK_CALLS_TO_RETURN} calls in a row were quick; calls take the fast path again",
                self.module.label
            );
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
        self.slots.idle()
    }

    pub fn module(&self) -> &TransformModule {
        &self.module
    }

    /// The entry's state store.
    pub fn store(&self) -> &Arc<StateStore> {
        &self.store
    }

    pub fn to_json(&self) -> serde_json::Value {
        let failures: serde_json::Map<String, serde_json::Value> = Cause::ALL
            .iter()
            .map(|c| (c.as_str().to_owned(), self.failures(*c).into()))
            .collect();
        let mut doc = serde_json::json!({
            "instances": self.module.instances,
            "idle": self.idle(),
            "replaced": self.replaced(),
            "replace_failures": self.replace_failures(),
            "calls_on_fibers": self.on_fiber.load(Ordering::Relaxed),
            "quick_calls_in_a_row": self.quick_in_a_row.load(Ordering::Relaxed),
            "fast_path_overruns": self.overruns.load(Ordering::Relaxed),
            "fast_path_exits": self.fast_path_exits.load(Ordering::Relaxed),
            "fast_path_returns": self.fast_path_returns.load(Ordering::Relaxed),
            "failures": failures,
            "state": self.store.to_json(),
        });
        let code = self.module.code();
        doc[code.kind()] = code.path().display().to_string().into();
        doc
    }
}

/// More records than `transform.max_records` allows (the ABI's own ceiling reads the
/// same, from the output document's check).
fn too_many_records(count: usize, max: u32) -> Failure {
    let why = format!(
        "the module returned {count} records for one message; transform.max_records is {max} (it may be raised to {})",
        abi::MAX_RECORDS
    );
    Failure::new(Cause::BadOutput, why)
}

/// A slot on loan, with its instance unless that was discarded; the slot goes back to
/// the pool on drop.
struct Checkout<'p> {
    pool: &'p TransformPool,
    instance: Option<GuestInstance>,
}

impl Checkout<'_> {
    /// Calls the instance, on the fast path while the pool allows it, and checks its
    /// whole output before any record is used, so a bad output sends nothing.
    async fn call<U: AsRef<[u8]>>(&mut self, input: &InputFields<'_, U>) -> Result<u64, Failure> {
        if !self.pool.on_fiber.load(Ordering::Relaxed) {
            match self.instance()?.call_fast(input) {
                Ok(packed) => return self.checked(packed),
                Err(Some(failure)) => return Err(failure),
                Err(None) => return self.call_again_on_a_fiber(input).await,
            }
        }
        let instance = self.instance()?;
        let packed = instance.call(input).await?;
        let quick = instance.last_call_was_quick();
        self.pool.fiber_call_done(quick);
        self.checked(packed)
    }

    /// After a fast-path call ran past its ticks: runs it again from the start on a fresh
    /// instance (the interrupted one may be inconsistent), on a fiber. If it runs long
    /// there too, the module is slow on this message, and the pool's calls run on fibers
    /// from now on; if not, its thread was held up (preempted, say), and the pool stays
    /// on the fast path.
    async fn call_again_on_a_fiber<U: AsRef<[u8]>>(
        &mut self,
        input: &InputFields<'_, U>,
    ) -> Result<u64, Failure> {
        self.pool.overruns.fetch_add(1, Ordering::Relaxed);
        self.instance = None;
        let fresh = GuestInstance::new(&self.pool.module, &self.pool.store)
            .await
            .map_err(|f| {
                Failure::new(
                    Cause::Unavailable,
                    format!("could not replace an instance: {f}"),
                )
            })?;
        let instance = self.instance.insert(fresh);
        let called = instance.call(input).await;
        if !instance.last_call_was_quick() {
            self.pool.leave_the_fast_path();
        }
        self.checked(called?)
    }

    fn instance(&mut self) -> Result<&mut GuestInstance, Failure> {
        self.instance
            .as_mut()
            .ok_or_else(|| Failure::new(Cause::Unavailable, "the instance was discarded"))
    }

    /// Checks every record of the output document at `packed`.
    fn checked(&mut self, packed: u64) -> Result<u64, Failure> {
        let max = self.pool.module.max_records;
        let instance = self.instance()?;
        match instance.output(packed)? {
            Output::Error(msg) => Err(Failure::reported(Cause::GuestError, msg)),
            Output::Invalid(msg) => Err(Failure::reported(Cause::BadOutput, msg)),
            Output::Records(records) => {
                if records.len() > max as usize {
                    return Err(too_many_records(records.len(), max));
                }
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

    /// Drops the instance instead of returning it: its slot goes back empty, to be
    /// filled for the next messages.
    fn discard(mut self) {
        self.instance = None;
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        self.pool.slots.give_back(self.instance.take());
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

    /// The bytes of linear memory the instance that made the records holds now.
    pub fn instance_memory(&self) -> usize {
        self.checkout
            .instance
            .as_ref()
            .map_or(0, GuestInstance::memory_size)
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
