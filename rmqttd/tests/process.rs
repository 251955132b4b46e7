//! Separate processes: tansu as Kafka, `rmqttd` as the broker, Debian's `mosquitto_pub`
//! as the publisher. The seed's configuration runs verbatim, only `servers` changed.
//! Also: every kind of bad configuration refuses the start with one clear message; MQTT
//! over TLS with certificates from `openssl`; rmqtt's HTTP API over real HTTP.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bridge_testkit::http::request;
use bridge_testkit::procs::{free_port, require, start_tansu, wait_for_port, Proc};
use bridge_testkit::tls::make_certs;
use bridge_testkit::{read_topic, Record};

const SEED: &str = include_str!("../../tests/fixtures/seed-bridge-egress-kafka.toml");

/// A working directory with rmqtt.toml and plugins/ for one rmqttd.
struct Site {
    dir: tempfile::TempDir,
    port: u16,
}

impl Site {
    fn new(plugin_toml: &str) -> Site {
        Site::with(plugin_toml, "", "")
    }

    /// `startup` (`, "name"`) is added to plugins.default_startups, `extra` to rmqtt.toml.
    fn with(plugin_toml: &str, startup: &str, extra: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::create_dir(dir.path().join("plugins")).unwrap();
        std::fs::write(
            dir.path().join("rmqtt.toml"),
            format!(
                "node.id = 1\nlog.to = \"console\"\nlog.level = \"info\"\nplugins.dir = \"plugins/\"\nplugins.default_startups = [\"rmqtt-acl\", \"rmqtt-bridge-egress-kafka\"{startup}]\nlistener.tcp.external.addr = \"127.0.0.1:{port}\"\nlistener.tcp.external.allow_anonymous = true\n{extra}"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("plugins/rmqtt-acl.toml"),
            "rules = [[\"allow\", \"all\"]]\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("plugins/rmqtt-bridge-egress-kafka.toml"),
            plugin_toml,
        )
        .unwrap();
        Site { dir, port }
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.dir.path().join(file), text).unwrap();
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rmqttd"));
        c.args(["-f", "rmqtt.toml"]).current_dir(self.dir.path());
        // The HTTP API's error answers then carry the error (salvo hides it by default).
        c.env("SALVO_STATUS_ERROR", "force_detail");
        c
    }

