//! `rmqttd transform test`, the author's way to run a built module without a broker or
//! a Kafka: every example module against its golden files (`examples/*/golden/`), one
//! message from flags, and one test per way it can fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use bridge_testkit::modules::example_module;
use bridge_testkit::repo_root;

const RMQTTD: &str = env!("CARGO_BIN_EXE_rmqttd");
const EXAMPLES: [&str; 7] = [
    "passthrough",
    "key-headers",
    "threshold-filter",
    "reshape",
    "router",
    "deadband",
    "sparkplug-b",
];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn test_cmd(module: &Path, args: &[&str]) -> Run {
    transform("test", module, args)
}

fn bench_cmd(module: &Path, args: &[&str]) -> Run {
    transform("bench", module, args)
}

/// `rmqttd transform <sub> MODULE args…`.
fn transform(sub: &str, module: &Path, args: &[&str]) -> Run {
    let out = Command::new(RMQTTD)
        .args(["transform", sub])
        .arg(module)
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `--config-file golden/config` when the golden directory has a config, as the
/// scaffold's README runs it.
fn config_args(golden: &Path) -> Vec<String> {
    let file = golden.join("config");
    if !file.is_file() {
        return Vec::new();
    }
    vec!["--config-file".to_owned(), file.display().to_string()]
}

fn golden(example: &str) -> PathBuf {
    repo_root().join("examples").join(example).join("golden")
}

fn echo_or_trap() -> PathBuf {
    repo_root().join("tests/fixtures/echo-or-trap.wat")
}

#[test]
fn every_example_module_matches_its_golden_file() {
    for example in EXAMPLES {
        let dir = golden(example);
        let input = dir.join("input.jsonl");
        let expect = dir.join("expected.jsonl");
        let mut args = vec![
            "--input",
            input.to_str().unwrap(),
            "--expect",
            expect.to_str().unwrap(),
        ];
        let config = config_args(&dir);
        args.extend(config.iter().map(String::as_str));
        let run = test_cmd(&example_module(example), &args);
        assert_eq!(run.code, 0, "{example}: {}\n{}", run.stderr, run.stdout);
        assert!(run.stderr.is_empty(), "{example}: {}", run.stderr);
        // `--expect` also accepts older spellings (a JSON payload as an escaped string);
        // the golden files themselves are what `transform test` prints now.
        assert_eq!(
            run.stdout,
            std::fs::read_to_string(&expect).unwrap(),
            "{example}: write golden/expected.jsonl again with `transform test` without --expect"
        );
    }
}

#[test]
fn one_message_from_the_flags_prints_its_record() {
    let run = test_cmd(
        &example_module("passthrough"),
        &["--topic", "a/b", "--payload", "hi", "--qos", "0"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(
        line,
        serde_json::json!({"input": 0, "topic": null, "key": null, "headers": [],
                           "partition": null, "timestamp": null, "payload": "hi"})
    );
}

#[test]
fn an_output_that_differs_from_the_golden_file_exits_1_naming_the_field_and_showing_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("expected.jsonl");
    let golden = r#"{"input": 0, "topic": null, "key": null, "headers": [], "partition": null, "timestamp": null, "payload": "bye"}"#;
    std::fs::write(&expect, golden).unwrap();
    let args = ["--payload", "hi", "--expect", expect.to_str().unwrap()];
    let run = test_cmd(&example_module("passthrough"), &args);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let expected = format!(
        "message 0, record 0: payload: expected \"bye\", got \"hi\"\n- {golden}\n+ {}",
        run.stdout
    );
    assert_eq!(run.stderr, expected);
}

#[test]
fn a_json_payload_prints_as_json_and_a_difference_names_its_member() {
    let example = golden("key-headers");
    let expected = std::fs::read_to_string(example.join("expected.jsonl")).unwrap();
    let first = expected.lines().next().unwrap();
    assert!(
        first.contains(r#""payload_json":{"device_id": "d-17", "temp": 21.5}"#),
        "the payload's own bytes, as a JSON document: {first}"
    );
    // The golden file expects the temperature as a string, and one record less.
    let changed: Vec<&str> = expected
        .lines()
        .filter(|l| !l.contains(r#""input":1,"#))
        .collect();
    let changed = changed
        .join("\n")
        .replace(r#""temp": 21.5"#, r#""temp": "21.5""#);
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("expected.jsonl");
    std::fs::write(&expect, changed).unwrap();
    let input = example.join("input.jsonl");
    let mut args = vec![
        "--input",
        input.to_str().unwrap(),
        "--expect",
        expect.to_str().unwrap(),
    ];
    let config = config_args(&example);
    args.extend(config.iter().map(String::as_str));
    let run = test_cmd(&example_module("key-headers"), &args);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let found: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("message "))
        .collect();
    assert_eq!(
        found,
        [
            r#"message 0, record 0: payload.temp: expected "21.5", got 21.5"#,
            "message 1, record 0: expected nothing, got a record",
        ],
        "{}",
        run.stderr
    );
}

#[test]
fn an_input_line_takes_a_json_payload_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.jsonl");
    std::fs::write(&input, "{\"payload_json\": {\"b\": 1,  \"a\": [1e3]}}\n").unwrap();
    let run = test_cmd(&echo_or_trap(), &["--input", input.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains(r#""payload_json":{"b": 1,  "a": [1e3]}"#),
        "the bytes as written: {}",
        run.stdout
    );

    std::fs::write(&input, "{\"payload\": \"x\", \"payload_json\": {}}\n").unwrap();
    let run = test_cmd(&echo_or_trap(), &["--input", input.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr
            .contains("give one of payload, payload_b64 and payload_json"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_trapping_message_is_an_error_line_and_the_next_one_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.jsonl");
    std::fs::write(
        &input,
        "{\"payload\": \"!boom\"}\n{\"payload\": \"fine\"}\n",
    )
    .unwrap();
    let run = test_cmd(&echo_or_trap(), &["--input", input.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert_eq!(
        (&lines[0]["outcome"], &lines[0]["cause"]),
        (&"error".into(), &"trap".into())
    );
    assert_eq!(
        (&lines[1]["input"], &lines[1]["payload"]),
        (&1.into(), &"fine".into())
    );
}

#[test]
fn fail_on_error_makes_a_failed_message_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.jsonl");
    std::fs::write(
        &input,
        "{\"payload\": \"fine\"}\n{\"payload\": \"!boom\"}\n",
    )
    .unwrap();
    let input = input.to_str().unwrap();
    let run = test_cmd(&echo_or_trap(), &["--input", input, "--fail-on-error"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 2, "every line is still printed");
    assert!(
        run.stderr.contains("failed on 1 of 2 messages"),
        "{}",
        run.stderr
    );
    let fine = test_cmd(&echo_or_trap(), &["--payload", "fine", "--fail-on-error"]);
    assert_eq!(fine.code, 0, "{}", fine.stderr);
}

#[test]
fn too_little_memory_and_a_failed_init_say_so_plainly() {
    let key_headers = example_module("key-headers");
    let run = test_cmd(&key_headers, &["--max-memory", "1MiB"]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr
            .contains("more than transform.max_memory (1.0 MiB); raise it"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("not a valid WebAssembly module"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("0x"),
        "one unit, no hex: {}",
        run.stderr
    );

    let run = test_cmd(&key_headers, &["--config", "topic_headers=bad"]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr
            .contains("error: init failed: config key `topic_headers`"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("(its init failed?)"), "{}", run.stderr);
}

#[test]
fn a_misspelled_config_key_is_refused_at_init() {
    let run = test_cmd(
        &example_module("key-headers"),
        &["--config", "topic_prefx=x"],
    );
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr.contains(
            "unknown config key `topic_prefx`; this transform reads `key_field`, `topic_headers`"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_module_exits_2_naming_the_file() {
    let run = test_cmd(Path::new("/nowhere/module.wasm"), &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("/nowhere/module.wasm") && !run.stderr.contains("panicked"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_bad_input_line_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.jsonl");
    std::fs::write(&input, "{\"payload\": \"ok\"}\n{\"payload\": 5}\n").unwrap();
    let run = test_cmd(&echo_or_trap(), &["--input", input.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    let at = format!("{} line 2", input.display());
    assert!(run.stderr.contains(&at), "{}", run.stderr);
}

#[test]
fn bench_reports_the_module_next_to_the_floor() {
    let run = bench_cmd(
        &example_module("threshold-filter"),
        &[
            "--payload",
            "{\"value\": 50}",
            "--config",
            "threshold=30",
            "--duration",
            "300ms",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(rows.len(), 6, "{}", run.stdout);
    assert!(rows[0].starts_with("start: compiled in "), "{}", rows[0]);
    for (row, name) in [
        (rows[2], "floor (host only)"),
        (rows[3], "threshold_filter.wasm"),
    ] {
        assert!(row.starts_with(name), "{row}");
        let calls: f64 = row[28..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(calls > 0.0, "{row}");
    }
    assert!(
        rows[4].starts_with("the module's own work: "),
        "{}",
        rows[4]
    );
    assert!(rows[5].starts_with("linear memory of an instance after the calls: "));
}

#[test]
fn bench_refuses_a_message_the_module_fails_on() {
    let run = bench_cmd(
        &example_module("threshold-filter"),
        &[
            "--payload",
            "not json",
            "--config",
            "threshold=30",
            "--duration",
            "100ms",
        ],
    );
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr
            .contains("the module failed on this message (guest_error"),
        "names the cause: {}",
        run.stderr
    );
}

#[test]
fn bench_refuses_a_failing_message_before_measuring() {
    let run = bench_cmd(
        &echo_or_trap(),
        &["--payload", "!boom", "--duration", "100ms"],
    );
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr.contains("failed on this message (trap"),
        "{}",
        run.stderr
    );
    // The first call's refusal, not the count of failed calls measured.
    assert!(!run.stderr.contains(" calls)"), "{}", run.stderr);
}

/// `cargo <args>` in `dir`, which must succeed.
fn cargo(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo {args:?} in {}:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_file_lines_are_entries_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config");
    std::fs::write(&file, "# the threshold\nthreshold=30\n\nfield=value\n").unwrap();
    let file_arg = file.to_str().unwrap();
    let payload = ["--payload", "{\"value\": 20}"];
    let run = test_cmd(
        &example_module("threshold-filter"),
        &[&payload[..], &["--config-file", file_arg]].concat(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("\"filtered\""),
        "20 < 30: {}",
        run.stdout
    );
    let lower = ["--config-file", file_arg, "--config", "threshold=10"];
    let run = test_cmd(
        &example_module("threshold-filter"),
        &[&payload[..], &lower].concat(),
    );
    assert!(
        run.stdout.contains("\"payload_json\""),
        "--config wins: {}",
        run.stdout
    );

    std::fs::write(&file, "threshold=30\nfield\n").unwrap();
    let run = test_cmd(
        &example_module("threshold-filter"),
        &["--config-file", file_arg],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("{file_arg} line 2: `field` is not name=value")),
        "{}",
        run.stderr
    );
}

#[test]
fn new_makes_a_crate_that_tests_builds_and_matches_its_golden_file() {
    let parent = tempfile::tempdir().unwrap();
    let out = Command::new(RMQTTD)
        .args(["transform", "new", "my-filter", "--dir"])
        .arg(parent.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = parent.path().join("my-filter");
    cargo(&dir, &["test", "--quiet"]);
    cargo(&dir, &["module", "--quiet"]);
    let golden = dir.join("golden");
    let mut args = vec![
        "--input".to_owned(),
        golden.join("input.jsonl").display().to_string(),
        "--expect".to_owned(),
        golden.join("expected.jsonl").display().to_string(),
    ];
    args.extend(config_args(&golden));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let module = dir.join("target/wasm32-unknown-unknown/release/my_filter.wasm");
    let run = test_cmd(&module, &args);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    let expected = std::fs::read_to_string(golden.join("expected.jsonl")).unwrap();
    assert_eq!(
        run.stdout, expected,
        "the template is what `transform test` prints"
    );
}

#[test]
fn new_refuses_a_bad_name_and_an_existing_directory() {
    let parent = tempfile::tempdir().unwrap();
    for (name, why) in [
        ("9lives", "is not a crate name"),
        ("taken", "already exists"),
    ] {
        std::fs::create_dir_all(parent.path().join("taken")).unwrap();
        let out = Command::new(RMQTTD)
            .args(["transform", "new", name, "--dir"])
            .arg(parent.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(why), "{name}: {err}");
    }
}
