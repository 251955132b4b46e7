//! The WebAssembly host against hand-written WAT modules: correct outputs, and every way
//! a guest can fail, each contained, classified, counted, and followed by a normally
//! served message on a fresh instance.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use abi::input::InputFields;
use rmqtt_bridge_egress_kafka::config::{OnError, TransformCode, TransformConfig};
use rmqtt_bridge_egress_kafka::transform::{
    Cause, Failure, TransformEngine, TransformModule, TransformPool, Transformed,
    QUICK_CALLS_TO_RETURN,
};

/// Helpers shared by the fixtures. Memory layout: output document at 1024, data at
/// 2048, input buffer at 65536 (page 2).
const PRELUDE: &str = r#"
  (func (export "rmqtt_transform_abi_v1"))
  (func (export "rmqtt_transform_reserve") (param i32) (result i32) (i32.const 65536))
  ;; address of the payload's length field: in + 24 (fixed part) + 4 + topic length
  (func $payload_len_at (param $in i32) (result i32)
    (i32.add (i32.add (local.get $in) (i32.const 28)) (i32.load (i32.add (local.get $in) (i32.const 24)))))
  ;; writes a record descriptor: payload, optional topic (len -1 = entry default), no key
  (func $record (param $at i32) (param $ptr i32) (param $len i32) (param $tptr i32) (param $tlen i32)
    (i32.store (local.get $at) (i32.const 0))
    (i32.store offset=4 (local.get $at) (i32.const 0))
    (i64.store offset=8 (local.get $at) (i64.const 0))
    (i32.store offset=16 (local.get $at) (local.get $tptr))
    (i32.store offset=20 (local.get $at) (local.get $tlen))
    (i32.store offset=24 (local.get $at) (i32.const 0))
    (i32.store offset=28 (local.get $at) (i32.const -1))
    (i32.store offset=32 (local.get $at) (local.get $ptr))
    (i32.store offset=36 (local.get $at) (local.get $len))
    (i32.store offset=40 (local.get $at) (i32.const 0))
    (i32.store offset=44 (local.get $at) (i32.const 0)))
  ;; an OK header for $n records; returns the packed (ptr, len)
  (func $ok (param $n i32) (result i64)
    (i32.store (i32.const 1024) (i32.const 0))
    (i32.store (i32.const 1028) (local.get $n))
    (i64.or (i64.shl (i64.const 1024) (i64.const 32))
            (i64.extend_i32_u (i32.add (i32.const 8) (i32.mul (local.get $n) (i32.const 48))))))
  (func $identity (param $in i32) (result i64)
    (local $p i32)
    (local.set $p (call $payload_len_at (local.get $in)))
    (call $record (i32.const 1032) (i32.add (local.get $p) (i32.const 4)) (i32.load (local.get $p)) (i32.const 0) (i32.const -1))
    (call $ok (i32.const 1)))
  ;; payloads starting with '!' take the fixture's $misbehave path; others are echoed
  (func (export "rmqtt_transform") (param $in i32) (param $len i32) (result i64)
    (if (i32.eq (i32.load8_u (i32.add (call $payload_len_at (local.get $in)) (i32.const 4))) (i32.const 33))
      (then (return (call $misbehave (local.get $in)))))
    (call $identity (local.get $in)))
"#;

/// A module whose `$misbehave` is `body`; `head` goes before the memory (imports).
fn fixture(head: &str, body: &str) -> String {
    fixture_with(head, body, "")
}

/// Like [`fixture`], with extra function definitions.
fn fixture_with(head: &str, body: &str, funcs: &str) -> String {
    format!(
        "(module {head}\n (memory (export \"memory\") 2)\n (data (i32.const 2048) \"fan-afan-bfan-cnope\")\n{PRELUDE}\n{funcs}\n (func $misbehave (param $in i32) (result i64) {body}))"
    )
}

