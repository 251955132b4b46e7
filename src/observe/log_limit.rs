//! Rate-limited logging: at most one line per interval per call site, with a count of
//! what was suppressed, so a failure storm cannot flood the log or slow the hot path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

fn millis_since_start() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Lets through at most one log line per interval and counts the rest, so a failure
/// storm cannot flood the log or slow the hot path.
pub struct LogLimiter {
    interval_ms: u64,
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    pub const fn new(interval_ms: u64) -> Self {
        LogLimiter {
            interval_ms,
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were suppressed since.
    pub fn allow(&self) -> Option<u64> {
        let now = millis_since_start();
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + self.interval_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

impl Default for LogLimiter {
    fn default() -> Self {
        LogLimiter::new(1000)
    }
}

/// Logs through a [`LogLimiter`], noting how many lines were suppressed before this one.
#[macro_export]
macro_rules! log_limited {
    ($limiter:expr, $level:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $limiter.allow() {
            if suppressed > 0 {
                log::log!($level, "{} ({} similar messages suppressed)", format_args!($($arg)+), suppressed);
            } else {
                log::log!($level, $($arg)+);
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_lets_one_through_per_interval() {
        let l = LogLimiter::new(60_000);
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        assert_eq!(l.suppressed.load(Ordering::Relaxed), 2);
    }
}
