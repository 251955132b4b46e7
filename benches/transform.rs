//! The cost of the transform path: an identity module (the `passthrough` example) called
//! through a pooled instance, against a native identity function, at 64 B, 256 B and
//! 4 KB; single-threaded, and with 2 threads contending for one pool.
//!
//! Build the example modules first: `cd examples && cargo build --release --target
//! wasm32-unknown-unknown` (scripts/bench.sh does), then `cargo bench --bench transform`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use abi::input::InputFields;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rmqtt_bridge_egress_kafka::config::{OnError, TransformCode, TransformConfig};
use rmqtt_bridge_egress_kafka::transform::{TransformEngine, TransformModule, TransformPool};

const SIZES: [usize; 3] = [64, 256, 4096];

fn input(payload: &[u8]) -> InputFields<'_, &'static [u8]> {
    bridge_testkit::publish_input(b"bench/site/line/telemetry", payload)
}

fn passthrough() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/target/wasm32-unknown-unknown/release/passthrough.wasm");
    assert!(
        path.is_file(),
        "{} is missing: build the examples first (cd examples && cargo build --release --target wasm32-unknown-unknown)",
        path.display()
    );
    path
}

fn settings(instances: usize) -> TransformConfig {
    TransformConfig {
        code: TransformCode::Module(passthrough()),
        config: BTreeMap::new(),
        instances,
        timeout: Duration::from_millis(100),
        max_memory: 16 << 20,
        on_error: OnError::Drop,
        dead_letter_topic: None,
        max_records: abi::DEFAULT_MAX_RECORDS,
        state_max_keys: 1000,
        state_max_bytes: 1 << 20,
    }
}

async fn pool(engine: &Arc<TransformEngine>, instances: usize) -> TransformPool {
    let module = TransformModule::load(engine, &settings(instances), "bench").unwrap();
    TransformPool::new(Arc::new(module)).await.unwrap()
}

/// What the host does per message, minus the guest: hand over the payload, get it back.
#[inline(never)]
fn native_identity<'a>(fields: &InputFields<'a, &'static [u8]>) -> &'a [u8] {
    fields.payload
}

/// One message through the pool; returns the payload length of the record, so the
/// output is read like the bridge reads it.
async fn transform_once(pool: &TransformPool, fields: &InputFields<'_, &'static [u8]>) -> usize {
    let output = pool.run(fields).await.unwrap();
    output
        .records()
        .map(|r| r.payload.map_or(0, <[u8]>::len))
        .sum()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engine = Arc::new(TransformEngine::new([&settings(4)]).unwrap());
    let single = rt.block_on(pool(&engine, 1));
    let shared = Arc::new(rt.block_on(pool(&engine, 1)));
    let pair = Arc::new(rt.block_on(pool(&engine, 2)));

    let mut g = c.benchmark_group("transform");
    for size in SIZES {
        let payload = vec![b'x'; size];
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("native", size), &payload, |b, p| {
            b.iter(|| black_box(native_identity(&input(black_box(p)))).len())
        });
        g.bench_with_input(BenchmarkId::new("wasm_1_thread", size), &payload, |b, p| {
            b.to_async(&rt)
                .iter(|| async { transform_once(&single, &input(black_box(p))).await })
        });
        for (name, pool) in [
            ("wasm_2_threads_1_instance", &shared),
            ("wasm_2_threads_2_instances", &pair),
        ] {
            g.bench_with_input(BenchmarkId::new(name, size), &payload, |b, p| {
                // Two tasks on two worker threads split the iterations; the time per
                // message is the wall time over all of them.
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    rt.block_on(async {
                        let tasks: Vec<_> = (0..2)
                            .map(|t| {
                                let (pool, p) = (pool.clone(), p.clone());
                                let n = iters / 2 + u64::from(t == 0) * (iters % 2);
                                tokio::spawn(async move {
                                    for _ in 0..n {
                                        black_box(transform_once(&pool, &input(&p)).await);
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                    });
                    start.elapsed()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