/// An entry's transform settings, as the configuration would give them.
fn settings(path: &Path, timeout: Duration, max_memory: u64, instances: usize) -> TransformConfig {
    TransformConfig {
        code: TransformCode::Module(path.to_owned()),
        config: BTreeMap::new(),
        instances,
        timeout,
        max_memory,
        on_error: OnError::Drop,
        dead_letter_topic: None,
        max_records: abi::DEFAULT_MAX_RECORDS,
        state_max_keys: 1000,
        state_max_bytes: 1 << 20,
    }
}

/// An engine with room for 16 instances of up to 16 MiB.
fn engine() -> Arc<TransformEngine> {
    let settings = settings(Path::new("-"), Duration::ZERO, 16 << 20, 16);
    Arc::new(TransformEngine::new([&settings]).unwrap())
}

fn write_module(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".wat").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn load(
    e: &Arc<TransformEngine>,
    path: &Path,
    timeout: Duration,
    max_memory: u64,
) -> Result<TransformModule, String> {
    TransformModule::load(e, &settings(path, timeout, max_memory, 1), "test entry 0")
}

struct Setup {
    _file: tempfile::NamedTempFile,
    pool: TransformPool,
}

async fn pool_with(text: &str, timeout: Duration, max_memory: u64) -> Setup {
    let engine = engine();
    let file = write_module(text);
    let module = load(&engine, file.path(), timeout, max_memory).unwrap();
    let pool = TransformPool::new(Arc::new(module)).await.unwrap();
    Setup { _file: file, pool }
}

async fn pool(body: &str) -> Setup {
    pool_with(&fixture("", body), Duration::from_millis(100), 16 << 20).await
}

fn input(payload: &[u8]) -> InputFields<'_, &'static [u8]> {
    bridge_testkit::publish_input(b"sensors/a", payload)
}

fn payloads(out: &Transformed<'_>) -> Vec<Vec<u8>> {
    out.records().map(|r| r.payload.unwrap().to_vec()).collect()
}

/// The causes other than `cause` that were counted.
fn other_failures(pool: &TransformPool, cause: Cause) -> u64 {
    Cause::ALL
        .iter()
        .filter(|c| **c != cause)
        .map(|c| pool.failures(*c))
        .sum()
}

/// Runs a message that must fail with `cause`, then checks the counters and that the
/// next message is served normally by a fresh instance.
async fn assert_contained(s: &Setup, trigger: &[u8], cause: Cause) -> Failure {
    let failure = match s.pool.run(&input(trigger)).await {
        Err(f) => f,
        Ok(out) => panic!("expected {cause:?}, got {} records", out.records().count()),
    };
    assert_eq!(failure.cause, cause, "{failure}");
    assert_eq!(s.pool.failures(cause), 1);
    assert_eq!(other_failures(&s.pool, cause), 0);

    let out = s.pool.run(&input(b"healthy")).await.unwrap();
    assert_eq!(payloads(&out), [b"healthy".to_vec()]);
    drop(out);
    let replaced = u64::from(failure.poisons_instance());
    assert_eq!(
        s.pool.replaced(),
        replaced,
        "instances replaced after {cause:?}"
    );
    failure
}

#[tokio::test]
async fn identity_echoes_the_payload_without_copying_in_the_guest() {
    let s = pool("(unreachable)").await;
    for msg in [&b"one"[..], b"two", &[7u8; 4000]] {
        let out = s.pool.run(&input(msg)).await.unwrap();
        assert_eq!(payloads(&out), [msg.to_vec()]);
        let r = out.records().next().unwrap();
        assert_eq!(
            (r.topic, r.key, r.partition, r.timestamp),
            (None, None, None, None)
        );
    }
}

#[tokio::test]
async fn drop_returns_no_records() {
    let s = pool("(call $ok (i32.const 0))").await;
    assert!(s.pool.run(&input(b"!drop")).await.unwrap().is_empty());
    assert_eq!(
        payloads(&s.pool.run(&input(b"kept")).await.unwrap()),
        [b"kept".to_vec()]
    );
}

