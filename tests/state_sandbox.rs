//! The state store's host calls against a hand-written WAT module: what a module may rely
//! on (docs/abi.md, "State"), one test per answer and per failure.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use rmqtt_bridge_egress_kafka::config::{OnError, TransformCode, TransformConfig};
use rmqtt_bridge_egress_kafka::transform::{
    Cause, TransformEngine, TransformModule, TransformPool,
};

/// The payload is an operation letter and a key; the one record's payload is the host
/// call's `i32` answer (little-endian), then, for `G`, the value bytes the host copied
/// into an 8-byte buffer.
/// - `G` get, `P` put (the value is the key), `E` put for 1 ms, `T` put with TTL -1,
///   `D` delete, `O` get with a key outside memory, `B` get into a buffer outside it.
const MODULE: &str = r#"(module
  (import "rmqtt" "state_get" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "rmqtt" "state_put" (func $put (param i32 i32 i32 i32 i64) (result i32)))
  (import "rmqtt" "state_delete" (func $del (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "rmqtt_transform_abi_v1"))
  (func (export "rmqtt_transform_reserve") (param i32) (result i32) (i32.const 65536))
  (func (export "rmqtt_transform") (param $in i32) (param $len i32) (result i64)
    (local $p i32) (local $op i32) (local $k i32) (local $klen i32) (local $r i32) (local $olen i32)
    ;; the payload's length field: in + 24 (fixed part) + 4 + topic length
    (local.set $p (i32.add (i32.add (local.get $in) (i32.const 28)) (i32.load (i32.add (local.get $in) (i32.const 24)))))
    (local.set $op (i32.load8_u (i32.add (local.get $p) (i32.const 4))))
    (local.set $k (i32.add (local.get $p) (i32.const 5)))
    (local.set $klen (i32.sub (i32.load (local.get $p)) (i32.const 1)))
    (local.set $olen (i32.const 4))
    (if (i32.eq (local.get $op) (i32.const 71)) (then
      (local.set $r (call $get (local.get $k) (local.get $klen) (i32.const 3076) (i32.const 8)))
      (if (i32.and (i32.ge_s (local.get $r) (i32.const 0)) (i32.le_s (local.get $r) (i32.const 8)))
        (then (local.set $olen (i32.add (i32.const 4) (local.get $r)))))))
    (if (i32.eq (local.get $op) (i32.const 80)) (then
      (local.set $r (call $put (local.get $k) (local.get $klen) (local.get $k) (local.get $klen) (i64.const 0)))))
    (if (i32.eq (local.get $op) (i32.const 69)) (then
      (local.set $r (call $put (local.get $k) (local.get $klen) (local.get $k) (local.get $klen) (i64.const 1)))))
    (if (i32.eq (local.get $op) (i32.const 84)) (then
      (local.set $r (call $put (local.get $k) (local.get $klen) (local.get $k) (local.get $klen) (i64.const -1)))))
    (if (i32.eq (local.get $op) (i32.const 68)) (then
      (local.set $r (call $del (local.get $k) (local.get $klen)))))
    (if (i32.eq (local.get $op) (i32.const 79)) (then
      (local.set $r (call $get (i32.const 0x7fff0000) (i32.const 4) (i32.const 3076) (i32.const 8)))))
    (if (i32.eq (local.get $op) (i32.const 66)) (then
      (local.set $r (call $get (local.get $k) (local.get $klen) (i32.const 131070) (i32.const 8)))))
    (i32.store (i32.const 3072) (local.get $r))
    ;; OK, one record: entry topic and key, payload 3072..3072+olen, no headers
    (i32.store (i32.const 1024) (i32.const 0))
    (i32.store (i32.const 1028) (i32.const 1))
    (i32.store (i32.const 1032) (i32.const 0))
    (i32.store (i32.const 1036) (i32.const 0))
    (i64.store (i32.const 1040) (i64.const 0))
    (i32.store (i32.const 1048) (i32.const 0))
    (i32.store (i32.const 1052) (i32.const -1))
    (i32.store (i32.const 1056) (i32.const 0))
    (i32.store (i32.const 1060) (i32.const -1))
    (i32.store (i32.const 1064) (i32.const 3072))
    (i32.store (i32.const 1068) (local.get $olen))
    (i32.store (i32.const 1072) (i32.const 0))
    (i32.store (i32.const 1076) (i32.const 0))
    (i64.const 0x40000000038)))
"#;

struct Setup {
    _file: tempfile::NamedTempFile,
    pool: TransformPool,
}

/// A pool of `instances` over a store of at most `max_keys` keys and `max_bytes` bytes.
async fn setup(instances: usize, max_keys: usize, max_bytes: u64) -> Setup {
    let mut file = tempfile::Builder::new().suffix(".wat").tempfile().unwrap();
    file.write_all(MODULE.as_bytes()).unwrap();
    let settings = TransformConfig {
        code: TransformCode::Module(file.path().to_owned()),
        config: BTreeMap::new(),
        instances,
        timeout: Duration::from_millis(100),
        max_memory: 1 << 20,
        on_error: OnError::Drop,
        dead_letter_topic: None,
        max_records: abi::DEFAULT_MAX_RECORDS,
        state_max_keys: max_keys,
        state_max_bytes: max_bytes,
    };
    let engine = Arc::new(TransformEngine::new([&settings]).unwrap());
    let module = TransformModule::load(&engine, &settings, "test entry 0").unwrap();
    let pool = TransformPool::new(Arc::new(module)).await.unwrap();
    Setup { _file: file, pool }
}