    /// Starts rmqttd with its stderr captured.
    fn spawn(&self) -> std::process::Child {
        self.command()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn start(&self) -> Proc {
        let mut child = self.spawn();
        wait_for_port(self.port, &mut child, "rmqttd");
        Proc(child)
    }

    /// Runs rmqttd expecting it to refuse the start; returns its stderr.
    fn refused(&self) -> String {
        let mut child = self.spawn();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("rmqttd did not refuse to start");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(status.code(), Some(1), "exit status; stderr:\n{err}");
        assert!(
            !err.contains("panicked") && !err.contains("stack backtrace"),
            "a panic:\n{err}"
        );
        err
    }
}

/// The seed's configuration verbatim, only `servers` changed.
fn seed_for(bootstrap: &str) -> String {
    let config = SEED.replace(
        "servers = \"127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094\"",
        &format!("servers = \"{bootstrap}\""),
    );
    assert_ne!(config, SEED, "only `servers` changes");
    config
}

fn mosquitto_pub(port: u16, args: &[&str]) {
    let status = Command::new(require("mosquitto_pub"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "mosquitto_pub {args:?}");
}

fn read_back(bootstrap: &str, topic: &str, want: usize) -> Vec<Record> {
    read_topic(
        bootstrap,
        topic,
        want,
        Duration::from_secs(30),
        Duration::from_millis(500),
    )
}

#[test]
fn seed_config_verbatim_with_tansu_rmqttd_and_mosquitto_pub() {
    let tansu = start_tansu();
    let config = seed_for(&tansu.bootstrap);
    let site = Site::new(&config);
    let _rmqttd = site.start();

    mosquitto_pub(
        site.port,
        &[
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-t",
            "local/topic1/egress/dev1",
            "-m",
            "{\"v\":1}",
            "-D",
            "publish",
            "user-property",
            "site",
            "berlin",
            "-D",
            "publish",
            "content-type",
            "application/json",
        ],
    );
    mosquitto_pub(
        site.port,
        &[
            "-V",
            "mqttv311",
            "-q",
            "0",
            "-t",
            "local/topic2/egress/x/y",
            "-m",
            "plain",
        ],
    );
    mosquitto_pub(
        site.port,
        &[
            "-V",
            "mqttv311",
            "-q",
            "1",
            "-t",
            "elsewhere/x",
            "-m",
            "not forwarded",
        ],
    );

    let recs = read_back(
        &tansu.bootstrap,
        "remote-topic1-egress-local-topic1-egress-dev1",
        1,
    );
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.payload_str(), "{\"v\":1}");
    assert_eq!(
        r.header("topic").as_deref(),
        Some("local/topic1/egress/dev1")
    );
    assert_eq!(r.header("qos").as_deref(), Some("1"));
    assert_eq!(r.header("from_type").as_deref(), Some("custom"));
    assert_eq!(r.header("from_node").as_deref(), Some("1"));
    assert_eq!(r.header("site").as_deref(), Some("berlin"));
    assert_eq!(
        r.header("content_type").as_deref(),
        Some("application/json")
    );
    let ts: i64 = r.header("ts").unwrap().parse().unwrap();
    assert_eq!(r.timestamp, Some(ts));

    let recs = read_back(&tansu.bootstrap, "remote-topic2-egress", 1);
    assert_eq!(
        recs.iter().map(Record::payload_str).collect::<Vec<_>>(),
        ["plain"]
    );
    assert_eq!(
        recs[0].header("topic").as_deref(),
        Some("local/topic2/egress/x/y")
    );
}

#[test]
fn bad_configurations_refuse_the_start_with_one_clear_message() {
    let entry = "[[bridges.entries]]\nlocal.topic_filter = \"a/#\"\nremote.topic = \"t\"\n";
    let bridge =
        |body: &str| format!("[[bridges]]\nname = \"b1\"\nservers = \"127.0.0.1:1\"\n{body}");
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("missing servers", format!("[[bridges]]\nname = \"b1\"\n{entry}"), &["bridge \"b1\"", "field `servers`", "missing"]),
        (
            "invalid topic filter",
            bridge("[[bridges.entries]]\nlocal.topic_filter = \"a/#/b\"\nremote.topic = \"t\"\n"),
            &["bridge \"b1\"", "entry 0", "field `local.topic_filter`", "'#' must be the last level"],
        ),
        ("duplicate bridge name", format!("{}{}", bridge(entry), bridge(entry)), &["bridge \"b1\"", "field `name`", "already named \"b1\""]),
        ("no producers", bridge(&format!("concurrent_client_limit = 0\n{entry}")), &["bridge \"b1\"", "field `concurrent_client_limit`", "1 to 64"]),
        (
            "typo",
            bridge("[[bridges.entries]]\nlocal.topic_filter = \"a/#\"\nremote.topic = \"t\"\nremote.queue_timout = \"1s\"\n"),
            &["bridge \"b1\"", "entry 0", "field `remote.queue_timout`", "unknown field"],
        ),
        (
            "bad duration",
            bridge("[[bridges.entries]]\nlocal.topic_filter = \"a/#\"\nremote.topic = \"t\"\nremote.queue_timeout = \"5 parsecs\"\n"),
            &["bridge \"b1\"", "entry 0", "field `remote.queue_timeout`", "invalid duration \"5 parsecs\""],
        ),
        (
            "missing module",
            bridge("[[bridges.entries]]\nlocal.topic_filter = \"a/#\"\nremote.topic = \"t\"\ntransform.module = \"nope.wasm\"\n"),
            &["bridge \"b1\"", "entry 0", "field `transform.module`", "cannot read module", "nope.wasm"],
        ),
        (
            "unknown librdkafka property",
            bridge(&format!("[bridges.properties]\n\"linger.msec\" = \"5\"\n{entry}")),
            &["bridge \"b1\"", "entry 0", "field `properties`", "linger.msec"],
        ),
    ];
    for (what, config, expect) in cases {
        let err = Site::new(&config).refused();
        for e in expect {
            assert!(err.contains(e), "{what}: expected {e:?} in:\n{err}");
        }
        assert!(
            err.contains("rmqtt-bridge-egress-kafka.toml"),
            "{what}: names the file:\n{err}"
        );
        let lines = err.lines().filter(|l| l.contains("rmqttd: error")).count();
        assert_eq!(lines, 1, "{what}: one error line:\n{err}");
    }
}

#[test]
fn a_missing_config_file_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_rmqttd"))
        .args(["-f", "/nonexistent/rmqtt.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("configuration file /nonexistent/rmqtt.toml not found"));
}

#[test]
fn sigterm_flushes_and_exits_cleanly() {
    let tansu = start_tansu();
    // tansu can lose records produced while it auto-creates their topic (NOTES.md).
    tansu.create_topic("remote-topic2-egress", 1);
    let config = seed_for(&tansu.bootstrap);
    let site = Site::new(&config);
    let mut rmqttd = site.start();
    for i in 0..20 {
        mosquitto_pub(
            site.port,
            &[
                "-q",
                "1",
                "-t",
                "local/topic2/egress/t",
                "-m",
                &i.to_string(),
            ],
        );
    }
    let pid = rmqttd.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = rmqttd.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "rmqttd did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    rmqttd
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "exit status {status}:\n{err}");
    assert!(
        err.contains("delivered 20, ") && err.contains("delivery_failed 0, in flight 0"),
        "the shutdown summary:\n{err}"
    );
    assert_eq!(
        read_back(&tansu.bootstrap, "remote-topic2-egress", 20).len(),
        20
    );
}