#[tokio::test]
async fn fan_out_to_three_records_with_topic_overrides() {
    let s = pool(
        r#"(local $p i32)
        (local.set $p (call $payload_len_at (local.get $in)))
        (call $record (i32.const 1032) (i32.add (local.get $p) (i32.const 4)) (i32.load (local.get $p)) (i32.const 2048) (i32.const 5))
        (call $record (i32.const 1080) (i32.add (local.get $p) (i32.const 4)) (i32.load (local.get $p)) (i32.const 2053) (i32.const 5))
        (call $record (i32.const 1128) (i32.add (local.get $p) (i32.const 4)) (i32.load (local.get $p)) (i32.const 2058) (i32.const 5))
        (call $ok (i32.const 3))"#,
    )
    .await;
    let out = s.pool.run(&input(b"!fan")).await.unwrap();
    let topics: Vec<&[u8]> = out.records().map(|r| r.topic.unwrap()).collect();
    assert_eq!(topics, [&b"fan-a"[..], b"fan-b", b"fan-c"]);
    assert_eq!(payloads(&out), vec![b"!fan".to_vec(); 3]);
}

/// `!` + a count writes that many empty records (`!a` 1100, `!b` 70 000 in the header
/// alone); the pool allows `max_records`.
async fn fan_out_pool(max_records: u32) -> Setup {
    let body = r#"(local $n i32) (local $i i32)
        (if (i32.eq (i32.load8_u (i32.add (call $payload_len_at (local.get $in)) (i32.const 5))) (i32.const 98))
          (then (i32.store (i32.const 1024) (i32.const 0))
                (i32.store (i32.const 1028) (i32.const 70000))
                (return (i64.const 0x40000000008))))
        (local.set $n (i32.const 1100))
        (loop $l
          (call $record (i32.add (i32.const 1032) (i32.mul (local.get $i) (i32.const 48))) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
        (call $ok (local.get $n))"#;
    let file = write_module(&fixture("", body));
    let settings = TransformConfig {
        max_records,
        ..settings(file.path(), Duration::from_millis(100), 16 << 20, 1)
    };
    let module = TransformModule::load(&engine(), &settings, "test entry 0").unwrap();
    let pool = TransformPool::new(Arc::new(module)).await.unwrap();
    Setup { _file: file, pool }
}

#[tokio::test]
async fn the_record_cap_is_the_entrys_setting_and_its_error_names_it() {
    let s = fan_out_pool(abi::DEFAULT_MAX_RECORDS).await;
    let failure = s.pool.run(&input(b"!a")).await.err().unwrap();
    assert_eq!(failure.cause, Cause::BadOutput);
    assert_eq!(
        failure.message,
        "the module returned 1100 records for one message; transform.max_records is 1024 (it may be raised to 65536)"
    );
    let s = fan_out_pool(2000).await;
    assert_eq!(
        s.pool.run(&input(b"!a")).await.unwrap().records().count(),
        1100
    );
    let failure = s.pool.run(&input(b"!b")).await.err().unwrap();
    assert_eq!(
        failure.message,
        "the module returned 70000 records for one message; transform.max_records cannot exceed 65536"
    );
}

#[tokio::test]
async fn endless_loop_hits_the_timeout() {
    let s = pool_with(
        &fixture("", "(loop $l (br $l)) (unreachable)"),
        Duration::from_millis(20),
        16 << 20,
    )
    .await;
    let f = assert_contained(&s, b"!loop", Cause::Timeout).await;
    assert!(f.message.contains("20ms"), "{f}");
}

#[tokio::test]
async fn memory_bomb_hits_the_limit() {
    let bomb =
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) (unreachable)";
    let s = pool_with(&fixture("", bomb), Duration::from_secs(5), 1 << 20).await;
    let f = assert_contained(&s, b"!bomb", Cause::Memory).await;
    assert!(f.message.contains("1048576"), "{f}");
}

#[tokio::test]
async fn unreachable_is_a_trap() {
    let s = pool("(unreachable)").await;
    let f = assert_contained(&s, b"!trap", Cause::Trap).await;
    assert!(f.message.contains("unreachable"), "{f}");
}

#[tokio::test]
async fn stack_overflow_is_a_trap() {
    let deep =
        "(func $deep (param i32) (result i32) (i32.add (call $deep (local.get 0)) (i32.const 1)))";
    let text = fixture_with(
        "",
        "(drop (call $deep (i32.const 0))) (call $ok (i32.const 0))",
        deep,
    );
    let s = pool_with(&text, Duration::from_secs(5), 16 << 20).await;
    let f = assert_contained(&s, b"!deep", Cause::Trap).await;
    assert!(f.message.contains("stack"), "{f}");
}

#[tokio::test]
async fn output_document_outside_memory_is_bad_output() {
    let s = pool("(i64.const 0x7fff000000000008)").await;
    let f = assert_contained(&s, b"!ptr", Cause::BadOutput).await;
    assert!(f.message.contains("outside linear memory"), "{f}");
}

#[tokio::test]
async fn record_length_past_memory_is_bad_output() {
    let s = pool("(call $record (i32.const 1032) (i32.const 0) (i32.const 0x7fffffff) (i32.const 0) (i32.const -1)) (call $ok (i32.const 1))").await;
    // The header is fine; the pool checks every record before the bridge sees any.
    let f = assert_contained(&s, b"!len", Cause::BadOutput).await;
    assert!(f.message.contains("payload"), "{f}");
}

#[tokio::test]
async fn malformed_status_is_bad_output() {
    let s = pool("(i32.store (i32.const 1024) (i32.const 7)) (i32.store (i32.const 1028) (i32.const 0)) (i64.const 0x0000040000000008)").await;
    assert_contained(&s, b"!status", Cause::BadOutput).await;
}

#[tokio::test]
async fn reported_error_keeps_the_instance() {
    let s = pool(
        r#"(i32.store (i32.const 1024) (i32.const 1)) (i32.store (i32.const 1028) (i32.const 4))
           (memory.copy (i32.const 1032) (i32.const 2063) (i32.const 4))
           (i64.const 0x000004000000000c)"#,
    )
    .await;
    let f = assert_contained(&s, b"!err", Cause::GuestError).await;
    assert_eq!(f.message, "nope");
}

#[tokio::test]
async fn abort_import_reports_a_panic_with_its_message() {
    let text = fixture(
        r#"(import "rmqtt" "abort" (func $abort (param i32 i32)))"#,
        "(call $abort (i32.const 2063) (i32.const 4)) (unreachable)",
    );
    let s = pool_with(&text, Duration::from_millis(100), 16 << 20).await;
    let f = assert_contained(&s, b"!panic", Cause::Panic).await;
    assert_eq!(f.message, "nope");
}

#[test]
fn a_slow_guest_yields_to_other_tasks() {
    // One runtime thread: if the guest did not yield, the ticker could not run at all.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = pool_with(
            &fixture("", "(loop $l (br $l)) (unreachable)"),
            Duration::from_millis(200),
            16 << 20,
        )
        .await;
        let ticks = Arc::new(AtomicU32::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                t.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        });
        let before = ticks.load(Ordering::Relaxed);
        let err = s.pool.run(&input(b"!slow")).await.err().unwrap();
        assert_eq!(err.cause, Cause::Timeout);
        let during = ticks.load(Ordering::Relaxed) - before;
        ticker.abort();
        assert!(
            during >= 10,
            "other tasks ran only {during} times during a 200ms guest call"
        );
    });
}

