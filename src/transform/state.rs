//! What a store carries for its instance: the memory cap, the call deadline, and what the
//! host functions need. Kept apart from the call path so that imports, engine and
//! instances all depend on it and not on each other.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Memory, ResourceLimiter, Result, UpdateDeadline};

use super::failure::Stopped;
use super::state_store::StateStore;
use super::ticker::{EpochState, EPOCH_TICK};
use crate::observe::LogLimiter;

/// Ticks a call on the fast path (a plain call, no fiber, so it cannot yield) may see
/// before it is stopped and run again on a fiber. The first tick may come right after
/// the call started, so the second one is the first sign of a slow call.
const FAST_PATH_TICKS: u64 = 2;

/// Store data of one instance.
pub(crate) struct HostState {
    pub(crate) memory_cap: MemoryCap,
    pub(crate) deadline: Deadline,
    /// The instance's memory, for host functions.
    pub(crate) memory: Option<Memory>,
    /// `bridge "x" entry N`, for log lines.
    pub(crate) label: Arc<str>,
    pub(crate) guest_log: Arc<LogLimiter>,
    /// Told while guest code runs on a fiber.
    pub(crate) epoch: Arc<EpochState>,
    /// The entry's state store, shared by the pool's instances.
    pub(crate) store: Arc<StateStore>,
}

/// Caps linear memory at `transform.max_memory` and remembers when a guest hit the cap,
/// so that the trap that usually follows is reported as `memory`.
pub(crate) struct MemoryCap {
    max: usize,
    hit: bool,
}

impl MemoryCap {
    pub(crate) fn new(max: usize) -> Self {
        MemoryCap { max, hit: false }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    pub(crate) fn was_hit(&self) -> bool {
        self.hit
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        if desired > self.max {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A call's time budget, counted in epoch ticks: set per call and decremented by the
/// epoch callback, so a call costs no clock read.
pub(crate) struct Deadline {
    timeout: Duration,
    ticks_left: u64,
    ticks_seen: u64,
    /// Whether the call runs on a fiber and may yield to the broker's other tasks.
    on_fiber: bool,
}

impl Deadline {
    pub(crate) fn new(timeout: Duration) -> Self {
        Deadline {
            timeout,
            ticks_left: 0,
            ticks_seen: 0,
            on_fiber: true,
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the last call, wherever it ran, would have finished on the fast path.
    pub(crate) fn fit_the_fast_path(&self) -> bool {
        self.ticks_seen < FAST_PATH_TICKS
    }

    /// Starts a call's budget: the ticks that cover the timeout, plus one, since the
    /// first tick may come right after the call starts.
    fn start(&mut self, on_fiber: bool) {
        self.ticks_left = (self.timeout.as_nanos() / EPOCH_TICK.as_nanos()) as u64 + 1;
        self.ticks_seen = 0;
        self.on_fiber = on_fiber;
    }

    /// The epoch callback's answer: stop the call once its budget is spent; otherwise
    /// yield to the broker's other tasks and carry on (on a fiber), carry on (a fast-path
    /// call in its first tick), or stop it to run it again on a fiber.
    pub(crate) fn tick(&mut self) -> Result<UpdateDeadline> {
        self.ticks_left = self.ticks_left.saturating_sub(1);
        self.ticks_seen += 1;
        if self.ticks_left == 0 {
            Err(Stopped::Deadline.into())
        } else if self.on_fiber {
            Ok(UpdateDeadline::Yield(1))
        } else if self.ticks_seen < FAST_PATH_TICKS {
            Ok(UpdateDeadline::Continue(1))
        } else {
            Err(Stopped::NeedsFiber.into())
        }
    }
}

impl HostState {
    /// Readies the state for a guest call, on a fiber or on the fast path.
    pub(crate) fn start_call(&mut self, on_fiber: bool) {
        self.deadline.start(on_fiber);
        self.memory_cap.hit = false;
    }
}
