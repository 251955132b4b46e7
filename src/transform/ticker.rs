//! What advances the engine's epoch, the clock of every guest call's deadline.
//!
//! A thread of its own that sleeps for each tick costs a wake-up a tick whatever the
//! load: about 7 µs of CPU on this VM, and a broker thread preempted for it. So the
//! ticks come from one of two drivers:
//!
//! - a task on the broker's runtime ticks every [`EPOCH_TICK`]. Under load its timer
//!   fires on a worker that is awake anyway, between two tasks, with no wake-up of its
//!   own. It drives while no guest runs on a fiber: fast-path calls take microseconds,
//!   and one that runs long only needs its second tick to be stopped;
//! - the `wasm-epoch` thread drives while guest code runs on a fiber (a slow module
//!   yields to the broker at every tick, and only a thread of its own can interrupt a
//!   guest that holds every worker), or while the task has not ticked for
//!   [`WATCH_PERIOD`] (every worker inside a fast-path call, or no runtime). Otherwise
//!   it only looks, every [`WATCH_PERIOD`].
//!
//! Whoever drives, the epoch advances at most once per [`MIN_GAP`], so a hand-over never
//! makes two ticks in a row that would stop a fast-path call which has just started, or
//! cut a deadline short. A fast-path call holds a broker thread for two ticks at most,
//! as before, unless such calls hold every worker: then for at most [`WATCH_PERIOD`]
//! more, before the thread takes over.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::MissedTickBehavior;
use wasmtime::Engine;

use crate::observe::clock;

/// How often the epoch advances: the resolution of `transform.timeout` and the longest
/// a running module holds a broker thread before yielding.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How often the thread looks at the task's ticks while it does not drive.
pub const WATCH_PERIOD: Duration = Duration::from_millis(10);

/// The shortest time between two ticks of the epoch. A little under [`EPOCH_TICK`]: the
/// drivers' own ticks come at least a tick apart, and a timer that fires a little early
/// must not lose its tick.
const MIN_GAP: Duration = Duration::from_micros(900);

/// The epoch's two drivers; both stop when it is dropped.
pub(crate) struct EpochTicker {
    state: Arc<EpochState>,
    task: Option<AbortHandle>,
    thread: Option<JoinHandle<()>>,
}

/// What the drivers and the guest calls share.
pub(crate) struct EpochState {
    /// Guest code running on fibers now.
    on_fibers: AtomicUsize,
    /// Whether the thread drives; the task's ticks then mostly fall within its gap.
    thread_drives: AtomicBool,
    /// The task's beats, one a tick, whether it advanced the epoch or not.
    beats: AtomicU64,
    /// When the epoch last advanced, on the time-stamp counter.
    last_tick: AtomicU64,
    stop: AtomicBool,
    thread: OnceLock<Thread>,
}

impl EpochTicker {
    /// Advances `engine`'s epoch every tick.
    pub(crate) fn start(engine: &Engine) -> Result<EpochTicker, String> {
        let engine = engine.clone();
        Self::start_with(move || engine.increment_epoch())
    }

    /// Starts the task on the current tokio runtime, if there is one, and the thread;
    /// the driver calls `advance` for a tick.
    fn start_with<F>(advance: F) -> Result<EpochTicker, String>
    where
        F: Fn() + Clone + Send + Sync + 'static,
    {
        let state = Arc::new(EpochState::new());
        let task = tokio::runtime::Handle::try_current().ok().map(|rt| {
            rt.spawn(beat(advance.clone(), state.clone()))
                .abort_handle()
        });
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || watch(advance, &shared))
            .map_err(|e| format!("cannot start the epoch thread: {e}"))?;
        let _ = state.thread.set(thread.thread().clone());
        Ok(EpochTicker {
            state,
            task,
            thread: Some(thread),
        })
    }

    pub(crate) fn state(&self) -> &Arc<EpochState> {
        &self.state
    }
}

impl EpochState {
    fn new() -> EpochState {
        EpochState {
            on_fibers: AtomicUsize::new(0),
            thread_drives: AtomicBool::new(false),
            beats: AtomicU64::new(0),
            last_tick: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            thread: OnceLock::new(),
        }
    }