/// [`BUSY`] for a payload starting with `!`, then the payload echoed.
async fn busy_pool() -> Setup {
    let busy = format!("(local $n i32) {BUSY} (call $identity (local.get $in))");
    pool_with(&fixture("", &busy), Duration::from_secs(5), 16 << 20).await
}

/// About 50 ms of work, counting the local `$n` down: far more than the fast path's two
/// ticks even when the runtime's ticks stop and the epoch thread, which looks every
/// 10 ms, has to take over (a busy machine running the tests in parallel). The tests
/// that use it run on a multi-threaded runtime, as the broker does.
const BUSY: &str = "(local.set $n (i32.const 150000000))
    (loop $l (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br_if $l (local.get $n)))";

fn on_fibers(s: &Setup) -> bool {
    s.pool.to_json()["calls_on_fibers"].as_bool().unwrap()
}

/// The pool's fast-path counts: overruns, exits, returns.
fn fast_path_counts(s: &Setup) -> (u64, u64, u64) {
    let j = s.pool.to_json();
    let n = |k: &str| j[k].as_u64().unwrap();
    (
        n("fast_path_overruns"),
        n("fast_path_exits"),
        n("fast_path_returns"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_too_long_for_the_fast_path_runs_again_on_a_fiber() {
    let s = busy_pool().await;
    drop(s.pool.run(&input(b"quick")).await.unwrap());
    assert!(!on_fibers(&s), "a quick call stays on the fast path");

    let out = s.pool.run(&input(b"!busy")).await.unwrap();
    assert_eq!(
        payloads(&out),
        [b"!busy".to_vec()],
        "run again, to completion"
    );
    drop(out);
    assert!(on_fibers(&s), "slow on a fiber too: the module is slow");
    assert_eq!(fast_path_counts(&s), (1, 1, 0));
    let failures: u64 = Cause::ALL.iter().map(|c| s.pool.failures(*c)).sum();
    assert_eq!((failures, s.pool.replaced()), (0, 0), "not a failure");
    assert_eq!(s.pool.idle(), 1, "the interrupted instance was replaced");
    let out = s.pool.run(&input(b"after")).await.unwrap();
    assert_eq!(payloads(&out), [b"after".to_vec()]);
}

/// A fast-path call that overran because of its circumstances, not its message, is run
/// again on a fiber, and the pool stays on the fast path. The circumstance here: the
/// module is slow on any `!` message but the first of an instance, so the interrupted
/// call's run on a fresh instance is quick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overrun_whose_second_run_is_quick_keeps_the_fast_path() {
    let slow_after_the_first = format!(
        "(local $n i32) (if (global.get $seen) (then {BUSY}))
        (global.set $seen (i32.const 1))
        (call $identity (local.get $in))"
    );
    let text = fixture(
        "(global $seen (mut i32) (i32.const 0))",
        &slow_after_the_first,
    );
    let s = pool_with(&text, Duration::from_secs(5), 16 << 20).await;
    let status = |s: &Setup| (fast_path_counts(s), on_fibers(s));
    drop(s.pool.run(&input(b"!first")).await.unwrap());
    assert_eq!(status(&s), ((0, 0, 0), false));
    let out = s.pool.run(&input(b"!second")).await.unwrap();
    assert_eq!(
        payloads(&out),
        [b"!second".to_vec()],
        "run again, to completion"
    );
    drop(out);
    assert_eq!(
        status(&s),
        ((1, 0, 0), false),
        "overran once, quick the second time"
    );
    let failures: u64 = Cause::ALL.iter().map(|c| s.pool.failures(*c)).sum();
    assert_eq!(
        (failures, s.pool.idle()),
        (0, 1),
        "not a failure; one instance"
    );
}

async fn quick_call(s: &Setup) {
    drop(s.pool.run(&input(b"quick")).await.unwrap());
}

/// Quick calls until `n` in a row were quick. A quick call preempted past two epoch
/// ticks (a busy machine) counts as slow and starts the count again, as it should; so
/// the test counts what the pool counted rather than the calls it made.
async fn quick_calls_in_a_row(s: &Setup, n: u32) {
    let in_a_row = || s.pool.to_json()["quick_calls_in_a_row"].as_u64().unwrap();
    for _ in 0..10 {
        let done = in_a_row();
        if done >= u64::from(n) {
            return;
        }
        for _ in done..u64::from(n) {
            quick_call(s).await;
        }
    }
    panic!("{n} quick calls in a row never happened in 10 tries");
}

/// A pool that left the fast path comes back once enough calls in a row were quick, so a
/// module slow on one message once does not cost every later call a fiber; a slow call
/// on a fiber starts the count again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_calls_on_fibers_bring_the_pool_back_to_the_fast_path() {
    let s = busy_pool().await;
    drop(s.pool.run(&input(b"!busy")).await.unwrap());
    assert!(on_fibers(&s));
    quick_calls_in_a_row(&s, QUICK_CALLS_TO_RETURN - 1).await;
    drop(s.pool.run(&input(b"!busy")).await.unwrap());
    quick_calls_in_a_row(&s, QUICK_CALLS_TO_RETURN - 1).await;
    assert!(
        on_fibers(&s),
        "the slow call on a fiber started the count again"
    );
    assert_eq!(fast_path_counts(&s), (1, 1, 0));

    quick_call(&s).await;
    assert!(!on_fibers(&s));
    assert_eq!(fast_path_counts(&s), (1, 1, 1));
    drop(s.pool.run(&input(b"!busy")).await.unwrap());
    assert!(on_fibers(&s), "and leaves it again for the next slow call");
    assert_eq!(fast_path_counts(&s), (2, 2, 1));
}

#[test]
fn missing_export_is_refused_at_load() {
    let e = engine();
    let text = "(module (memory (export \"memory\") 1) (func (export \"rmqtt_transform_abi_v1\")) (func (export \"rmqtt_transform_reserve\") (param i32) (result i32) (i32.const 0)))";
    let f = write_module(text);
    let err = load(&e, f.path(), Duration::from_millis(10), 1 << 20)
        .err()
        .unwrap();
    assert!(err.contains("missing export `rmqtt_transform`"), "{err}");
    assert!(
        err.contains(&f.path().display().to_string()),
        "names the file: {err}"
    );
}

#[test]
fn wrong_abi_version_is_refused_at_load() {
    let e = engine();
    let f = write_module(
        &fixture("", "(unreachable)").replace("rmqtt_transform_abi_v1", "rmqtt_transform_abi_v2"),
    );
    let err = load(&e, f.path(), Duration::from_millis(10), 1 << 20)
        .err()
        .unwrap();
    assert!(
        err.contains("targets transform ABI v2, this host supports v1"),
        "{err}"
    );
    let f = write_module("(module (memory (export \"memory\") 1))");
    let err = load(&e, f.path(), Duration::from_millis(10), 1 << 20)
        .err()
        .unwrap();
    assert!(err.contains("not a transform module"), "{err}");
}

#[test]
fn wrong_signature_and_unknown_imports_are_refused_at_load() {
    let e = engine();
    let f = write_module(&fixture("", "(unreachable)").replace(
        "(param i32) (result i32) (i32.const 65536)",
        "(result i32) (i32.const 65536)",
    ));
    let err = load(&e, f.path(), Duration::from_millis(10), 1 << 20)
        .err()
        .unwrap();
    assert!(
        err.contains("`rmqtt_transform_reserve` must be a function (i32) -> i32"),
        "{err}"
    );
    let f = write_module(&fixture(
        r#"(import "wasi_snapshot_preview1" "path_open" (func (param i32)))"#,
        "(unreachable)",
    ));
    let err = load(&e, f.path(), Duration::from_millis(10), 1 << 20)
        .err()
        .unwrap();
    assert!(err.contains("path_open"), "{err}");
    let err = load(
        &e,
        std::path::Path::new("/nonexistent/m.wasm"),
        Duration::from_millis(10),
        1 << 20,
    )
    .err()
    .unwrap();
    assert!(
        err.contains("cannot read module /nonexistent/m.wasm"),
        "{err}"
    );
}

#[tokio::test]
async fn failing_init_refuses_the_pool_with_the_modules_message() {
    let init = r#"(func (export "rmqtt_transform_init") (param i32 i32) (result i64)
        (i32.store (i32.const 1024) (i32.const 1)) (i32.store (i32.const 1028) (i32.const 4))
        (memory.copy (i32.const 1032) (i32.const 2063) (i32.const 4))
        (i64.const 0x000004000000000c))"#;
    let text = fixture_with("", "(unreachable)", init);
    let e = engine();
    let f = write_module(&text);
    let module = TransformModule::load(
        &e,
        &settings(f.path(), Duration::from_millis(100), 1 << 20, 2),
        "test entry 0",
    )
    .unwrap();
    let err = TransformPool::new(Arc::new(module)).await.err().unwrap();
    assert_eq!(
        (err.cause, err.message.as_str()),
        (Cause::GuestError, "init failed: nope")
    );
}