#[test]
fn a_publish_over_tls_reaches_kafka() {
    let tansu = start_tansu();
    tansu.create_topic("remote-topic2-egress", 1);
    let certs_dir = tempfile::tempdir().unwrap();
    let certs = make_certs(certs_dir.path());
    let tls_port = free_port();
    let site = Site::with(
        &seed_for(&tansu.bootstrap),
        "",
        &format!(
            "listener.tls.external.addr = \"127.0.0.1:{tls_port}\"\nlistener.tls.external.cert = \"{}\"\nlistener.tls.external.key = \"{}\"\nlistener.tls.external.allow_anonymous = true\n",
            certs.cert.display(),
            certs.key.display()
        ),
    );
    let mut rmqttd = site.start();
    wait_for_port(tls_port, &mut rmqttd.0, "rmqttd's TLS listener");

    let status = Command::new(require("mosquitto_pub"))
        .arg("--cafile")
        .arg(&certs.ca)
        .args(["-h", "localhost", "-p", &tls_port.to_string()])
        .args(["-q", "1", "-t", "local/topic2/egress/tls", "-m", "over tls"])
        .status()
        .unwrap();
    assert!(status.success(), "mosquitto_pub over TLS");

    let recs = read_back(&tansu.bootstrap, "remote-topic2-egress", 1);
    assert_eq!(
        recs.iter().map(Record::payload_str).collect::<Vec<_>>(),
        ["over tls"]
    );
    assert_eq!(
        recs[0].header("topic").as_deref(),
        Some("local/topic2/egress/tls")
    );
}

#[test]
fn a_tls_listener_without_a_key_or_with_quic_is_refused() {
    let entry = "[[bridges]]\nname = \"b1\"\nservers = \"127.0.0.1:1\"\n[[bridges.entries]]\nlocal.topic_filter = \"a/#\"\nremote.topic = \"t\"\n";
    let port = free_port();
    let cases = [
        (
            format!("listener.tls.secure.addr = \"127.0.0.1:{port}\"\nlistener.tls.secure.cert = \"server.pem\"\n"),
            "listener.tls.secure.cert: file server.pem not found",
        ),
        (
            format!("listener.wss.secure.addr = \"127.0.0.1:{port}\"\n"),
            "listener.wss.secure.cert: required for a wss listener",
        ),
        (
            format!("listener.quic.q.addr = \"127.0.0.1:{port}\"\n"),
            "listener.quic.q on 127.0.0.1:",
        ),
    ];
    for (extra, expect) in cases {
        let err = Site::with(entry, "", &extra).refused();
        assert!(err.contains(expect), "expected {expect:?} in:\n{err}");
    }
}

#[test]
fn the_http_api_shows_attrs_reloads_config_and_serves_prometheus() {
    let tansu = start_tansu();
    let http_port = free_port();
    let site = Site::with(&seed_for(&tansu.bootstrap), ", \"rmqtt-http-api\"", "");
    site.write(
        "plugins/rmqtt-http-api.toml",
        &format!("http_laddr = \"127.0.0.1:{http_port}\"\n"),
    );
    let _rmqttd = site.start();
    mosquitto_pub(
        site.port,
        &["-q", "1", "-t", "local/topic2/egress/api", "-m", "x"],
    );

    let info = request(
        http_port,
        "GET",
        "/api/v1/plugins/1/rmqtt-bridge-egress-kafka",
    );
    assert_eq!(info.status, 200, "{}", info.body);
    let info: serde_json::Value = serde_json::from_str(&info.body).unwrap();
    assert_eq!(info["active"], true, "{info}");
    let bridge = &info["attrs"]["bridges"][0];
    assert_eq!(bridge["name"], "bridge_kafka_1", "{info}");
    assert_eq!(bridge["stats"]["matched"], 1, "{info}");

    let reload = "/api/v1/plugins/1/rmqtt-bridge-egress-kafka/config/reload";
    let ok = request(http_port, "PUT", reload);
    assert_eq!((ok.status, ok.body.as_str()), (200, "true"));
    // A bad file is refused by the plugin's own check: the request reached load_config.
    let bad = seed_for(&tansu.bootstrap).replace("remote.topic =", "remote.topik =");
    site.write("plugins/rmqtt-bridge-egress-kafka.toml", &bad);
    let refused = request(http_port, "PUT", reload);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.body.contains("remote.topik"), "{}", refused.body);

    let prom = request(http_port, "GET", "/api/v1/metrics/prometheus");
    assert_eq!(prom.status, 200, "{}", prom.body);
    for series in ["rmqtt_metrics{", "rmqtt_stats{", "rmqtt_nodes{"] {
        assert!(prom.body.contains(series), "{series} in:\n{}", prom.body);
    }
}
