//! `producer_pool = "bridge"`: the bridge's `concurrent_client_limit` producers are
//! shared by all its entries. One key keeps its order across entries, and every entry
//! keeps its own accounting, dead letters, ack mode, `queue_timeout` and `partition`.
//! Also: producers are connected before the first publish meets them, in both modes.
//! Real broker, real clients, librdkafka's mock cluster.

use std::time::Duration;

use bridge_testkit::http::request;
use bridge_testkit::*;
use serde_json::json;

const SHARED: &str = "concurrent_client_limit = 4\nproducer_pool = \"bridge\"";

fn entry(filter: &str, topic: &str, extra: &str) -> String {
    format!("[[bridges.entries]]\nlocal.topic_filter = \"{filter}\"\nremote.topic = \"{topic}\"\n{extra}\n")
}

/// The numbers in the payloads of `key`'s records, in Kafka's order.
fn seqs_of(recs: &[Record], key: &str) -> Vec<u64> {
    recs.iter()
        .filter(|r| r.key_str().as_deref() == Some(key))
        .map(|r| r.payload_str().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_keeps_its_order_across_entries_on_shared_producers() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("shared", 4);
    let key = "remote.key = \"${clientid}\"";
    let entries = entry("a/+", "shared", key) + &entry("b/+", "shared", key);
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, SHARED, &entries)).await;
    let attrs = broker.attrs().await;
    let ids: Vec<String> = (1..=4)
        .map(|n| format!("test:b1:egress:1:shared:{n}"))
        .collect();
    for e in 0..2 {
        assert_eq!(
            attrs["bridges"][0]["entries"][e]["client_ids"],
            json!(ids),
            "{attrs}"
        );
    }

    let (keys, per_key) = (8, 200u64);
    let mut clients = Vec::new();
    for k in 0..keys {
        clients.push(V3Client::connect(broker.addr, &format!("k{k}")).await);
    }
    for seq in 0..per_key {
        for c in &clients {
            // Alternate entries: the key's records come from both.
            let topic = if seq % 2 == 0 { "a/x" } else { "b/x" };
            c.publish(topic, 1, seq.to_string()).await;
        }
    }
    let total = keys * per_key as usize;
    let recs = read(&kafka.bootstrap, "shared", total).await;
    assert_eq!(recs.len(), total, "each record once");
    for k in 0..keys {
        let key = format!("k{k}");
        assert_eq!(
            seqs_of(&recs, &key),
            (0..per_key).collect::<Vec<_>>(),
            "order of {key}"
        );
    }
    for e in 0..2 {
        let s = broker.settled_stats(0, e).await;
        assert_eq!(
            s["outcomes"]["delivered"],
            total as u64 / 2,
            "entry {e}: {s}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_entry_keeps_its_counters_dead_letters_ack_mode_and_partition() {
    let kafka = MockKafka::start(1);
    for (t, partitions) in [("hot", 1), ("rejected", 1), ("acked", 1), ("parted", 4)] {
        kafka.create_topic(t, partitions);
    }
    let module = example_module("threshold-filter");
    let filter = format!(
        "transform.module = \"{}\"\ntransform.config = {{ threshold = 30, field = \"value\" }}\ntransform.on_error = \"dead_letter\"\ntransform.dead_letter_topic = \"rejected\"",
        module.display()
    );
    let entries = entry("s/+", "hot", &filter)
        + &entry("d/+", "acked", "remote.ack_after_delivery = true")
        + &entry("p/+", "parted", "remote.partition = 2");
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, SHARED, &entries)).await;
    let mut c = V3Client::connect(broker.addr, "pub").await;
    for payload in [r#"{"value":10}"#, r#"{"value":45}"#, "not json"] {
        c.publish("s/1", 1, payload).await;
    }
    c.publish("d/1", 1, "wait for kafka").await;
    c.publish("p/1", 1, "to partition 2").await;
    for _ in 0..5 {
        c.next_ack(Duration::from_secs(10)).await.expect("a PUBACK");
    }

    assert_eq!(read(&kafka.bootstrap, "hot", 1).await.len(), 1);
    assert_eq!(read(&kafka.bootstrap, "rejected", 1).await.len(), 1);
    assert_eq!(read(&kafka.bootstrap, "acked", 1).await.len(), 1);
    let parted = read(&kafka.bootstrap, "parted", 1).await;
    assert_eq!(parted.iter().map(|r| r.partition).collect::<Vec<_>>(), [2]);
    let expect = [
        (
            0,
            json!({"matched": 3, "delivered": 1, "filtered": 1, "dead_lettered": 1}),
        ),
        (
            1,
            json!({"matched": 1, "delivered": 1, "filtered": 0, "dead_lettered": 0}),
        ),
        (
            2,
            json!({"matched": 1, "delivered": 1, "filtered": 0, "dead_lettered": 0}),
        ),
    ];
    for (e, want) in expect {
        let s = broker.settled_stats(0, e).await;
        let o = &s["outcomes"];
        let got = json!({"matched": s["matched"], "delivered": o["delivered"], "filtered": o["filtered"], "dead_lettered": o["dead_lettered"]});
        assert_eq!(got, want, "entry {e}: {s}");
        assert_eq!(
            outcome_total(&s),
            s["matched"].as_u64().unwrap(),
            "entry {e}: {s}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_timeout_stays_per_entry_on_shared_producers() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("t", 1);
    // One record in flight at a time, each taking a second: the second publish finds
    // the bound full. The entry that may wait gets it through; the other drops it.
    let entries = entry("wait/+", "t", "remote.queue_timeout = \"10s\"")
        + &entry("drop/+", "t", "remote.queue_timeout = \"0s\"");
    let keys = format!("{SHARED}\nmax_inflight_messages = 1");
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, &keys, &entries)).await;
    kafka.round_trip_time(1, Duration::from_secs(1));
    let c = V3Client::connect(broker.addr, "pub").await;
    c.publish("wait/1", 1, "first").await;
    c.publish("wait/2", 1, "waits for room").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let d = V3Client::connect(broker.addr, "dropper").await;
    d.publish("drop/1", 1, "dropped").await;

    let waited = broker
        .stats_when(0, "2 delivered", |s| s["outcomes"]["delivered"] == 2)
        .await;
    assert_eq!(waited["outcomes"]["delivered"], 2, "{waited}");
    let dropped = broker
        .stats_when(1, "1 matched and accounted", |s| accounted(s, 1))
        .await;
    assert_eq!(dropped["outcomes"]["dropped_buffer_full"], 1, "{dropped}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_are_connected_before_the_first_publish() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("t", 1);
    for (pool, clients) in [("entry", 4), ("bridge", 2)] {
        let port = bridge_testkit::procs::free_port();
        let keys = format!("concurrent_client_limit = 2\nproducer_pool = \"{pool}\"");
        let entries = format!(
            "\"statistics.interval.ms\" = \"100\"\n{}{}",
            entry("a/+", "t", ""),
            entry("b/+", "t", "")
        );
        let config = format!(
            "http_laddr = \"127.0.0.1:{port}\"\n{}",
            bridge_config(&kafka.bootstrap, &keys, &entries)
        );
        let broker = Broker::start(&config).await;
        // No publish yet: librdkafka alone would not connect until it had a record. A
        // client's first statistics may come before its connection is up, so this
        // waits until every client reports its broker up.
        let up_line = "rmqtt_kafka_bridge_producer_broker_up{";
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let m = tokio::task::spawn_blocking(move || request(port, "GET", "/metrics"))
                .await
                .unwrap()
                .body;
            let lines: Vec<&str> = m.lines().filter(|l| l.starts_with(up_line)).collect();
            if lines.len() == clients && lines.iter().all(|l| l.ends_with(" 1")) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{pool}: {clients} producers not all connected after 10 s:\n{}",
                lines.join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        broker.stop_plugin().await;
    }
}
