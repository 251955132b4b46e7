//! `remote.ack`: when each level acknowledges a QoS 1 publish, against a real broker and
//! librdkafka's mock cluster with Kafka down, and how often the spool syncs at
//! `"written"` and `"synced"`, read from `/metrics`.

use std::time::Duration;

use bridge_testkit::http::{request, sample};
use bridge_testkit::procs::free_port;
use bridge_testkit::*;
use rumqttc::v5::mqttbytes::QoS;

fn entry(filter: &str, topic: &str, level: &str) -> String {
    format!("[[bridges.entries]]\nlocal.topic_filter = \"{filter}\"\nremote.topic = \"{topic}\"\nremote.ack = \"{level}\"\n")
}

/// A memory bridge and a disk bridge, each entry at the level its topic names.
fn two_bridges(bootstrap: &str, dir: &std::path::Path) -> String {
    let memory = bridge_config(
        bootstrap,
        "",
        &(entry("received/#", "k", "received") + &entry("delivered-m/#", "k", "delivered")),
    )
    .replace("name = \"b1\"", "name = \"mem\"");
    let disk = bridge_config(
        bootstrap,
        &disk_buffer(dir, ""),
        &(entry("written/#", "k", "written")
            + &entry("synced/#", "k", "synced")
            + &entry("delivered-d/#", "k", "delivered")),
    )
    .replace("name = \"b1\"", "name = \"disk\"");
    format!("{memory}\n{disk}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_level_acknowledges_when_it_promises_with_kafka_down() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("k", 1);
    kafka.broker_down(1);
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&two_bridges(&kafka.bootstrap, dir.path())).await;
    let mut c = V5Client::connect(broker.addr, "levels").await;
    for topic in ["received/1", "written/1", "synced/1"] {
        c.client
            .publish(topic, QoS::AtLeastOnce, false, topic)
            .await
            .unwrap();
        let ack = c.next_ack(Duration::from_secs(5)).await;
        assert_eq!(
            ack.map(|a| a.1),
            Some(0),
            "{topic}: acknowledged, Kafka down"
        );
    }
    for topic in ["delivered-m/1", "delivered-d/1"] {
        c.client
            .publish(topic, QoS::AtLeastOnce, false, topic)
            .await
            .unwrap();
    }
    let held = c.next_ack(Duration::from_secs(3)).await;
    assert_eq!(
        held, None,
        "\"delivered\" holds the PUBACK while Kafka is down"
    );
    kafka.broker_up(1);
    for _ in 0..2 {
        let ack = c.next_ack(Duration::from_secs(30)).await;
        assert_eq!(ack.map(|a| a.1), Some(0), "acknowledged once Kafka took it");
    }
    let status = broker.attrs().await;
    let levels: Vec<&str> = status["bridges"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["entries"].as_array().unwrap())
        .map(|e| e["ack"].as_str().unwrap())
        .collect();
    assert_eq!(
        levels,
        ["received", "delivered", "written", "synced", "delivered"]
    );
}

/// Publishes `n` QoS 1 messages on `topic` one at a time, each after the last PUBACK.
async fn one_at_a_time(c: &mut V3Client, topic: &str, n: usize) {
    for i in 0..n {
        c.publish(topic, 1, i.to_string()).await;
        c.next_ack(Duration::from_secs(10)).await.expect("a PUBACK");
    }
}

fn syncs(http: u16, bridge: &str) -> f64 {
    let m = request(http, "GET", "/metrics").body;
    sample(&m, "spool_syncs_total", &format!("bridge=\"{bridge}\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_syncs_far_less_often_than_it_writes_and_synced_once_per_publish() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("k", 1);
    let (written_dir, synced_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let http = free_port();
    let bridge = |name: &str, dir: &std::path::Path, level: &str| {
        bridge_config(
            &kafka.bootstrap,
            &disk_buffer(dir, ""),
            &entry(&format!("{name}/#"), "k", level),
        )
        .replace("name = \"b1\"", &format!("name = \"{name}\""))
    };
    let config = format!(
        "http_laddr = \"127.0.0.1:{http}\"\n{}\n{}",
        bridge("w", written_dir.path(), "written"),
        bridge("s", synced_dir.path(), "synced")
    );
    let broker = Broker::start(&config).await;
    let mut c = V3Client::connect(broker.addr, "syncs").await;
    let n = 2000;
    let before = tokio::task::spawn_blocking(move || (syncs(http, "w"), syncs(http, "s")))
        .await
        .unwrap();
    one_at_a_time(&mut c, "w/1", n).await;
    one_at_a_time(&mut c, "s/1", 200).await;
    let after = tokio::task::spawn_blocking(move || (syncs(http, "w"), syncs(http, "s")))
        .await
        .unwrap();
    let (written, synced) = (after.0 - before.0, after.1 - before.1);
    assert!(
        written < (n / 20) as f64,
        "\"written\": {written} syncs for {n} records"
    );
    assert!(
        synced >= 200.0,
        "\"synced\": a sync per publish sent one at a time, {synced} for 200"
    );
    broker
        .stats_when(0, "all delivered", |s| s["outcomes"]["delivered"] == n)
        .await;
}
