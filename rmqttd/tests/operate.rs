//! What an operator of `rmqttd` sees, over real HTTP, with tansu as Kafka and
//! `mosquitto_pub` as the publisher: the plugin's own `/metrics` counts every outcome
//! the test caused, `/health` follows a Kafka that hangs (SIGSTOP) and recovers
//! (SIGCONT), and rmqtt's HTTP API shows the plugin's attrs, reloads its configuration
//! and serves the broker's own series.

use std::time::{Duration, Instant};

use bridge_testkit::example_module;
use bridge_testkit::http::{request, sample, Response};
use bridge_testkit::procs::{free_port, start_tansu};
use bridge_testkit::rmqttd::{mosquitto_pub, read_back, seed_for, Site};

const RMQTTD: &str = env!("CARGO_BIN_EXE_rmqttd");
const HOT: &str = "bridge=\"b1\",entry=\"0:s/+/+/telemetry\"";
const PLAIN: &str = "bridge=\"b1\",entry=\"1:d/#\"";

/// A threshold-filter entry (filtered, delivered, dead-lettered) and a plain one whose
/// in-flight bound (1 KiB) a 2000-byte record can never fit (dropped at once).
/// librdkafka reports every second, which makes `/health`'s window 1–2 s.
fn bridge_config(bootstrap: &str, http_port: u16) -> String {
    format!(
        r#"http_laddr = "127.0.0.1:{http_port}"
[[bridges]]
name = "b1"
servers = "{bootstrap}"
max_inflight_bytes = "1KiB"
[bridges.properties]
"statistics.interval.ms" = "1000"
[[bridges.entries]]
local.topic_filter = "s/+/+/telemetry"
remote.topic = "hot"
transform.module = "{}"
transform.config = {{ threshold = 30, field = "value" }}
transform.on_error = "dead_letter"
transform.dead_letter_topic = "rejected"
[[bridges.entries]]
local.topic_filter = "d/#"
remote.topic = "plain"
"#,
        example_module("threshold-filter").display()
    )
}

/// Asks `path` until `done` holds for the answer; a hang guard of 60 s.
fn poll(port: u16, path: &str, done: impl Fn(&Response) -> bool) -> Response {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = request(port, "GET", path);
        if done(&r) {
            return r;
        }
        if Instant::now() > deadline {
            let metrics = request(port, "GET", "/metrics").body;
            panic!(
                "{path}: still {} {}\n/metrics:\n{metrics}",
                r.status, r.body
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The state of the only bridge, once `/health` answers `status`.
fn health(port: u16, status: u16) -> serde_json::Value {
    let r = poll(port, "/health", |r| r.status == status);
    let doc: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    doc["bridges"][0].clone()
}

#[test]
fn metrics_count_every_outcome_and_health_follows_a_hanging_kafka() {
    let tansu = start_tansu();
    for topic in ["hot", "rejected", "plain"] {
        tansu.create_topic(topic, 1);
    }
    let http = free_port();
    let site = Site::new(RMQTTD, &bridge_config(&tansu.bootstrap, http));
    let _rmqttd = site.start();
    for payload in [r#"{"value":10}"#, r#"{"value":45}"#, "not json"] {
        mosquitto_pub(
            site.port,
            &["-q", "1", "-t", "s/a/b/telemetry", "-m", payload],
        );
    }
    let big = "x".repeat(2000);
    mosquitto_pub(site.port, &["-q", "1", "-t", "d/big", "-m", &big]);
    mosquitto_pub(site.port, &["-q", "1", "-t", "d/ok", "-m", "small"]);
    let settled = |r: &Response| {
        r.status == 200
            && r.body
                .contains(&format!("rmqtt_kafka_bridge_delivered_total{{{PLAIN}}} 1"))
            && r.body.contains(&format!(
                "rmqtt_kafka_bridge_dead_lettered_total{{{HOT}}} 1"
            ))
            && r.body
                .contains("rmqtt_kafka_bridge_inflight_records{bridge=\"b1\"} 0")
    };
    let m = poll(http, "/metrics", settled).body;
    let expect = [
        (HOT, "matched_total", 3.0),
        (HOT, "delivered_total", 1.0),
        (HOT, "filtered_total", 1.0),
        (HOT, "dead_lettered_total", 1.0),
        (HOT, "transform_error_total", 0.0),
        (HOT, "dropped_buffer_full_total", 0.0),
        (HOT, "delivery_failed_total", 0.0),
        (PLAIN, "matched_total", 2.0),
        (PLAIN, "delivered_total", 1.0),
        (PLAIN, "dropped_buffer_full_total", 1.0),
        (PLAIN, "filtered_total", 0.0),
        (PLAIN, "delivery_failed_total", 0.0),
        (PLAIN, "acl_denied_total", 0.0),
    ];
    for (labels, name, want) in expect {
        assert_eq!(sample(&m, name, labels), want, "{name}{{{labels}}}");
    }
    for labels in [HOT, PLAIN] {
        assert_eq!(
            sample(&m, "delivery_latency_seconds_count", labels),
            sample(&m, "delivered_total", labels),
            "one latency observation per delivered record of {labels}"
        );
    }
    for (topic, payload) in [
        ("hot", r#"{"value":45}"#),
        ("rejected", "not json"),
        ("plain", "small"),
    ] {
        let recs = read_back(&tansu.bootstrap, topic, 1);
        let payloads: Vec<String> = recs.iter().map(|r| r.payload_str()).collect();
        assert_eq!(payloads, [payload], "Kafka topic {topic}");
    }

    assert_eq!(health(http, 200)["state"], "up");
    tansu.pause();
    mosquitto_pub(site.port, &["-q", "1", "-t", "d/during", "-m", "held"]);
    let down = health(http, 503);
    assert_eq!(down["state"], "down", "{down}");
    assert!(
        down["reason"]
            .as_str()
            .unwrap()
            .contains("Kafka acknowledged none of the records in flight"),
        "{down}"
    );
    tansu.resume();
    assert_eq!(health(http, 200)["state"], "up");
    let recs = read_back(&tansu.bootstrap, "plain", 2);
    let payloads: Vec<String> = recs.iter().map(|r| r.payload_str()).collect();
    assert_eq!(
        payloads,
        ["small", "held"],
        "nothing lost or doubled by the hang"
    );
    let m = request(http, "GET", "/metrics").body;
    assert_eq!(sample(&m, "delivered_total", PLAIN), 2.0);
    assert_eq!(sample(&m, "delivery_failed_total", PLAIN), 0.0);
    assert_eq!(sample(&m, "delivery_latency_seconds_count", PLAIN), 2.0);
}

#[test]
fn the_http_api_shows_attrs_reloads_config_and_serves_prometheus() {
    let tansu = start_tansu();
    let http_port = free_port();
    let site = Site::with(
        RMQTTD,
        &seed_for(&tansu.bootstrap),
        ", \"rmqtt-http-api\"",
        "",
    );
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
