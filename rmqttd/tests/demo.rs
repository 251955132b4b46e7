//! `rmqttd --demo` as a user runs it: the shipped plugin configuration (its transform
//! entry included), every printed `mosquitto_pub` line run as printed, each one's record
//! seen on stdout, then SIGTERM ends the process promptly and quietly. Also: where the
//! HTTP API is, and configuration errors naming the user's file.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use bridge_testkit::http::request;
use bridge_testkit::procs::{free_port, lines_of, require, signal, wait_exit, Proc};
use bridge_testkit::{example_module, repo_root};

/// Hang guard for one expected line of output, not a performance bound.
const LINE_GUARD: Duration = Duration::from_secs(30);
/// Hang guard for the exit after SIGTERM.
const EXIT_GUARD: Duration = Duration::from_secs(10);

/// The repository's plugin configuration, its transform modules' relative paths
/// pointing at the freshly built examples.
fn shipped_bridge_config() -> String {
    let path = repo_root().join("plugins/rmqtt-bridge-egress-kafka.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let modules = example_module("key-headers").parent().unwrap().to_owned();
    let relative = "examples/target/wasm32-unknown-unknown/release";
    assert!(
        text.contains(relative),
        "the shipped file enables a transform"
    );
    let shipped_laddr = "http_laddr = \"127.0.0.1:9464\"";
    assert!(
        text.contains(shipped_laddr),
        "the shipped file enables /metrics"
    );
    let script = "examples/router/router.js";
    assert!(text.contains(script), "the shipped file enables a script");
    let script_path = repo_root().join(script);
    text.replace(relative, &modules.display().to_string())
        .replace(script, &script_path.display().to_string())
}

/// A working directory with rmqtt.toml, the repository's ACL file and `bridge_config`.
fn site(port: u16, bridge_config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(
        repo_root().join("plugins/rmqtt-acl.toml"),
        plugins.join("rmqtt-acl.toml"),
    )
    .unwrap();
    std::fs::write(
        plugins.join("rmqtt-bridge-egress-kafka.toml"),
        bridge_config,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rmqtt.toml"),
        format!(
            "node.id = 1\nlog.to = \"console\"\nlog.level = \"info\"\nplugins.dir = \"plugins/\"\nplugins.default_startups = [\"rmqtt-acl\", \"rmqtt-bridge-egress-kafka\"]\nlistener.tcp.external.addr = \"127.0.0.1:{port}\"\nlistener.tcp.external.allow_anonymous = true\n"
        ),
    )
    .unwrap();
    dir
}

/// The demo's stdout, kept whole for failure messages.
struct Output {
    rx: Receiver<String>,
    seen: Vec<String>,
}

impl Output {
    /// Reads lines until one satisfies `done` (given the lines so far).
    fn until(&mut self, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + LINE_GUARD;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no {what} within {LINE_GUARD:?}; stdout:\n{}",
                        self.seen.join("\n")
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("stdout closed before {what}:\n{}", self.seen.join("\n"))
                }
            }
        }
    }

    /// The printed `mosquitto_pub` lines.
    fn hints(&self) -> Vec<String> {
        self.seen
            .iter()
            .map(|l| l.trim())
            .filter(|l| l.starts_with("mosquitto_pub "))
            .map(str::to_owned)
            .collect()
    }
}

/// The MQTT topic of a printed `mosquitto_pub` line (`-t '...'`).
fn hint_topic(hint: &str) -> String {
    let rest = hint.split_once("-t '").expect("a -t argument").1;
    rest.split_once('\'').expect("a quoted topic").0.to_owned()
}

/// The printed records of MQTT topic `topic`: each record's first line (topic,
/// partition, offset, key), found by the `topic` header on the line after it.
fn records_of<'a>(seen: &'a [String], topic: &str) -> Vec<&'a str> {
    let header = format!(" topic={topic},");
    seen.windows(2)
        .filter(|w| w[0].starts_with("kafka <- ") && w[1].contains(&header))
        .map(|w| w[0].as_str())
        .collect()
}

/// The printed headers (`name=value`) of each record of MQTT topic `topic`.
fn headers_of<'a>(seen: &'a [String], topic: &str) -> Vec<Vec<&'a str>> {
    let header = format!(" topic={topic},");
    seen.iter()
        .filter(|l| l.contains(&header))
        .filter_map(|l| l.trim_start().strip_prefix("headers: "))
        .map(|l| l.split(", ").collect())
        .collect()
}