#[test]
fn initial_memory_above_the_cap_is_refused_at_load() {
    let e = engine();
    let f = write_module(&fixture("", "(unreachable)").replace(
        "(memory (export \"memory\") 2)",
        "(memory (export \"memory\") 40)",
    ));
    let err = load(&e, f.path(), Duration::from_millis(100), 1 << 20)
        .err()
        .unwrap();
    assert!(
        err.contains("declares 2.5 MiB of memory at start, more than transform.max_memory (1.0 MiB); raise it"),
        "{err}"
    );
}

#[tokio::test]
async fn a_record_topic_kafka_refuses_is_bad_output() {
    // Kafka refuses "." and ".." as topic names; the host applies the ABI crate's rule.
    for (at, name) in [(2100, "."), (2102, "..")] {
        let body = format!(
            "(local $p i32) (local.set $p (call $payload_len_at (local.get $in))) \
             (call $record (i32.const 1032) (i32.add (local.get $p) (i32.const 4)) (i32.load (local.get $p)) (i32.const {at}) (i32.const {})) \
             (call $ok (i32.const 1))",
            name.len()
        );
        let text = fixture_with("", &body, r#"(data (i32.const 2100) ". ..")"#);
        let s = pool_with(&text, Duration::from_millis(100), 16 << 20).await;
        let f = assert_contained(&s, b"!dot", Cause::BadOutput).await;
        assert!(f.message.contains(&format!("\"{name}\"")), "{f}");
    }
}

#[tokio::test]
async fn an_input_over_4_gib_is_input_too_large_and_keeps_the_instance() {
    let s = pool("(unreachable)").await;
    // Zeroed pages are not touched: the host refuses the size before copying anything.
    let huge = vec![0u8; (u32::MAX as usize) + 1];
    let f = s.pool.run(&input(&huge)).await.err().unwrap();
    assert_eq!(f.cause, Cause::InputTooLarge, "{f}");
    assert_eq!(s.pool.failures(Cause::InputTooLarge), 1);
    assert_eq!(other_failures(&s.pool, Cause::InputTooLarge), 0);
    assert_eq!(
        payloads(&s.pool.run(&input(b"next")).await.unwrap()),
        [b"next".to_vec()]
    );
    assert_eq!(s.pool.replaced(), 0, "the guest never saw the input");
}

#[tokio::test]
async fn a_reserve_that_returns_0_is_memory() {
    let text = fixture("", "(unreachable)").replace(
        "(param i32) (result i32) (i32.const 65536)",
        "(param i32) (result i32) (i32.const 0)",
    );
    let s = pool_with(&text, Duration::from_millis(100), 16 << 20).await;
    let f = s.pool.run(&input(b"any")).await.err().unwrap();
    assert_eq!(f.cause, Cause::Memory, "{f}");
    assert!(f.message.contains("could not allocate"), "{f}");
    assert_eq!(other_failures(&s.pool, Cause::Memory), 0);
}

/// A pool whose first instance starts and whose replacements all fail: its init fails
/// once the real-time clock has passed a deadline written into the module, 2 s after
/// now (room for loading it on a busy machine); it returns once the deadline passed.
/// `!` traps.
async fn pool_whose_replacements_fail() -> Setup {
    let margin = Duration::from_secs(2);
    let deadline = SystemTime::now() + margin;
    let deadline_ns = deadline.duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let init = format!(
        r#"(func (export "rmqtt_transform_init") (param i32 i32) (result i64)
        (drop (call $clock (i32.const 0) (i64.const 0) (i32.const 3000)))
        (if (i64.gt_u (i64.load (i32.const 3000)) (i64.const {deadline_ns}))
          (then
            (i32.store (i32.const 1024) (i32.const 1)) (i32.store (i32.const 1028) (i32.const 4))
            (memory.copy (i32.const 1032) (i32.const 2063) (i32.const 4))
            (return (i64.const 0x000004000000000c))))
        (call $ok (i32.const 0)))"#
    );
    let clock = r#"(import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))"#;
    let s = pool_with(
        &fixture_with(clock, "(unreachable)", &init),
        Duration::from_secs(1),
        16 << 20,
    )
    .await;
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(10)).await;
    s
}

