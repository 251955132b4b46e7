//! What a store carries for its instance: the memory cap, the call deadline, and what the
//! host functions need. Kept apart from the call path so that imports, engine and
//! instances all depend on it and not on each other.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Memory, ResourceLimiter, Result, UpdateDeadline};

use super::failure::DeadlineExceeded;
use crate::observe::LogLimiter;

/// How often the epoch advances: the resolution of `transform.timeout` and the longest
/// a running module holds a broker thread before yielding.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Store data of one instance.
pub(crate) struct HostState {
    pub(crate) memory_cap: MemoryCap,
    pub(crate) deadline: Deadline,
    /// The instance's memory, for host functions.
    pub(crate) memory: Option<Memory>,
    /// `bridge "x" entry N`, for log lines.
    pub(crate) label: Arc<str>,
    pub(crate) guest_log: Arc<LogLimiter>,
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
}

impl Deadline {
    pub(crate) fn new(timeout: Duration) -> Self {
        Deadline {
            timeout,
            ticks_left: 0,
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Starts a call's budget: the ticks that cover the timeout, plus one, since the
    /// first tick may come right after the call starts.
    pub(crate) fn start(&mut self) {
        self.ticks_left = (self.timeout.as_nanos() / EPOCH_TICK.as_nanos()) as u64 + 1;
    }

    /// The epoch callback's answer: yield to the broker's other tasks and carry on, or
    /// stop the call once its budget is spent.
    pub(crate) fn tick(&mut self) -> Result<UpdateDeadline> {
        self.ticks_left = self.ticks_left.saturating_sub(1);
        if self.ticks_left == 0 {
            Err(DeadlineExceeded.into())
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    }
}

impl HostState {
    /// Readies the state for a guest call.
    pub(crate) fn start_call(&mut self) {
        self.deadline.start();
        self.memory_cap.hit = false;
    }
}
