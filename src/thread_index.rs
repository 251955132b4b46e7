//! A small number per thread, given out in the order threads first ask: per-thread
//! shards of a counter, and an instance pool's preference for the instance a thread
//! used last, key on it.

use std::sync::atomic::{AtomicUsize, Ordering};

/// This thread's number.
pub fn this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|i| *i)
}
