//! `Routes::matches` runs for every publish, so it must not allocate (up to 8 matches).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rmqtt_bridge_egress_kafka::route::Routes;
use smallvec::SmallVec;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// Counts the allocations of the current thread.
struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator, which upholds the
// `GlobalAlloc` contract; counting touches only a thread-local `Cell` and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's `layout` contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn matching_eight_entries_among_a_thousand_does_not_allocate() {
    let matching = [
        "#",
        "site/#",
        "site/+/+/telemetry/#",
        "site/7/#",
        "site/7/+/telemetry/+",
        "+/7/line/telemetry/temp",
        "site/+/line/#",
        "site/7/line/telemetry/temp",
    ];
    let others: Vec<String> = (0..1000).map(|i| format!("site/{i}/status")).collect();
    let filters = matching
        .into_iter()
        .chain(others.iter().map(String::as_str));
    let routes = Routes::new(filters.enumerate()).unwrap();

    let mut out = SmallVec::new();
    let before = ALLOCATIONS.with(Cell::get);
    routes.matches("site/7/line/telemetry/temp", &mut out);
    assert_eq!(ALLOCATIONS.with(Cell::get), before);
    assert_eq!(out.as_slice(), [0, 1, 2, 3, 4, 5, 6, 7]);
}