/// `rmqttd -f rmqtt.toml --demo` in `dir`, its output captured.
fn demo(dir: &tempfile::TempDir) -> Child {
    Command::new(env!("CARGO_BIN_EXE_rmqttd"))
        .args(["-f", "rmqtt.toml", "--demo"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run_hint(hint: &str) {
    let status = Command::new("sh").args(["-c", hint]).status().unwrap();
    assert!(status.success(), "{hint}");
}

#[test]
fn every_printed_hint_shows_its_record_and_sigterm_ends_the_demo() {
    require("mosquitto_pub");
    let port = free_port();
    let metrics_port = free_port();
    let config =
        shipped_bridge_config().replace("127.0.0.1:9464", &format!("127.0.0.1:{metrics_port}"));
    let dir = site(port, &config);
    // Only read for the printed URL: this rmqttd does not run rmqtt-http-api itself.
    std::fs::write(
        dir.path().join("plugins/rmqtt-http-api.toml"),
        "http_laddr = \"0.0.0.0:6066\"\n",
    )
    .unwrap();
    let mut demo = Proc(demo(&dir));
    let mut out = Output {
        rx: lines_of(demo.0.stdout.take().unwrap()),
        seen: Vec::new(),
    };
    out.until("instructions", |s| {
        s.iter().any(|l| l.starts_with("Stop with"))
    });
    let api =
        "The bridge's counters: http://127.0.0.1:6066/api/v1/plugins/1/rmqtt-bridge-egress-kafka";
    assert!(out.seen.iter().any(|l| l == api), "{:#?}", out.seen);
    let live =
        format!("Live metrics: http://127.0.0.1:{metrics_port}/metrics  (and /health, /status)");
    assert!(out.seen.contains(&live), "{:#?}", out.seen);
    let hints = out.hints();
    assert_eq!(hints.len(), 5, "one line per shipped entry: {hints:#?}");

    // Twice round: a topic that already printed keeps printing after new ones appear.
    for round in 1..=2 {
        for hint in &hints {
            run_hint(hint);
            let topic = hint_topic(hint);
            out.until(&format!("record {round} of {topic}"), |s| {
                records_of(s, &topic).len() >= round
            });
        }
    }
    // The router script sent the plant's events to its telemetry topic.
    let routed = records_of(&out.seen, "plant/plant1/events");
    assert!(
        routed.iter().all(|r| r.contains("topic=plant.telemetry ")),
        "routed by the script: {routed:?}"
    );
    // The key-headers module and the templated entry shape their records alike.
    for (mqtt_topic, kafka_topic) in [
        ("sensors/plant1/line3/telemetry", "telemetry"),
        ("machines/plant1/line3/state", "machine-state"),
    ] {
        let shaped = records_of(&out.seen, mqtt_topic);
        let want_topic = format!("topic={kafka_topic} ");
        assert!(
            shaped
                .iter()
                .all(|r| r.contains(&want_topic) && r.ends_with("key=d1")),
            "keyed by device_id: {shaped:?}"
        );
        // Each header once: the user property is the host's, the topic levels the
        // module's or the templates'.
        for headers in headers_of(&out.seen, mqtt_topic) {
            for pair in ["tenant=acme", "site=plant1", "line=line3"] {
                let n = headers.iter().filter(|h| **h == pair).count();
                assert_eq!(n, 1, "{pair} in {headers:?}");
            }
            assert_eq!(
                headers.iter().filter(|h| h.starts_with("tenant=")).count(),
                1
            );
        }
    }

    let metrics = request(metrics_port, "GET", "/metrics");
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    let delivered: f64 = metrics
        .body
        .lines()
        .filter(|l| l.starts_with("rmqtt_kafka_bridge_delivered_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(
        delivered,
        2.0 * hints.len() as f64,
        "/metrics counts every printed record"
    );

    signal(demo.0.id(), "TERM");
    let (status, err) = wait_exit(&mut demo.0, EXIT_GUARD, "rmqttd --demo after SIGTERM");
    assert!(status.success(), "exit status {status}; stderr:\n{err}");
    assert!(!err.contains("ERROR"), "errors while stopping:\n{err}");
}

#[test]
fn a_configuration_error_in_the_demo_names_the_users_file() {
    let config = shipped_bridge_config().replace("remote.queue_timeout", "remote.queue_timout");
    let dir = site(free_port(), &config);
    let mut child = demo(&dir);
    let (status, err) = wait_exit(&mut child, LINE_GUARD, "rmqttd --demo with a bad file");
    assert_eq!(status.code(), Some(1), "stderr:\n{err}");
    assert!(
        err.contains("(configuration plugins/rmqtt-bridge-egress-kafka.toml)")
            && err.contains("field `remote.queue_timout`"),
        "names the user's file and the field:\n{err}"
    );
    assert!(
        !err.contains("rmqttd-demo-"),
        "names the temporary copy:\n{err}"
    );
}