    /// Marks guest code running on a fiber until the guard is dropped; the thread takes
    /// over driving at once if it was only looking.
    pub(crate) fn on_fiber(self: &Arc<Self>) -> OnFiber {
        let first = self.on_fibers.fetch_add(1, Ordering::AcqRel) == 0;
        if first && !self.thread_drives.load(Ordering::Acquire) {
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
        OnFiber(self.clone())
    }

    /// Advances the epoch unless it advanced less than [`MIN_GAP`] ago.
    fn tick(&self, advance: &impl Fn()) {
        let clock = clock::tsc();
        let (now, last) = (clock.raw(), self.last_tick.load(Ordering::Acquire));
        if last != 0 && (now < last || clock.delta_as_nanos(last, now) < MIN_GAP.as_nanos() as u64)
        {
            return;
        }
        let won = self
            .last_tick
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if won {
            advance();
        }
    }
}

/// Guest code on a fiber; see [`EpochState::on_fiber`].
pub(crate) struct OnFiber(Arc<EpochState>);

impl Drop for OnFiber {
    fn drop(&mut self) {
        self.0.on_fibers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The task: a beat and a tick every [`EPOCH_TICK`].
async fn beat(advance: impl Fn(), state: Arc<EpochState>) {
    let mut every = tokio::time::interval(EPOCH_TICK);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        state.tick(&advance);
        state.beats.fetch_add(1, Ordering::Release);
    }
}

/// The thread: drives every [`EPOCH_TICK`] while guest code runs on a fiber or the task
/// missed its beat since the last look; otherwise looks every [`WATCH_PERIOD`].
fn watch(advance: impl Fn(), state: &EpochState) {
    let mut seen = state.beats.load(Ordering::Acquire);
    while !state.stop.load(Ordering::Acquire) {
        let beats = state.beats.load(Ordering::Acquire);
        let drive = state.on_fibers.load(Ordering::Acquire) > 0 || beats == seen;
        state.thread_drives.store(drive, Ordering::Release);
        seen = beats;
        if drive {
            state.tick(&advance);
            std::thread::sleep(EPOCH_TICK);
        } else {
            std::thread::park_timeout(WATCH_PERIOD);
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.state.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A ticker that counts the epoch's ticks, whoever drives.
    fn counting() -> (EpochTicker, Arc<AtomicU64>) {
        let ticks = Arc::new(AtomicU64::new(0));
        let count = ticks.clone();
        let ticker = EpochTicker::start_with(move || {
            count.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        (ticker, ticks)
    }

    fn load(n: &AtomicU64) -> u64 {
        n.load(Ordering::Relaxed)
    }

    /// A counting ticker on a runtime of one idle worker, once the task drives.
    fn on_a_free_runtime() -> (tokio::runtime::Runtime, EpochTicker, Arc<AtomicU64>) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let (ticker, ticks) = rt.block_on(async { counting() });
        assert!(settles_on(&ticker, false));
        (rt, ticker, ticks)
    }

    /// Waits until `ticks` has grown by `n`, for at most 10 s.
    fn wait_for(ticks: &AtomicU64, n: u64) {
        let (start, deadline) = (load(ticks), Instant::now() + Duration::from_secs(10));
        while load(ticks) < start + n {
            assert!(
                Instant::now() < deadline,
                "{} ticks in 10 s",
                load(ticks) - start
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Whether the thread drives, once `expected` has held for a moment (it decides at
    /// its looks, which are up to a watch period apart).
    fn settles_on(ticker: &EpochTicker, expected: bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if ticker.state.thread_drives.load(Ordering::Acquire) == expected {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    /// Two ticks closer than the gap advance the epoch once.
    #[test]
    fn ticks_closer_than_the_gap_count_once() {
        let (state, ticks) = (EpochState::new(), AtomicU64::new(0));
        let advance = || {
            ticks.fetch_add(1, Ordering::Relaxed);
        };
        state.tick(&advance);
        state.tick(&advance);
        assert_eq!(load(&ticks), 1);
        std::thread::sleep(EPOCH_TICK);
        state.tick(&advance);
        assert_eq!(load(&ticks), 2);
    }

    /// With a free runtime and no guest on a fiber, the task ticks and the thread only
    /// looks.
    #[test]
    fn a_free_runtime_drives() {
        let (_rt, ticker, ticks) = on_a_free_runtime();
        let (ticks_before, beats_before) = (load(&ticks), load(&ticker.state.beats));
        wait_for(&ticker.state.beats, 200);
        let ticked = load(&ticks) - ticks_before;
        let beats = load(&ticker.state.beats) - beats_before;
        // The thread ticks only when the task missed a watch period: a stall of the
        // whole machine, which a busy one may have once or twice.
        assert!(ticked <= beats + 20, "{ticked} ticks for {beats} beats");
    }

    /// Without a runtime, the thread drives.
    #[test]
    fn without_a_runtime_the_thread_drives() {
        let (ticker, ticks) = counting();
        assert!(ticker.task.is_none());
        wait_for(&ticks, 50);
        assert!(ticker.state.thread_drives.load(Ordering::Acquire));
    }

    /// While the runtime's one worker is held (as by a call on the fast path), the thread
    /// drives; once the worker is free, the task drives again.
    #[test]
    fn the_thread_takes_over_from_a_held_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let (ticker, ticks) = rt.block_on(async {
            let (ticker, ticks) = counting();
            tokio::time::sleep(Duration::from_millis(30)).await;
            let beats = load(&ticker.state.beats);
            assert!(beats > 0, "the task never beat");
            wait_for(&ticks, 30);
            assert_eq!(load(&ticker.state.beats), beats, "the runtime was held");
            (ticker, ticks)
        });
        let handed_back = rt.block_on(async {
            for _ in 0..5000 {
                if !ticker.state.thread_drives.load(Ordering::Acquire) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            false
        });
        assert!(handed_back, "the thread kept driving with the runtime free");
        drop((ticker, ticks));
    }

    /// Guest code on a fiber makes the thread drive at once; with the task ticking too,
    /// the epoch still advances once a tick, not twice.
    #[test]
    fn guest_code_on_a_fiber_makes_the_thread_drive_without_double_ticks() {
        let (_rt, ticker, ticks) = on_a_free_runtime();
        let fiber = ticker.state().on_fiber();
        assert!(settles_on(&ticker, true));
        assert!(ticker.task.is_some(), "the task still ticks");
        let (start, before) = (Instant::now(), load(&ticks));
        std::thread::sleep(Duration::from_millis(200));
        let ms = start.elapsed().as_millis() as u64;
        let ticked = load(&ticks) - before;
        // Two drivers a tick apart each, out of phase: at worst one tick per MIN_GAP.
        let most = ms * 1000 / MIN_GAP.as_micros() as u64 + 2;
        assert!(ticked > 20 && ticked <= most, "{ticked} ticks in {ms} ms");
        drop(fiber);
        assert!(settles_on(&ticker, false));
    }
}
