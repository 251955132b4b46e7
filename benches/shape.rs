//! The cost of shaping one message with templates, as `bridge-bench`'s configuration i
//! does (key `${payload.device_id}`, headers `site` and `line` from topic levels 1 and
//! 2), on the benchmark's 256-byte payload; and of the same entry without templates.
//!
//! `cargo bench --bench shape`

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use rmqtt_bridge_egress_kafka::shape::{Message, Shaped, Template, Templates, TopicTemplate};

fn templates(c: &mut Criterion) {
    let topic: TopicTemplate = "bench".parse().unwrap();
    let key: Template = "${payload.device_id}".parse().unwrap();
    let headers: BTreeMap<String, Template> = [("site", "${topic.1}"), ("line", "${topic.2}")]
        .into_iter()
        .map(|(n, t)| (n.to_owned(), t.parse().unwrap()))
        .collect();
    let none = BTreeMap::new();
    let mut payload =
        br#"{"device_id":"dev-3","pub":3,"seq":123456,"t_us":1733400000123456,"pad":""#.to_vec();
    payload.resize(254, b'x');
    payload.extend_from_slice(b"\"}");
    let message = Message {
        topic: "bench/site1/line3/telemetry",
        client_id: "bench-3",
        username: None,
        payload: &payload,
        qos: 1,
        retain: false,
        timestamp_ms: 1_733_400_000_123,
        user_properties: &[],
    };
    let shaped = Templates {
        topic: &topic,
        key: Some(&key),
        headers: &headers,
        timestamp: None,
        payload: None,
        skip_levels: 0,
    };
    let plain = Templates {
        key: None,
        headers: &none,
        ..shaped
    };
    let mut group = c.benchmark_group("shape");
    for (name, templates) in [("key and two headers", shaped), ("no templates", plain)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let s = Shaped::new(black_box(templates), black_box(message));
                black_box((s.topic().is_ok(), s.key().is_some(), s.headers().count()))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, templates);
criterion_main!(benches);
