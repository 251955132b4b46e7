//! The plugin's own HTTP endpoint (`http_laddr`) on a real broker and mock Kafka, asked
//! with real HTTP requests: every outcome counter in `/metrics` equals what the test
//! caused, the bearer token guards every route but `/health`, a busy address refuses
//! the start naming the field, and reloads are counted by result.

use std::net::TcpListener;

use bridge_testkit::http::{request_with, sample, Response};
use bridge_testkit::procs::free_port;
use bridge_testkit::*;
use rdkafka::types::RDKafkaRespErr;
use rmqtt_bridge_egress_kafka::PLUGIN_NAME;
use serde_json::json;

const TOKEN: &str = "s3cret-token";
const HOT: &str = "0:s/+/+/telemetry";
const PLAIN: &str = "1:d/#";

async fn get(port: u16, path: &str, token: Option<&str>) -> Response {
    let path = path.to_owned();
    let auth = token.map(|t| format!("Bearer {t}"));
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        request_with(port, "GET", &path, &headers)
    })
    .await
    .unwrap()
}

fn entry_labels(entry: &str) -> String {
    format!("bridge=\"b1\",entry=\"{entry}\"")
}

fn config(bootstrap: &str, port: u16) -> String {
    let module = example_module("threshold-filter");
    let entries = format!(
        "[[bridges.entries]]\nlocal.topic_filter = \"s/+/+/telemetry\"\nremote.topic = \"hot\"\ntransform.instances = 2\ntransform.module = \"{}\"\ntransform.config = {{ threshold = 30, field = \"value\" }}\ntransform.on_error = \"dead_letter\"\ntransform.dead_letter_topic = \"rejected\"\n\n[[bridges.entries]]\nlocal.topic_filter = \"d/#\"\nremote.topic = \"plain\"\n",
        module.display()
    );
    // In [bridges.properties], which bridge_config opens just before the entries.
    let entries = format!("\"statistics.interval.ms\" = \"200\"\n{entries}");
    let top = format!("http_laddr = \"127.0.0.1:{port}\"\nhttp_bearer_token = \"{TOKEN}\"\n");
    format!(
        "{top}{}",
        bridge_config(bootstrap, "max_inflight_bytes = \"1KiB\"", &entries)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_outcome_and_the_token_guards_all_but_health() {
    let kafka = MockKafka::start(1);
    for t in ["hot", "rejected", "plain"] {
        kafka.create_topic(t, 1);
    }
    let port = free_port();
    let broker = Broker::start(&config(&kafka.bootstrap, port)).await;
    let c = V3Client::connect(broker.addr, "sensor").await;
    for v in [10, 45] {
        c.publish("s/x/l1/telemetry", 1, json!({ "value": v }).to_string())
            .await;
    }
    c.publish("s/x/l1/telemetry", 1, "not json").await;
    // Larger than max_inflight_bytes: it can never fit, so it is dropped at once.
    c.publish("d/big", 1, vec![b'x'; 2000]).await;
    c.publish("d/ok", 1, "small").await;
    assert_eq!(read(&kafka.bootstrap, "hot", 1).await.len(), 1);
    assert_eq!(read(&kafka.bootstrap, "rejected", 1).await.len(), 1);
    assert_eq!(read(&kafka.bootstrap, "plain", 1).await.len(), 1);
    broker.settled_stats(0, 0).await;
    broker.settled_stats(0, 1).await;

    assert_eq!(get(port, "/metrics", None).await.status, 401);
    assert_eq!(get(port, "/status", Some("wrong")).await.status, 401);
    let m = get(port, "/metrics", Some(TOKEN)).await;
    assert_eq!(m.status, 200, "{}", m.body);
    let hot = entry_labels(HOT);
    let expect_hot = [
        ("matched_total", 3.0),
        ("delivered_total", 1.0),
        ("filtered_total", 1.0),
        ("dead_lettered_total", 1.0),
        ("transform_error_total", 0.0),
        ("dropped_buffer_full_total", 0.0),
        ("delivery_failed_total", 0.0),
        ("acl_denied_total", 0.0),
    ];
    for (name, want) in expect_hot {
        assert_eq!(sample(&m.body, name, &hot), want, "{name} of entry {HOT}");
    }
    let plain = entry_labels(PLAIN);
    let expect_plain = [
        ("matched_total", 2.0),
        ("delivered_total", 1.0),
        ("dropped_buffer_full_total", 1.0),
        ("filtered_total", 0.0),
        ("dead_lettered_total", 0.0),
        ("delivery_failed_total", 0.0),
    ];
    for (name, want) in expect_plain {
        assert_eq!(
            sample(&m.body, name, &plain),
            want,
            "{name} of entry {PLAIN}"
        );
    }
    // Prometheus sorts labels by name.
    let guest_error = format!("bridge=\"b1\",cause=\"guest_error\",entry=\"{HOT}\"");
    assert_eq!(
        sample(&m.body, "transform_failures_total", &guest_error),
        1.0
    );
    assert_eq!(sample(&m.body, "inflight_records", "bridge=\"b1\""), 0.0);
    assert_eq!(
        sample(&m.body, "inflight_bytes_limit", "bridge=\"b1\""),
        1024.0
    );
    assert_eq!(
        sample(
            &m.body,
            "transform_instances",
            &format!("{hot},state=\"idle\"")
        ),
        2.0
    );

    // threshold-filter keeps no state; the store's series are there, with its bounds.
    let state = [
        ("transform_state_keys", 0.0),
        ("transform_state_bytes", 0.0),
        ("transform_state_max_keys", 100_000.0),
        ("transform_state_max_bytes", f64::from(16 << 20)),
    ];
    for (name, want) in state {
        assert_eq!(sample(&m.body, name, &hot), want, "{name}");
    }
    let refused = format!("bridge=\"b1\",entry=\"{HOT}\",reason=\"too_many_keys\"");
    assert_eq!(
        sample(&m.body, "transform_state_puts_refused_total", &refused),
        0.0
    );

    for (labels, delivered) in [(&hot, 1.0), (&plain, 1.0)] {
        let latency = sample(&m.body, "delivery_latency_seconds_count", labels);
        assert_eq!(latency, delivered, "one latency per delivered record");
        assert_eq!(sample(&m.body, "delivered_total", labels), delivered);
    }
    let calls = sample(&m.body, "transform_duration_seconds_count", &hot);
    assert_eq!(calls, 3.0, "one duration per transform call");

    let status = get(port, "/status", Some(TOKEN)).await;
    assert_eq!(status.status, 200);
    let doc: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(doc, broker.attrs().await, "/status is the attrs() document");

    let health = get(port, "/health", None).await;
    let doc: serde_json::Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(health.status, 200, "{doc}");
    assert_eq!(doc["bridges"][0]["state"], "up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_http_laddr_refuses_the_start_naming_the_field() {
    let kafka = MockKafka::start(1);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let result = Broker::builder()
        .config(PLUGIN_NAME, config(&kafka.bootstrap, port))
        .register_bridge()
        .start()
        .await;
    let err = format!("{:#}", result.err().expect("the start is refused"));
    assert!(err.contains("field `http_laddr`"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

/// A refused reload leaves the old configuration running, so the counts and the last
/// reload's time and result are what an operator alerts on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_are_counted_by_result_with_the_last_ones_time_and_error() {
    let kafka = MockKafka::start(1);
    let port = free_port();
    let good = config(&kafka.bootstrap, port);
    let broker = Broker::start(&good).await;
    let metrics = || async { get(port, "/metrics", Some(TOKEN)).await.body };
    let status = || async {
        let body = get(port, "/status", Some(TOKEN)).await.body;
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["reloads"].clone()
    };
    let m = metrics().await;
    assert_eq!(sample(&m, "reloads_total", "result=\"applied\""), 0.0);
    assert_eq!(sample(&m, "reloads_total", "result=\"refused\""), 0.0);
    assert_eq!(sample(&m, "last_reload_successful", ""), 1.0);
    assert_eq!(sample(&m, "last_reload_timestamp_seconds", ""), 0.0);
    assert_eq!(status().await["last"], serde_json::Value::Null);

    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    broker.reload(&good).await.unwrap();
    let m = metrics().await;
    assert_eq!(sample(&m, "reloads_total", "result=\"applied\""), 1.0);
    assert_eq!(sample(&m, "last_reload_successful", ""), 1.0);
    let applied_at = sample(&m, "last_reload_timestamp_seconds", "");
    assert!(applied_at >= started.floor(), "{applied_at} < {started}");

    let bad = good.replace("remote.topic = \"plain\"", "remote.topik = \"plain\"");
    broker.reload(&bad).await.expect_err("refused");
    let m = metrics().await;
    assert_eq!(sample(&m, "reloads_total", "result=\"applied\""), 1.0);
    assert_eq!(sample(&m, "reloads_total", "result=\"refused\""), 1.0);
    assert_eq!(sample(&m, "last_reload_successful", ""), 0.0);
    assert!(sample(&m, "last_reload_timestamp_seconds", "") >= applied_at);
    let doc = status().await;
    assert_eq!(
        (doc["applied"].as_u64(), doc["refused"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(doc["last"]["result"], "refused", "{doc}");
    let error = doc["last"]["error"].as_str().unwrap();
    assert!(
        error.contains("entry 1") && error.contains("remote.topik"),
        "{error}"
    );
    assert!(doc["last"]["at_ms"].as_f64().unwrap() >= applied_at * 1000.0 - 1.0);
    // rmqtt's HTTP API serves this configuration: the key to POST /reload is not in it.
    let shown = broker.scx.plugins.get_config(PLUGIN_NAME).await.unwrap();
    assert_eq!(shown["http_laddr"], format!("127.0.0.1:{port}"));
    assert!(!shown.to_string().contains(TOKEN), "{shown}");
}

/// Polls `path` until `done` holds for the answer (20 s at most).
async fn poll(port: u16, path: &str, done: impl Fn(&Response) -> bool) -> Response {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = get(port, path, Some(TOKEN)).await;
        if done(&r) || std::time::Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_series_and_health_follow_librdkafka_statistics() {
    let kafka = MockKafka::start(1);
    for t in ["hot", "rejected", "plain"] {
        kafka.create_topic(t, 1);
    }
    let port = free_port();
    let broker = Broker::start(&config(&kafka.bootstrap, port)).await;
    let client = "test:b1:egress:1:1:1";
    let up_line = |r: &Response| {
        r.body.lines().any(|l| {
            l.starts_with("rmqtt_kafka_bridge_producer_broker_up{")
                && l.contains(&format!("client_id=\"{client}\""))
                && l.ends_with(" 1")
        })
    };
    let m = poll(port, "/metrics", up_line).await;
    assert!(up_line(&m), "a connected broker for {client}:\n{}", m.body);
    let queued = format!("bridge=\"b1\",client_id=\"{client}\"");
    assert_eq!(sample(&m.body, "producer_queued_messages", &queued), 0.0);
    let h = poll(port, "/health", |r| r.status == 200).await;
    assert_eq!(h.status, 200, "{}", h.body);

    // An idle producer connects only when it has something to send, so Kafka being
    // gone shows once a record waits for it.
    kafka.broker_down(1);
    let c = V3Client::connect(broker.addr, "during").await;
    c.publish("d/while-down", 0, "x").await;
    let h = poll(port, "/health", |r| r.status == 503).await;
    let doc: serde_json::Value = serde_json::from_str(&h.body).unwrap();
    assert_eq!(doc["bridges"][0]["state"], "down", "{doc}");
    let reason = doc["bridges"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("no Kafka broker reachable"), "{reason}");

    kafka.broker_up(1);
    assert_eq!(read(&kafka.bootstrap, "plain", 1).await.len(), 1);
    let h = poll(port, "/health", |r| r.status == 200).await;
    assert_eq!(h.status, 200, "{}", h.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_down_or_degraded_by_recent_deliveries_and_the_in_flight_bound() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("bad", 1);
    kafka.create_topic("plain", 1);
    kafka.topic_error(
        "bad",
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
    );
    let port = free_port();
    // "Recent" is the last one to two statistics intervals: long enough here for each
    // step's deliveries to fall in one window, short enough to wait for them to leave.
    let entries = "\"statistics.interval.ms\" = \"3000\"\n[[bridges.entries]]\nlocal.topic_filter = \"bad/#\"\nremote.topic = \"bad\"\n[[bridges.entries]]\nlocal.topic_filter = \"d/#\"\nremote.topic = \"plain\"\n";
    let config = format!(
        "http_laddr = \"127.0.0.1:{port}\"\n{}",
        bridge_config(&kafka.bootstrap, "max_inflight_messages = 2", entries)
    );
    let broker = Broker::start(&config).await;
    let health = |expect: u16| async move {
        let r = poll(port, "/health", |r| r.status == expect).await;
        let doc: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(r.status, expect, "{doc}");
        doc["bridges"][0].clone()
    };
    assert_eq!(health(200).await["state"], "up");
    let c = V3Client::connect(broker.addr, "h").await;

    c.publish("bad/1", 1, "x").await;
    broker
        .stats_when(0, "1 delivery_failed", |s| {
            s["outcomes"]["delivery_failed"] == 1
        })
        .await;
    let b = health(503).await;
    assert_eq!(b["state"], "down", "{b}");
    assert!(
        b["reason"]
            .as_str()
            .unwrap()
            .contains("all 1 recent deliveries failed"),
        "{b}"
    );
    let b = health(200).await;
    assert_eq!(b["state"], "up", "the failure has left the window: {b}");

    c.publish("bad/2", 1, "x").await;
    c.publish("d/1", 1, "x").await;
    assert_eq!(read(&kafka.bootstrap, "plain", 1).await.len(), 1);
    broker
        .stats_when(0, "2 delivery_failed", |s| {
            s["outcomes"]["delivery_failed"] == 2
        })
        .await;
    broker.settled_stats(0, 1).await;
    let b = health(503).await;
    assert_eq!(b["state"], "degraded", "{b}");
    assert!(
        b["reason"]
            .as_str()
            .unwrap()
            .contains("1 of 2 recent deliveries failed"),
        "{b}"
    );
    assert_eq!(health(200).await["state"], "up", "nothing failed since");

    kafka.round_trip_time(1, std::time::Duration::from_secs(5));
    c.publish("d/2", 0, "slow").await;
    c.publish("d/3", 0, "slow").await;
    let b = health(503).await;
    assert_eq!(b["state"], "degraded", "{b}");
    assert!(
        b["reason"].as_str().unwrap().contains("in flight 2 of 2"),
        "{b}"
    );
    kafka.round_trip_time(1, std::time::Duration::ZERO);
    broker.settled_stats(0, 1).await;
    assert_eq!(health(200).await["state"], "up");
}
