//! JavaScript transforms (`transform.script`) in the host: the embedded runtime runs a
//! script under the same pool and limits as a module, and every way a script can fail is
//! contained, classified and counted like a module's, with the next message served.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use abi::input::InputFields;
use rmqtt_bridge_egress_kafka::config::{OnError, TransformCode, TransformConfig};
use rmqtt_bridge_egress_kafka::transform::{
    Cause, TransformEngine, TransformModule, TransformPool, Transformed,
};

/// Appended to every script: a payload starting with `!` runs the script's `misbehave`.
const DISPATCH: &str = r#"
function transform(msg, config) {
  const text = msg.text();
  return text.startsWith("!") ? misbehave(msg, config) : { key: "k", headers: { via: "js" } };
}
"#;

fn settings(path: &std::path::Path, timeout: Duration) -> TransformConfig {
    TransformConfig {
        code: TransformCode::Script(path.to_owned()),
        config: BTreeMap::from([("greeting".to_owned(), "hello".to_owned())]),
        instances: 2,
        timeout,
        max_memory: 16 << 20,
        on_error: OnError::Drop,
        dead_letter_topic: None,
        max_records: abi::DEFAULT_MAX_RECORDS,
        state_max_keys: 1000,
        state_max_bytes: 1 << 20,
    }
}

struct Setup {
    _file: tempfile::NamedTempFile,
    pool: TransformPool,
}

fn write_script(source: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".js").tempfile().unwrap();
    f.write_all(source.as_bytes()).unwrap();
    f
}

/// Loads and starts `source`; the error of whichever step refused it.
async fn start(
    source: &str,
    timeout: Duration,
) -> (tempfile::NamedTempFile, Result<TransformPool, String>) {
    let file = write_script(source);
    let settings = settings(file.path(), timeout);
    let engine = Arc::new(TransformEngine::new([&settings]).unwrap());
    let started = match TransformModule::load(&engine, &settings, "test entry 0") {
        Ok(module) => TransformPool::new(Arc::new(module))
            .await
            .map_err(|f| f.to_string()),
        Err(e) => Err(e),
    };
    (file, started)
}

async fn pool(misbehave: &str) -> Setup {
    let source = format!("function misbehave(msg, config) {{ {misbehave} }}\n{DISPATCH}");
    let (file, pool) = start(&source, Duration::from_millis(200)).await;
    Setup {
        _file: file,
        pool: pool.unwrap(),
    }
}

fn input(payload: &[u8]) -> InputFields<'_, &'static [u8]> {
    bridge_testkit::publish_input(b"sensors/a", payload)
}

fn keys(out: &Transformed<'_>) -> Vec<Vec<u8>> {
    out.records()
        .map(|r| r.key.unwrap_or_default().to_vec())
        .collect()
}

/// Runs a message that must fail with `cause`, checks what was counted, and that the next
/// message is served; returns the failure's message.
async fn assert_contained(s: &Setup, cause: Cause, replaced: u64) -> String {
    let failure = match s.pool.run(&input(b"!trigger")).await {
        Err(f) => f,
        Ok(out) => panic!("expected {cause:?}, got {} records", out.records().count()),
    };
    assert_eq!(failure.cause, cause, "{failure}");
    assert_eq!(s.pool.failures(cause), 1);
    let others: u64 = Cause::ALL
        .iter()
        .filter(|c| **c != cause)
        .map(|c| s.pool.failures(*c))
        .sum();
    assert_eq!(others, 0, "other causes counted");
    let out = s.pool.run(&input(b"healthy")).await.unwrap();
    assert_eq!(keys(&out), [b"k".to_vec()]);
    let headers: Vec<_> = out
        .records()
        .next()
        .unwrap()
        .headers
        .iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(headers, [(&b"via"[..], Some(&b"js"[..]))]);
    drop(out);
    assert_eq!(
        s.pool.replaced(),
        replaced,
        "instances replaced after {cause:?}"
    );
    failure.message
}