/// The module's answer to `op` on `key`, and the value bytes it read.
async fn call(s: &Setup, op: u8, key: &[u8]) -> (i32, Vec<u8>) {
    let payload = [&[op][..], key].concat();
    let input = bridge_testkit::publish_input(b"state/t", &payload);
    let out = s.pool.run(&input).await.unwrap();
    let record = out.records().next().unwrap();
    let bytes = record.payload.unwrap();
    let answer = i32::from_le_bytes(bytes[..4].try_into().unwrap());
    (answer, bytes[4..].to_vec())
}

#[tokio::test]
async fn a_put_is_read_by_the_other_instances() {
    let s = setup(2, 100, 1 << 20).await;
    assert_eq!(call(&s, b'P', b"alias/1").await.0, 0);
    // Holding one call's result holds its instance, so the next call runs on the other.
    let held = s
        .pool
        .run(&bridge_testkit::publish_input(b"t", b"Gx"))
        .await
        .unwrap();
    assert_eq!(call(&s, b'G', b"alias/1").await, (7, b"alias/1".to_vec()));
    drop(held);
    assert_eq!(
        call(&s, b'G', b"missing").await,
        (abi::state::ABSENT, vec![])
    );
}

#[tokio::test]
async fn a_value_longer_than_the_buffer_comes_back_as_its_length() {
    let s = setup(1, 100, 1 << 20).await;
    call(&s, b'P', b"a-long-key").await;
    assert_eq!(
        call(&s, b'G', b"a-long-key").await,
        (10, vec![]),
        "10 bytes do not fit the module's 8: nothing copied"
    );
}

#[tokio::test]
async fn delete_answers_whether_a_live_key_was_there() {
    let s = setup(1, 100, 1 << 20).await;
    call(&s, b'P', b"k").await;
    assert_eq!(call(&s, b'D', b"k").await.0, 1);
    assert_eq!(call(&s, b'D', b"k").await.0, 0);
    assert_eq!(call(&s, b'G', b"k").await.0, abi::state::ABSENT);
    assert_eq!(s.pool.store().keys(), 0);
}

#[tokio::test]
async fn puts_past_the_bounds_are_answered_and_counted() {
    let s = setup(1, 2, 1 << 10).await;
    let status = |n: i32| abi::state::PutStatus::from_i32(n).unwrap();
    use abi::state::PutStatus::*;
    assert_eq!(status(call(&s, b'P', b"a").await.0), Ok);
    assert_eq!(status(call(&s, b'P', b"b").await.0), Ok);
    assert_eq!(status(call(&s, b'P', b"c").await.0), TooManyKeys);
    assert_eq!(
        status(call(&s, b'P', b"a").await.0),
        Ok,
        "replacing needs no new key"
    );
    s.pool.store().set_limits(10, 1 << 10);
    // Key and value are both 600 bytes: 1200 > 1 KiB.
    assert_eq!(status(call(&s, b'P', &[b'x'; 600]).await.0), TooManyBytes);
    assert_eq!(status(call(&s, b'P', &[b'x'; 1025]).await.0), KeyTooLong);
    assert_eq!(status(call(&s, b'T', b"t").await.0), BadTtl);
    let store = s.pool.store();
    assert_eq!((store.keys(), store.bytes()), (2, 4));
    for reason in [TooManyKeys, TooManyBytes, KeyTooLong, BadTtl] {
        assert_eq!(store.refused(reason), 1, "{reason:?}");
    }
    let doc = store.to_json();
    assert_eq!(doc["puts_refused"]["too_many_keys"], 1);
    assert_eq!(
        (doc["keys"].as_u64(), doc["max_keys"].as_u64()),
        (Some(2), Some(10))
    );
}

#[tokio::test]
async fn an_expired_key_reads_as_absent() {
    let s = setup(1, 100, 1 << 20).await;
    assert_eq!(call(&s, b'E', b"dedup/1").await.0, 0);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(call(&s, b'G', b"dedup/1").await.0, abi::state::ABSENT);
    assert_eq!(s.pool.store().keys(), 0, "read after expiry, it is gone");
}

#[tokio::test]
async fn pointers_outside_memory_trap_and_the_store_survives() {
    let s = setup(1, 100, 1 << 20).await;
    call(&s, b'P', b"kept").await;
    for (op, what) in [(b'O', "key"), (b'B', "buffer")] {
        let payload = [op, b'k'];
        let input = bridge_testkit::publish_input(b"state/t", &payload);
        let failure = s.pool.run(&input).await.err().expect("a trap");
        assert_eq!(failure.cause, Cause::Trap);
        assert!(
            failure
                .message
                .contains(&format!("a host call's {what} lies outside linear memory")),
            "{failure}"
        );
    }
    assert_eq!(s.pool.replaced(), 2);
    assert_eq!(call(&s, b'G', b"kept").await, (4, b"kept".to_vec()));
}
