//! The clocks of the record path, read from the CPU's time-stamp counter (`quanta`)
//! instead of the system clock.
//!
//! A `clock_gettime` on this path is dear: its `rdtscp` waits for every load before it,
//! and the loads before it miss the cache, so each read cost 45–90 ns in the broker where
//! it costs 20 ns in a loop (docs/benchmark-history.md, "The transform path" and
//! "Wake-ups, clock reads and the fast path"). A plain `rdtsc` does not wait. Where the
//! CPU has no invariant counter, `quanta` reads the system clock instead.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// How long a thread's wall-clock anchor serves before the system clock is read again.
/// The counter's scale is calibrated once and can be off by a few percent on a busy
/// machine, so the error of [`wall_ms`] stays below a few percent of this.
const ANCHOR_LIFE_NS: u64 = 10_000_000;

/// The counter, calibrated against the system's monotonic clock on first use: a busy
/// loop of about 1 ms (at most 200), once per process. The plugin calls it when it
/// starts (see [`calibrate`]) so that no record waits for it.
pub fn tsc() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Calibrates the counter now (see [`tsc`]).
pub fn calibrate() {
    tsc();
}

thread_local! {
    /// This thread's last reading of the system clock: `(counter, ns since the epoch)`.
    static ANCHOR: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Milliseconds since the Unix epoch, as `SystemTime` would say within a fraction of a
/// millisecond: the system clock read at most every 10 ms per thread, and the counter
/// since.
pub fn wall_ms() -> i64 {
    let clock = tsc();
    let raw = clock.raw();
    ANCHOR.with(|anchor| {
        let (at, ns) = anchor.get();
        let since = clock.delta_as_nanos(at, raw);
        // `raw < at` after a move to a CPU whose counter is behind: read the clock again.
        let ns = if at != 0 && raw >= at && since < ANCHOR_LIFE_NS {
            ns + since
        } else {
            let ns = system_ns();
            anchor.set((raw, ns));
            ns
        };
        (ns / 1_000_000) as i64
    })
}

fn system_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn system_ms() -> i64 {
        (system_ns() / 1_000_000) as i64
    }

    /// Whether `wall_ms` lies between two readings of the system clock taken around it,
    /// give or take `slack` ms.
    fn agrees(slack: i64) -> Result<(), String> {
        let before = system_ms();
        let ours = wall_ms();
        let after = system_ms();
        if (before - slack..=after + slack).contains(&ours) {
            Ok(())
        } else {
            Err(format!(
                "wall_ms {ours} outside {before}..={after} ± {slack}"
            ))
        }
    }

    /// Right after an anchor, between anchors, and after one has expired, the counter's
    /// time agrees with the system clock to the millisecond (one more for a calibration
    /// made on a busy machine).
    #[test]
    fn wall_time_agrees_with_the_system_clock() {
        calibrate();
        agrees(1).unwrap();
        for pause_ms in [1, 3, 7, 12, 30] {
            std::thread::sleep(Duration::from_millis(pause_ms));
            agrees(2).unwrap_or_else(|e| panic!("after {pause_ms} ms: {e}"));
        }
    }

    /// Every thread keeps an anchor of its own, and each agrees.
    #[test]
    fn wall_time_agrees_on_every_thread() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..1000).try_for_each(|_| agrees(2))))
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
    }
}