#[tokio::test]
async fn an_endless_loop_times_out_and_the_next_message_is_served() {
    let s = pool("for (;;) {}").await;
    let message = assert_contained(&s, Cause::Timeout, 1).await;
    assert!(message.contains("deadline"), "{message}");
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_at_max_memory() {
    let s =
        pool("const hoard = []; for (;;) hoard.push(new Array(4096).fill(hoard.length));").await;
    let message = assert_contained(&s, Cause::Memory, 1).await;
    assert!(message.contains("max_memory"), "{message}");
}

#[tokio::test]
async fn a_thrown_error_is_a_guest_error_with_its_message_and_place() {
    let s = pool("throw new RangeError(`too hot: ${msg.topic}`);").await;
    let message = assert_contained(&s, Cause::GuestError, 0).await;
    assert!(
        message.starts_with("RangeError: too hot: sensors/a (at "),
        "{message}"
    );
    assert!(
        message.contains(".js:1:"),
        "the script's file and line: {message}"
    );
}

#[tokio::test]
async fn a_wrong_return_type_is_bad_output_that_says_what_was_wrong() {
    let s = pool("return 42;").await;
    let message = assert_contained(&s, Cause::BadOutput, 0).await;
    assert_eq!(
        message,
        "transform returned the number 42; return a record object, an array of records, or nothing to drop the message"
    );
    let s = pool("return { key: 7 };").await;
    let message = assert_contained(&s, Cause::BadOutput, 0).await;
    assert_eq!(
        message,
        "the returned record: `key` must be a string or a Uint8Array, not the number 7"
    );
    let s = pool("return [{}, { heders: {} }];").await;
    let message = assert_contained(&s, Cause::BadOutput, 0).await;
    assert!(
        message.starts_with("element 1 of the returned array has an unknown member `heders`"),
        "{message}"
    );
}

#[tokio::test]
async fn a_syntax_error_refuses_the_start_naming_file_and_line() {
    let (file, started) = start(
        "const ok = 1;\nfunction transform(msg) {\n  return {;\n}\n",
        Duration::from_millis(100),
    )
    .await;
    let error = started.err().expect("a syntax error must refuse the start");
    let name = file.path().file_name().unwrap().to_str().unwrap();
    assert!(error.contains("SyntaxError"), "{error}");
    assert!(
        error.contains(&format!("{name}:3")),
        "names the file and line 3: {error}"
    );
}

#[tokio::test]
async fn a_script_without_transform_is_refused_at_start() {
    let (_file, started) = start(
        "function transfrom(msg) { return {}; }\n",
        Duration::from_millis(100),
    )
    .await;
    let error = started.err().expect("no transform must refuse the start");
    assert!(error.contains("defines no function `transform`"), "{error}");
}

#[tokio::test]
async fn top_level_state_lives_as_long_as_the_instance() {
    let source = "let calls = 0;\nconst greeting = config.greeting.toUpperCase();\nfunction transform(msg, cfg) {\n  calls += 1;\n  return { key: `${greeting}-${cfg.greeting}-${calls}` };\n}\n";
    let (_file, pool) = start(source, Duration::from_millis(100)).await;
    let pool = pool.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let out = pool.run(&input(b"x")).await.unwrap();
        seen.extend(keys(&out));
    }
    // Two instances; each counts its own calls.
    let mut seen: Vec<String> = seen
        .into_iter()
        .map(|k| String::from_utf8(k).unwrap())
        .collect();
    seen.sort();
    assert!(
        seen.iter().all(|k| k.starts_with("HELLO-hello-")),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"HELLO-hello-2".to_owned()),
        "an instance keeps its state: {seen:?}"
    );
}

#[tokio::test]
async fn a_missing_script_names_its_path() {
    let settings = settings(
        std::path::Path::new("/nonexistent/route.js"),
        Duration::from_millis(100),
    );
    let engine = Arc::new(TransformEngine::new([&settings]).unwrap());
    let error = TransformModule::load(&engine, &settings, "e")
        .err()
        .unwrap();
    assert!(
        error.starts_with("cannot read script /nonexistent/route.js:"),
        "{error}"
    );
}

#[tokio::test]
async fn a_scripts_state_is_shared_by_the_instances_and_bounded() {
    // settings(): 2 instances, state_max_keys = 1000.
    let source = r#"
      function transform(msg) {
        const [op, key] = msg.text().split(" ");
        if (op === "put") state.put(key, msg.topic);
        if (op === "fill") {
          try { for (let i = 0; ; i++) state.put("fill/" + i, ""); }
          catch (e) { return { key: e.message }; }
        }
        return { key: state.getText(key) ?? "absent" };
      }"#;
    let (_file, pool) = start(source, Duration::from_millis(500)).await;
    let pool = pool.unwrap();
    let key = |out: Transformed<'_>| String::from_utf8(keys(&out).remove(0)).unwrap();
    let put = bridge_testkit::publish_input(b"plant/7", b"put last");
    assert_eq!(key(pool.run(&put).await.unwrap()), "plant/7");
    // Holding a result holds its instance: the next call runs on the other one.
    let held = pool.run(&input(b"get last")).await.unwrap();
    assert_eq!(key(pool.run(&input(b"get last")).await.unwrap()), "plant/7");
    drop(held);
    assert_eq!(
        key(pool.run(&input(b"fill")).await.unwrap()),
        "state.put: the state store is full: transform.state_max_keys reached"
    );
    assert_eq!(pool.store().keys(), 1000);
    assert_eq!(pool.store().refused(abi::state::PutStatus::TooManyKeys), 1);
}
