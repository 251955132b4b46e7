//! Separate processes: tansu as Kafka, `rmqttd` as the broker, Debian's `mosquitto_pub`
//! as the publisher. The seed's configuration runs verbatim, only `servers` changed.
//! Also: every kind of bad configuration refuses the start with one clear message, and
//! MQTT over TLS with certificates from `openssl`.

use std::process::Command;
use std::time::Duration;

use bridge_testkit::procs::{free_port, require, signal, start_tansu, wait_exit, wait_for_port};
use bridge_testkit::rmqttd::{mosquitto_pub, read_back, seed_for, Site};
use bridge_testkit::tls::make_certs;
use bridge_testkit::Record;

const RMQTTD: &str = env!("CARGO_BIN_EXE_rmqttd");

#[test]
fn seed_config_verbatim_with_tansu_rmqttd_and_mosquitto_pub() {
    let tansu = start_tansu();
    let config = seed_for(&tansu.bootstrap);
    let site = Site::new(RMQTTD, &config);
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
        let err = Site::new(RMQTTD, &config).refused();
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
    let out = Command::new(RMQTTD)
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
    let site = Site::new(RMQTTD, &config);
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
    signal(rmqttd.0.id(), "TERM");
    let (status, _) = wait_exit(
        &mut rmqttd.0,
        Duration::from_secs(30),
        "rmqttd after SIGTERM",
    );
    let err = site.stderr();
    assert!(status.success(), "exit status {status}:\n{err}");
    assert!(
        err.contains("delivered 20, ")
            && err.contains("delivery_failed 0, possibly_delivered 0, in flight 0"),
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
        RMQTTD,
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
    // A Kafka that answers: the plugin starts at once, and the listeners are checked
    // right after (against an unreachable one, producers wait 5 s first, and the free
    // port picked for the MQTT listener may be taken meanwhile).
    let tansu = start_tansu();
    let entry = format!("[[bridges]]\nname = \"b1\"\nservers = \"{}\"\n[[bridges.entries]]\nlocal.topic_filter = \"a/#\"\nremote.topic = \"t\"\n", tansu.bootstrap);
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
        let err = Site::with(RMQTTD, &entry, "", &extra).refused();
        assert!(err.contains(expect), "expected {expect:?} in:\n{err}");
    }
}
