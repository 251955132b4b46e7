//! What runs for every publish must not allocate: `Routes::matches` (up to 8 matches), and
//! templates whose values are topic levels, plain JSON strings or numbers.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use std::collections::BTreeMap;

use rmqtt_bridge_egress_kafka::route::Routes;
use rmqtt_bridge_egress_kafka::shape::{Message, Shaped, Template, Templates, TopicTemplate};
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

#[test]
fn keying_by_a_member_with_topic_level_headers_does_not_allocate() {
    let topic: TopicTemplate = "telemetry".parse().unwrap();
    let key: Template = "${payload.device_id}".parse().unwrap();
    let headers: BTreeMap<String, Template> = [("site", "${topic.1}"), ("line", "${topic.2}")]
        .into_iter()
        .map(|(n, t)| (n.to_owned(), t.parse().unwrap()))
        .collect();
    let timestamp: Template = "${payload.t_ms}".parse().unwrap();
    let templates = Templates {
        topic: &topic,
        key: Some(&key),
        headers: &headers,
        timestamp: Some(&timestamp),
        payload: None,
        skip_levels: 0,
    };
    let payload = br#"{"seq": 7, "device_id": "dev-42", "t_ms": 1733400000123, "pad": "xx"}"#;
    let message = Message {
        topic: "sensors/plant1/line3/telemetry",
        client_id: "c1",
        username: None,
        payload,
        qos: 1,
        retain: false,
        timestamp_ms: 0,
        user_properties: &[],
    };

    let before = ALLOCATIONS.with(Cell::get);
    let shaped = Shaped::new(templates, message);
    let key = shaped.key().unwrap().unwrap();
    let site = shaped
        .headers()
        .find(|(n, _)| *n == "site")
        .unwrap()
        .1
        .unwrap();
    let ts = shaped.timestamp().unwrap().unwrap();
    assert_eq!(ALLOCATIONS.with(Cell::get), before);
    assert_eq!(
        (key, site, ts),
        (&b"dev-42"[..], &b"plant1"[..], 1_733_400_000_123)
    );
}
