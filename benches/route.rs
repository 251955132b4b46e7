//! The cost of routing one publish with 1, 100 and 1,000 entries: our `Routes`,
//! rmqtt's `TopicTree` (what the broker and the upstream plugin route with), and a
//! scan of every filter with rmqtt's `Topic::matches_str`. The topic matches one entry.
//!
//! `cargo bench --bench route`

use std::hint::black_box;
use std::str::FromStr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rmqtt::topic::Topic;
use rmqtt::trie::TopicTree;
use rmqtt_bridge_egress_kafka::route::Routes;
use smallvec::SmallVec;

type Out = SmallVec<[usize; 8]>;

/// Entry `i`'s filter: per site, a telemetry wildcard and an exact status topic.
fn filter(i: usize) -> String {
    if i.is_multiple_of(2) {
        format!("site/{i}/+/telemetry/#")
    } else {
        format!("site/{i}/status")
    }
}

fn routes(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    for n in [1, 100, 1000] {
        let filters: Vec<String> = (0..n).map(filter).collect();
        let parsed: Vec<(usize, Topic)> = filters
            .iter()
            .map(|f| Topic::from_str(f).unwrap())
            .enumerate()
            .collect();
        // An even entry, a telemetry filter, in the middle.
        let target = n / 4 * 2;
        let topic = format!("site/{target}/line1/telemetry/temp");
        let expected: Out = SmallVec::from_slice(&[target]);

        let ours = Routes::new(filters.iter().map(String::as_str).enumerate()).unwrap();
        let run_ours = |topic: &str| {
            let mut out = Out::new();
            ours.matches(topic, &mut out);
            out
        };
        assert_eq!(run_ours(&topic), expected);
        group.bench_with_input(BenchmarkId::new("routes", n), topic.as_str(), |b, t| {
            b.iter(|| run_ours(black_box(t)))
        });

        let mut tree = TopicTree::default();
        for (id, f) in &parsed {
            tree.insert(f, *id);
        }
        let run_tree = |topic: &str| {
            let topic = Topic::from_str(topic).unwrap();
            let mut out = Out::new();
            for (_, ids) in tree.matches(&topic).iter() {
                out.extend(ids.into_iter().copied());
            }
            out
        };
        assert_eq!(run_tree(&topic), expected);
        group.bench_with_input(BenchmarkId::new("topic_tree", n), topic.as_str(), |b, t| {
            b.iter(|| run_tree(black_box(t)))
        });

        let run_scan = |topic: &str| -> Out {
            parsed
                .iter()
                .filter(|(_, f)| f.matches_str(topic))
                .map(|(id, _)| *id)
                .collect()
        };
        assert_eq!(run_scan(&topic), expected);
        group.bench_with_input(
            BenchmarkId::new("linear_scan", n),
            topic.as_str(),
            |b, t| b.iter(|| run_scan(black_box(t))),
        );
    }
    group.finish();
}

criterion_group!(benches, routes);
criterion_main!(benches);
