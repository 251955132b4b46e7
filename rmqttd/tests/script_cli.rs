//! `rmqttd transform` with JavaScript transforms (`.js`): the examples' scripts make the
//! records of their Rust modules (the same golden files), a new script from
//! `transform new --js` passes its own golden file, and a broken script is refused
//! plainly.

use std::path::{Path, PathBuf};
use std::process::Command;

use bridge_testkit::repo_root;

const RMQTTD: &str = env!("CARGO_BIN_EXE_rmqttd");
/// The examples that come as a Rust module and as a script.
const SCRIPTS: [&str; 3] = ["key-headers", "threshold-filter", "router"];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn rmqttd(args: &[&str]) -> Run {
    let out = Command::new(RMQTTD).args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn example(name: &str) -> (PathBuf, PathBuf) {
    let dir = repo_root().join("examples").join(name);
    (dir.join(format!("{name}.js")), dir.join("golden"))
}

/// `transform test SCRIPT --input golden/input.jsonl --config …` plus `extra`.
fn test_against(script: &Path, golden: &Path, extra: &[&str]) -> Run {
    let input = golden.join("input.jsonl");
    let mut args = vec![
        "transform",
        "test",
        script.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ];
    let config = golden.join("config");
    if config.is_file() {
        args.extend(["--config-file", config.to_str().unwrap()]);
    }
    args.extend_from_slice(extra);
    rmqttd(&args)
}

#[test]
fn every_example_script_makes_the_records_of_its_module() {
    for name in SCRIPTS {
        let (script, golden) = example(name);
        let expect = golden.join("expected.jsonl");
        let run = test_against(
            &script,
            &golden,
            &["--expect", expect.to_str().unwrap(), "--ignore-messages"],
        );
        assert_eq!(run.code, 0, "{name}: {}\n{}", run.stderr, run.stdout);
        assert!(run.stderr.is_empty(), "{name}: {}", run.stderr);
        let records = run
            .stdout
            .lines()
            .filter(|l| !l.contains("\"outcome\""))
            .count();
        assert!(records >= 2, "{name}: {}", run.stdout);
    }
}

#[test]
fn a_script_error_names_the_script_and_line_and_is_still_compared_by_cause() {
    let (script, golden) = example("key-headers");
    let run = test_against(&script, &golden, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let missing = run.stdout.lines().nth(3).unwrap();
    let line: serde_json::Value = serde_json::from_str(missing).unwrap();
    assert_eq!(line["cause"], "guest_error");
    let message = line["message"].as_str().unwrap();
    assert!(
        message.starts_with("Error: key field `device_id` is missing (at key-headers.js:"),
        "{message}"
    );

    // The cause is still compared: a golden file expecting a filtered message fails.
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("expected.jsonl");
    let text = std::fs::read_to_string(golden.join("expected.jsonl")).unwrap();
    let changed: Vec<String> = text
        .lines()
        .map(|l| {
            if l.contains("\"input\":3,") {
                r#"{"input":3,"outcome":"filtered"}"#.to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&expect, changed.join("\n")).unwrap();
    let run = test_against(
        &script,
        &golden,
        &["--expect", expect.to_str().unwrap(), "--ignore-messages"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("message 3, record 0: expected filtered, got an error (guest_error)\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn new_js_makes_a_script_that_matches_its_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = rmqttd(&[
        "transform",
        "new",
        "--js",
        "my-filter",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let made = dir.path().join("my-filter");
    for file in [
        "my-filter.js",
        "golden/input.jsonl",
        "golden/config",
        "golden/expected.jsonl",
        "README.md",
    ] {
        assert!(made.join(file).is_file(), "{file} missing");
    }
    let readme = std::fs::read_to_string(made.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!(
            "transform.script = \"{}/my-filter.js\"",
            made.display()
        )),
        "{readme}"
    );
    let golden = made.join("golden");
    let expect = golden.join("expected.jsonl");
    let run = test_against(
        &made.join("my-filter.js"),
        &golden,
        &["--expect", expect.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    let text = std::fs::read_to_string(&expect).unwrap();
    assert_eq!(
        run.stdout, text,
        "the template is what `transform test` prints"
    );
    let outcomes: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        outcomes[1]["headers"],
        serde_json::json!([["site", "hamburg"]])
    );
    assert_eq!(outcomes[2]["outcome"], "filtered");
}

#[test]
fn a_script_that_does_not_parse_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("broken.js");
    std::fs::write(
        &script,
        "function transform(msg) {\n  return { key: };\n}\n",
    )
    .unwrap();
    let run = rmqttd(&[
        "transform",
        "test",
        script.to_str().unwrap(),
        "--payload",
        "x",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("SyntaxError"), "{}", run.stderr);
    assert!(run.stderr.contains("broken.js:2"), "{}", run.stderr);
}

#[test]
fn bench_times_a_script_and_reports_its_start_and_memory() {
    let (script, _) = example("key-headers");
    let payload = r#"{"device_id":"d-17","temp":21.5}"#;
    let run = rmqttd(&[
        "transform",
        "bench",
        script.to_str().unwrap(),
        "--topic",
        "sensors/berlin/line1/telemetry",
        "--payload",
        payload,
        "--config",
        "topic_headers=site:1,line:2",
        "--duration",
        "200ms",
        "--instances",
        "8",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("start: compiled in "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("8 instances ready"), "{}", run.stdout);
    assert!(
        run.stdout.lines().any(|l| l.starts_with("key-headers.js")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("linear memory of an instance after the calls: "),
        "{}",
        run.stdout
    );
}
