//! The core's own speed during a run: a fixed piece of integer work in the core's
//! caches, timed in the CPU time of the thread that does it, five times a second through
//! the measured window. The shared host of this benchmark has slow periods of minutes in
//! which the broker needs 20–45 % more CPU per message; a steady canary across them
//! says that the cores' clock is not what changes (docs/benchmark-history.md, "The host's slow periods").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Times the work in a thread of its own from `after` for `window`.
pub struct Canary {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<f64>>,
}

impl Canary {
    pub fn start(after: Duration, window: Duration) -> Canary {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(after);
            let end = Instant::now() + window;
            let mut table = vec![0u64; 4096];
            let mut samples = Vec::new();
            while Instant::now() < end && !flag.load(Ordering::Relaxed) {
                let t0 = thread_cpu_ns();
                std::hint::black_box(work(&mut table));
                samples.push((thread_cpu_ns() - t0) as f64 / 1000.0);
                std::thread::sleep(Duration::from_millis(200));
            }
            samples
        });
        Canary { stop, thread }
    }

    /// The median time of the work, µs (`None` if it never ran).
    pub fn finish(self) -> Option<f64> {
        self.stop.store(true, Ordering::Relaxed);
        let mut samples = self.thread.join().ok()?;
        samples.sort_by(f64::total_cmp);
        samples.get(samples.len() / 2).copied()
    }
}

/// About 0.15 ms of integer work on a 32 KiB table.
fn work(table: &mut [u64]) -> u64 {
    let mask = table.len() - 1;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = x as usize & mask;
        table[i] = table[i].wrapping_add(x);
    }
    x
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; the clock id is a constant Linux has.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_work_takes_cpu_time_and_is_sampled() {
        let canary = Canary::start(Duration::ZERO, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(450));
        let us = canary.finish().expect("at least one sample");
        assert!(us > 10.0, "{us} µs for 100,000 rounds");
    }
}