#[tokio::test]
async fn replacement_failures_are_not_call_failures() {
    let s = pool_whose_replacements_fail().await;
    let f = s.pool.run(&input(b"!trap")).await.err().unwrap();
    assert_eq!(f.cause, Cause::Trap, "{f}");
    assert_eq!(
        s.pool.replace_failures(),
        1,
        "the replacement's init failed"
    );
    assert_eq!(
        other_failures(&s.pool, Cause::Trap),
        0,
        "and it is not a call failure"
    );

    // The next call finds no instance: that call fails as `unavailable`, nothing else.
    let f = s.pool.run(&input(b"next")).await.err().unwrap();
    assert_eq!(f.cause, Cause::Unavailable, "{f}");
    assert!(f.message.contains("init failed: nope"), "{f}");
    assert_eq!(
        (
            s.pool.failures(Cause::Trap),
            s.pool.failures(Cause::Unavailable)
        ),
        (1, 1)
    );
    assert_eq!(s.pool.replace_failures(), 2);
}

/// Callers queued for the only instance while it traps and cannot be replaced are each
/// answered, in order: the empty slot passes from one to the next, none waits forever.
#[tokio::test]
async fn callers_queued_behind_an_instance_that_cannot_be_replaced_are_answered() {
    let s = pool_whose_replacements_fail().await;
    let held = s.pool.run(&input(b"held")).await.unwrap();
    let release = async {
        // Lets the two callers below queue first.
        tokio::task::yield_now().await;
        drop(held);
    };
    let (trap, next) = (input(b"!trap"), input(b"next"));
    let calls = async { tokio::join!(release, s.pool.run(&trap), s.pool.run(&next)) };
    let (_, trapped, next) = tokio::time::timeout(Duration::from_secs(30), calls)
        .await
        .expect("a queued caller was left waiting");
    assert_eq!(trapped.err().map(|f| f.cause), Some(Cause::Trap));
    let f = next.err().unwrap();
    assert_eq!(f.cause, Cause::Unavailable, "{f}");
    assert_eq!(s.pool.idle(), 0);
    // The slot is still the pool's: the next caller tries to fill it again.
    let f = s.pool.run(&input(b"later")).await.err().unwrap();
    assert_eq!(f.cause, Cause::Unavailable, "{f}");
}

/// With a perf map, the engine names each compiled function of a module for `perf`.
#[tokio::test]
async fn a_perf_map_names_the_modules_functions() {
    let file = write_module(&fixture("", "(unreachable)"));
    let settings = settings(file.path(), Duration::from_millis(100), 16 << 20, 1);
    let engine = TransformEngine::with_perf_map([&settings], true).unwrap();
    TransformModule::load(&Arc::new(engine), &settings, "test entry 0").unwrap();
    let path = format!("/tmp/perf-{}.map", std::process::id());
    let map = std::fs::read_to_string(&path).unwrap();
    // `perf`'s format: start address and size in hex, then the name.
    let names: Vec<&str> = map
        .lines()
        .filter_map(|l| l.splitn(3, ' ').nth(2))
        .collect();
    for name in ["identity", "misbehave", "payload_len_at"] {
        assert!(
            names.iter().any(|n| n.contains(name)),
            "{name} missing from {path}: {names:?}"
        );
    }
}
