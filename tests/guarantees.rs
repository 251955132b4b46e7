//! What the bridge promises, under injected faults: every message ends in exactly one
//! counted outcome, memory is bounded, per-key order holds, ack mode acknowledges only
//! what Kafka took, the ACL is respected, and stopping flushes.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bridge_testkit::procs::start_tansu;
use bridge_testkit::*;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rumqttc::v5::mqttbytes::QoS;
use serde_json::json;

fn texts(recs: &[Record]) -> Vec<String> {
    recs.iter().map(Record::payload_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_reconcile_with_the_records_in_kafka() {
    let kafka = MockKafka::start(1);
    for t in ["rc-plain", "rc-hot", "rc-dlq", "rc-tele", "rc-alarm"] {
        kafka.create_topic(t, 2);
    }
    let threshold = example_module("threshold-filter");
    let router = example_module("router");
    let entries = format!(
        r#"
[[bridges.entries]]
local.topic_filter = "rc/#"
remote.topic = "rc-plain"
[[bridges.entries]]
local.topic_filter = "rc/#"
remote.topic = "rc-hot"
transform.module = "{}"
transform.config = {{ threshold = 50 }}
transform.on_error = "dead_letter"
transform.dead_letter_topic = "rc-dlq"
[[bridges.entries]]
local.topic_filter = "rc/#"
remote.topic = "unused"
transform.module = "{}"
transform.config = {{ telemetry_topic = "rc-tele", alarm_topic = "rc-alarm" }}
"#,
        threshold.display(),
        router.display()
    );
    let broker = Broker::start(&bridge_config(
        &kafka.bootstrap,
        "concurrent_client_limit = 2",
        &entries,
    ))
    .await;
    let c = V3Client::connect(broker.addr, "reconciler").await;
    let (n, garbage) = (190u64, 10u64);
    for i in 0..n {
        let kind = if i % 4 == 0 { "alarm" } else { "reading" };
        c.publish(
            "rc/x",
            1,
            json!({"value": i, "type": kind, "device": "d1"}).to_string(),
        )
        .await;
    }
    for _ in 0..garbage {
        c.publish("rc/x", 1, "garbage").await;
    }
    let total = n + garbage;
    let alarms = (0..n).filter(|i| i % 4 == 0).count() as u64;
    let in_kafka = |t: &'static str, want: u64| read(&kafka.bootstrap, t, want as usize);
    for e in 0..3 {
        broker
            .stats_when(e, "every message matched", |s| s["matched"] == total)
            .await;
    }

    // Plain entry: every message is one delivered record.
    let s = broker.settled_stats(0, 0).await;
    assert_eq!(in_kafka("rc-plain", total).await.len() as u64, total);
    assert_eq!(
        (
            s["matched"].as_u64(),
            s["outcomes"]["delivered"].as_u64(),
            outcome_total(&s)
        ),
        (Some(total), Some(total), total)
    );

    // Threshold: 50 filtered, 140 delivered, 10 dead-lettered.
    let s = broker.settled_stats(0, 1).await;
    let hot = in_kafka("rc-hot", n - 50).await.len() as u64;
    let dlq = in_kafka("rc-dlq", garbage).await.len() as u64;
    assert_eq!(s["outcomes"]["delivered"].as_u64(), Some(hot));
    assert_eq!(s["outcomes"]["dead_lettered"].as_u64(), Some(dlq));
    assert_eq!(
        (hot, dlq, s["outcomes"]["filtered"].as_u64()),
        (n - 50, garbage, Some(50))
    );
    assert_eq!(outcome_total(&s), total, "{s}");

    // Router: one or two records per valid message; garbage is a transform error.
    let s = broker.settled_stats(0, 2).await;
    let tele = in_kafka("rc-tele", n).await.len() as u64;
    let alarm = in_kafka("rc-alarm", alarms).await.len() as u64;
    assert_eq!((tele, alarm), (n, alarms));
    assert_eq!(s["outcomes"]["delivered"].as_u64(), Some(tele + alarm));
    assert_eq!(s["outcomes"]["transform_error"].as_u64(), Some(garbage));
    assert_eq!(
        outcome_total(&s),
        n + alarms + garbage,
        "units: one per record, one per failed message: {s}"
    );
    assert_eq!(s["in_flight"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_buffer_is_bounded_and_overflow_is_counted() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("bounded", 1);
    kafka.broker_down(1);
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"b/#\"\nremote.topic = \"bounded\"\n";
    let broker = Broker::start(&bridge_config(
        &kafka.bootstrap,
        "max_inflight_messages = 10",
        entries,
    ))
    .await;
    let c = V3Client::connect(broker.addr, "flooder").await;
    for i in 0..30 {
        c.publish("b/1", 0, i.to_string()).await;
    }
    let s = broker
        .stats_when(0, "30 matched and accounted", |s| accounted(s, 30))
        .await;
    assert_eq!(
        (
            s["in_flight"].as_u64(),
            s["outcomes"]["dropped_buffer_full"].as_u64()
        ),
        (Some(10), Some(20)),
        "{s}"
    );
    assert_eq!(
        broker.attrs().await["bridges"][0]["inflight"]["messages"],
        10
    );

    kafka.broker_up(1);
    let recs = read(&kafka.bootstrap, "bounded", 10).await;
    assert_eq!(
        texts(&recs),
        (0..10).map(|i| i.to_string()).collect::<Vec<_>>(),
        "the first ten, in order"
    );
    let s = broker.settled_stats(0, 0).await;
    assert_eq!(
        (s["outcomes"]["delivered"].as_u64(), outcome_total(&s)),
        (Some(10), 30)
    );
    assert_eq!(
        broker.attrs().await["bridges"][0]["inflight"]["messages"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_byte_bound_applies_too() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("bytes", 1);
    kafka.broker_down(1);
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"b/#\"\nremote.topic = \"bytes\"\n";
    let broker = Broker::start(&bridge_config(
        &kafka.bootstrap,
        "max_inflight_bytes = \"4KiB\"",
        entries,
    ))
    .await;
    let c = V3Client::connect(broker.addr, "big").await;
    for _ in 0..10 {
        c.publish("b/1", 0, vec![b'x'; 1500]).await;
    }
    let s = broker
        .stats_when(0, "10 matched and accounted", |s| accounted(s, 10))
        .await;
    assert_eq!(
        (
            s["in_flight"].as_u64(),
            s["outcomes"]["dropped_buffer_full"].as_u64()
        ),
        (Some(2), Some(8)),
        "{s}"
    );
    assert_eq!(
        broker.attrs().await["bridges"][0]["inflight"]["bytes"],
        3000
    );
    kafka.broker_up(1);
    assert_eq!(read(&kafka.bootstrap, "bytes", 2).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_timeout_waits_for_room_before_dropping() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("waits", 1);
    kafka.broker_down(1);
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"w/#\"\nremote.topic = \"waits\"\nremote.queue_timeout = \"10s\"\n";
    let broker = Broker::start(&bridge_config(
        &kafka.bootstrap,
        "max_inflight_messages = 5",
        entries,
    ))
    .await;
    let c = V3Client::connect(broker.addr, "patient").await;
    for i in 0..8 {
        c.publish("w/1", 0, i.to_string()).await;
    }
    // Five are in flight; the sixth waits for room (holding its session), not dropped.
    let s = broker
        .stats_when(0, "6 matched", |s| s["matched"] == 6)
        .await;
    assert_eq!(s["in_flight"], 5);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        broker.entry_stats(0, 0).await["outcomes"]["dropped_buffer_full"],
        0
    );
    kafka.broker_up(1);
    assert_eq!(
        texts(&read(&kafka.bootstrap, "waits", 8).await),
        (0..8).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    let s = broker.settled_stats(0, 0).await;
    assert_eq!(
        (s["outcomes"]["delivered"].as_u64(), outcome_total(&s)),
        (Some(8), 8)
    );
}

/// Publishes `per_key` messages for each of `keys` keys, round-robin over the keys.
async fn publish_keyed(c: &V3Client, keys: usize, range: std::ops::Range<usize>) {
    for i in range {
        for k in 0..keys {
            c.publish(&format!("o/{k}"), 1, i.to_string()).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_second_outage_loses_and_duplicates_nothing_and_keeps_key_order() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("outage", 4);
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"o/+\"\nremote.topic = \"outage\"\nremote.key = \"${local.topic}\"\n";
    let broker = Broker::start(&bridge_config(
        &kafka.bootstrap,
        "concurrent_client_limit = 4",
        entries,
    ))
    .await;
    let c = V3Client::connect(broker.addr, "streamer").await;
    let keys = 16;
    publish_keyed(&c, keys, 0..50).await;
    kafka.broker_down(1);
    let down_at = Instant::now();
    publish_keyed(&c, keys, 50..100).await;
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(down_at.elapsed())).await;
    kafka.broker_up(1);
    publish_keyed(&c, keys, 100..150).await;

    let total = keys * 150;
    let recs = read(&kafka.bootstrap, "outage", total).await;
    assert_eq!(recs.len(), total, "nothing lost, nothing duplicated");
    for k in 0..keys {
        let key = format!("o/{k}");
        let seq: Vec<usize> = recs
            .iter()
            .filter(|r| r.key_str().as_deref() == Some(&key))
            .map(|r| r.payload_str().parse().unwrap())
            .collect();
        assert_eq!(seq, (0..150).collect::<Vec<_>>(), "order of {key}");
    }
    let s = broker.settled_stats(0, 0).await;
    assert_eq!(
        (
            s["outcomes"]["delivered"].as_u64(),
            outcome_total(&s),
            s["in_flight"].as_u64()
        ),
        (Some(total as u64), total as u64, Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_produce_errors_are_retried() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("flaky", 1);
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"f/#\"\nremote.topic = \"flaky\"\n";
    // One request in flight. librdkafka's mock checks idempotent sequence numbers only
    // for transactional producers, so with pipelined requests a later batch is accepted
    // after an earlier one failed; librdkafka then rightly infers (as Kafka would have
    // refused the later batch otherwise) that the earlier one was written, and the mock
    // has lost it. A real broker answers OUT_OF_ORDER_SEQUENCE_NUMBER instead.
    let config = bridge_config(&kafka.bootstrap, "", entries).replace(
        "\"linger.ms\" = \"1\"",
        "\"linger.ms\" = \"1\"\n\"max.in.flight.requests.per.connection\" = \"1\"",
    );
    let broker = Broker::start(&config).await;
    let c = V3Client::connect(broker.addr, "flaky").await;
    c.publish("f/1", 1, "warm-up").await;
    read(&kafka.bootstrap, "flaky", 1).await;
    let errs = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 4];
    kafka.request_errors(RDKafkaApiKey::Produce, &errs);
    for i in 0..20 {
        c.publish("f/1", 1, i.to_string()).await;
    }
    let recs = read(&kafka.bootstrap, "flaky", 21).await;
    assert_eq!(
        texts(&recs[1..]),
        (0..20).map(|i| i.to_string()).collect::<Vec<_>>(),
        "retried, in order, once each"
    );
    let s = broker.settled_stats(0, 0).await;
    assert_eq!(
        (
            s["outcomes"]["delivered"].as_u64(),
            s["outcomes"]["delivery_failed"].as_u64()
        ),
        (Some(21), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_move_keeps_records_flowing() {
    let kafka = MockKafka::start(3);
    kafka.create_topic("moving", 1);
    kafka.partition_leader("moving", 0, 1);
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"m/#\"\nremote.topic = \"moving\"\n";
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, "", entries)).await;
    let c = V3Client::connect(broker.addr, "mover").await;
    for (i, leader) in [2, 3, 1].into_iter().enumerate() {
        for j in 0..20 {
            c.publish("m/1", 1, format!("{i}-{j}")).await;
        }
        kafka.partition_leader("moving", 0, leader);
    }
    let recs = read(&kafka.bootstrap, "moving", 60).await;
    assert_eq!(recs.len(), 60);
    assert_eq!(
        recs.iter()
            .map(Record::payload_str)
            .collect::<HashSet<_>>()
            .len(),
        60
    );
    let s = broker.settled_stats(0, 0).await;
    assert_eq!(
        (s["outcomes"]["delivered"].as_u64(), outcome_total(&s)),
        (Some(60), 60)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_topic_error_fails_only_its_entry() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("perm-bad", 1);
    kafka.create_topic("perm-good", 1);
    kafka.topic_error(
        "perm-bad",
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
    );
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"p/#\"\nremote.topic = \"perm-bad\"\n[[bridges.entries]]\nlocal.topic_filter = \"p/#\"\nremote.topic = \"perm-good\"\n";
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, "", entries)).await;
    let c = V3Client::connect(broker.addr, "perm").await;
    for i in 0..10 {
        c.publish("p/1", 1, i.to_string()).await;
    }
    assert_eq!(read(&kafka.bootstrap, "perm-good", 10).await.len(), 10);
    let bad = broker.settled_stats(0, 0).await;
    assert_eq!(
        (
            bad["outcomes"]["delivery_failed"].as_u64(),
            outcome_total(&bad)
        ),
        (Some(10), 10),
        "{bad}"
    );
    let good = broker.settled_stats(0, 1).await;
    assert_eq!(good["outcomes"]["delivered"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_kafka_refuses_as_too_large_fails_once_and_the_next_records_flow() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("sized", 1);
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"z/#\"\nremote.topic = \"sized\"\n";
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, "", entries)).await;
    let c = V3Client::connect(broker.addr, "poison").await;
    c.publish("z/1", 1, "before").await;
    read(&kafka.bootstrap, "sized", 1).await;
    // Kafka answers the next produce request as a real broker answers a record above
    // its message.max.bytes: a permanent error, not retried.
    kafka.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    c.publish("z/1", 1, "x".repeat(5_000)).await;
    broker
        .stats_when(0, "the large record failed", |s| {
            s["outcomes"]["delivery_failed"] == 1
        })
        .await;
    for i in 0..10 {
        c.publish("z/1", 1, i.to_string()).await;
    }
    let recs = read(&kafka.bootstrap, "sized", 11).await;
    assert_eq!(
        texts(&recs[1..]),
        (0..10).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    let s = broker.settled_stats(0, 0).await;
    assert_eq!(
        (
            s["outcomes"]["delivered"].as_u64(),
            s["outcomes"]["delivery_failed"].as_u64(),
            outcome_total(&s)
        ),
        (Some(11), Some(1), 12),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_above_the_producers_message_max_bytes_fails_at_once() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("capped", 1);
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"y/#\"\nremote.topic = \"capped\"\n";
    let config = bridge_config(&kafka.bootstrap, "", entries).replace(
        "\"linger.ms\" = \"1\"",
        "\"linger.ms\" = \"1\"\n\"message.max.bytes\" = \"2000\"",
    );
    let broker = Broker::start(&config).await;
    let c = V3Client::connect(broker.addr, "capped").await;
    c.publish("y/1", 1, "x".repeat(5_000)).await;
    c.publish("y/1", 1, "small").await;
    assert_eq!(texts(&read(&kafka.bootstrap, "capped", 1).await), ["small"]);
    let s = broker.settled_stats(0, 0).await;
    assert_eq!(
        (
            s["outcomes"]["delivered"].as_u64(),
            s["outcomes"]["delivery_failed"].as_u64(),
            outcome_total(&s)
        ),
        (Some(1), Some(1), 2),
        "{s}"
    );
}

const ACK_ENTRY: &str = "[[bridges.entries]]\nlocal.topic_filter = \"ack/#\"\nremote.topic = \"acked\"\nremote.ack_after_delivery = true\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_mode_holds_the_puback_until_kafka_has_the_record() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("acked", 1);
    kafka.broker_down(1);
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, "", ACK_ENTRY)).await;
    let mut c = V3Client::connect(broker.addr, "waiter").await;
    c.publish("ack/1", 1, "held").await;
    assert_eq!(
        c.next_ack(Duration::from_secs(2)).await,
        None,
        "no PUBACK while Kafka is down"
    );
    kafka.broker_up(1);
    assert!(
        c.next_ack(Duration::from_secs(20)).await.is_some(),
        "PUBACK after Kafka acknowledged"
    );
    assert_eq!(
        texts(&read(&kafka.bootstrap, "acked", 1).await),
        ["held"],
        "exactly once"
    );
    assert_eq!(c.disconnects.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_mode_failures_reach_v5_publishers_as_reason_codes() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("acked", 1);
    kafka.broker_down(1);
    let config = bridge_config(&kafka.bootstrap, "max_inflight_messages = 1", ACK_ENTRY)
        .replace("\"30000\"", "\"1500\"");
    let broker = Broker::start(&config).await;
    // A QoS 0 publish (not waited for) takes the only in-flight slot...
    V3Client::connect(broker.addr, "filler")
        .await
        .publish("ack/0", 0, "filler")
        .await;
    broker
        .stats_when(0, "the filler in flight", |s| s["in_flight"] == 1)
        .await;
    // ...so a QoS 1 publish is refused at once with 0x97, quota exceeded.
    let mut v5 = V5Client::connect(broker.addr, "v5").await;
    v5.client
        .publish("ack/1", QoS::AtLeastOnce, false, "no room")
        .await
        .unwrap();
    let (_, reason) = v5.next_ack(Duration::from_secs(5)).await.expect("a PUBACK");
    assert_eq!(reason, 0x97);
    // Once the filler times out (message.timeout.ms), a publish times out too: 0x80.
    broker
        .stats_when(0, "the filler failed", |s| {
            s["outcomes"]["delivery_failed"] == 1
        })
        .await;
    v5.client
        .publish("ack/2", QoS::AtLeastOnce, false, "times out")
        .await
        .unwrap();
    let (_, reason) = v5
        .next_ack(Duration::from_secs(10))
        .await
        .expect("a PUBACK");
    assert_eq!(reason, 0x80);
    let s = broker.settled_stats(0, 0).await;
    assert_eq!(
        (
            s["outcomes"]["dropped_buffer_full"].as_u64(),
            s["outcomes"]["delivery_failed"].as_u64()
        ),
        (Some(1), Some(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_mode_v3_publishers_are_disconnected_and_resend() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("acked", 1);
    kafka.broker_down(1);
    let config = bridge_config(&kafka.bootstrap, "", ACK_ENTRY).replace("\"30000\"", "\"1000\"");
    let broker = Broker::start(&config).await;
    let mut c = V3Client::connect_with(broker.addr, "resender", None, false).await;
    c.publish("ack/1", 1, "persistent").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    kafka.broker_up(1);
    assert!(
        c.next_ack(Duration::from_secs(20)).await.is_some(),
        "acknowledged after a resend"
    );
    assert!(
        c.disconnects.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "the refusal disconnected the v3 client"
    );
    assert_eq!(
        texts(&read(&kafka.bootstrap, "acked", 1).await),
        ["persistent"],
        "exactly once"
    );
    let s = broker.settled_stats(0, 0).await;
    assert!(
        s["outcomes"]["delivery_failed"].as_u64().unwrap() >= 1,
        "{s}"
    );
    assert_eq!(s["outcomes"]["delivered"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_restarted_mid_stream_is_covered_by_publisher_retries() {
    let mut tansu = start_tansu();
    tansu.create_topic("stream", 1);
    // tansu's memory storage forgets producer ids when it restarts, so an idempotent
    // producer cannot resume its sequence there (a real Kafka keeps them): this test
    // runs without idempotence.
    let config = bridge_config(&tansu.bootstrap, "", &ACK_ENTRY.replace("acked", "stream"))
        .replace("\"30000\"", "\"1000\"\n\"enable.idempotence\" = \"false\"");
    let broker = Broker::start(&config).await;
    let mut c = V3Client::connect_with(broker.addr, "streamer", None, false).await;
    let mut acked = 0;
    let mut gap = Vec::new();
    for i in 0..60 {
        if i == 20 {
            tansu.kill();
        }
        if (20..40).contains(&i) {
            gap.push(i.to_string());
        }
        if i == 40 {
            tansu.restart();
            tansu.create_topic("stream", 1);
        }
        c.publish("ack/s", 1, i.to_string()).await;
        if i < 20 {
            acked += usize::from(c.next_ack(Duration::from_secs(10)).await.is_some());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(acked, 20, "acknowledged while tansu was up");
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked < 60 && Instant::now() < deadline {
        acked += usize::from(c.next_ack(Duration::from_secs(1)).await.is_some());
    }
    assert_eq!(acked, 60, "every publish acknowledged in the end");
    assert!(
        c.disconnects.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "refusals made the client resend"
    );
    // tansu's memory storage died with it: the restarted one holds what came after.
    let after = read(&tansu.bootstrap, "stream", 40).await;
    let seen: HashSet<String> = texts(&after).into_iter().collect();
    assert_eq!(seen.len(), after.len(), "no duplicates");
    for g in &gap {
        assert!(
            seen.contains(g),
            "message {g}, published while tansu was down, reached the restarted tansu"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_denied_publishes_are_never_forwarded() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("acl", 1);
    let acl = r#"
disconnect_if_pub_rejected = false
rules = [
    ["allow", { user = "admin", password = "secret", superuser = true }],
    ["deny", "all", "publish", ["secret/#"]],
    ["allow", "all"],
]
"#;
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"#\"\nremote.topic = \"acl\"\n";
    let broker = Broker::start_with_acl(&bridge_config(&kafka.bootstrap, "", entries), acl).await;
    let user = V3Client::connect(broker.addr, "user").await;
    user.publish("secret/plans", 1, "denied").await;
    user.publish("open/news", 1, "allowed").await;
    let admin =
        V3Client::connect_with(broker.addr, "admin-client", Some(("admin", "secret")), true).await;
    admin.publish("secret/plans", 1, "superuser").await;

    let got: HashSet<String> = texts(&read(&kafka.bootstrap, "acl", 2).await)
        .into_iter()
        .collect();
    assert_eq!(
        got,
        HashSet::from(["allowed".to_owned(), "superuser".to_owned()])
    );
    let s = broker.settled_stats(0, 0).await;
    assert_eq!(
        (s["acl_denied"].as_u64(), s["matched"].as_u64()),
        (Some(1), Some(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_flushes_in_flight_records() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("flush", 1);
    kafka.round_trip_time(1, Duration::from_millis(400));
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"s/#\"\nremote.topic = \"flush\"\n";
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, "", entries)).await;
    let c = V3Client::connect(broker.addr, "flusher").await;
    for i in 0..50 {
        c.publish("s/1", 0, i.to_string()).await;
    }
    broker
        .stats_when(0, "50 matched", |s| s["matched"] == 50)
        .await;
    assert!(
        broker.entry_stats(0, 0).await["in_flight"]
            .as_u64()
            .unwrap()
            > 0,
        "records still in flight before stop"
    );
    broker.stop_plugin().await;
    let s = broker.entry_stats(0, 0).await;
    assert_eq!(broker.attrs().await["running"], false);
    assert_eq!(
        (s["outcomes"]["delivered"].as_u64(), s["in_flight"].as_u64()),
        (Some(50), Some(0)),
        "{s}"
    );
    assert_eq!(read(&kafka.bootstrap, "flush", 50).await.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_with_kafka_down_counts_what_could_not_be_delivered() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("lost", 1);
    kafka.broker_down(1);
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"l/#\"\nremote.topic = \"lost\"\n";
    let broker = Broker::start(&bridge_config(
        &kafka.bootstrap,
        "shutdown_timeout = \"1s\"",
        entries,
    ))
    .await;
    let c = V3Client::connect(broker.addr, "doomed").await;
    for i in 0..10 {
        c.publish("l/1", 0, i.to_string()).await;
    }
    broker
        .stats_when(0, "10 in flight", |s| s["in_flight"] == 10)
        .await;
    let started = Instant::now();
    broker.stop_plugin().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by shutdown_timeout"
    );
    let s = broker.entry_stats(0, 0).await;
    assert_eq!(
        (
            s["outcomes"]["delivery_failed"].as_u64(),
            s["in_flight"].as_u64(),
            outcome_total(&s)
        ),
        (Some(10), Some(0), 10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_sent_but_unanswered_at_stop_are_possibly_delivered_not_failed() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("slow", 1);
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"p/#\"\nremote.topic = \"slow\"\n";
    // The ten records must leave in one produce request: with idempotence, librdkafka
    // keeps at most 5 requests per partition in flight, and holds back the rest, which
    // then never leave (delivery_failed, rightly). A 100 ms linger batches them whatever
    // the machine's load.
    let config = bridge_config(&kafka.bootstrap, "shutdown_timeout = \"1s\"", entries)
        .replace("\"linger.ms\" = \"1\"", "\"linger.ms\" = \"100\"");
    let broker = Broker::start(&config).await;
    let c = V3Client::connect(broker.addr, "unanswered").await;
    c.publish("p/1", 0, "warm-up").await;
    read(&kafka.bootstrap, "slow", 1).await;
    // Kafka takes the produce requests but answers only after the stop has given up.
    kafka.round_trip_time(1, Duration::from_secs(20));
    for i in 0..10 {
        c.publish("p/1", 0, i.to_string()).await;
    }
    broker
        .stats_when(0, "10 in flight", |s| s["in_flight"] == 10)
        .await;
    // Let librdkafka send them: the linger, with room to spare.
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.stop_plugin().await;
    let s = broker.entry_stats(0, 0).await;
    assert_eq!(
        (
            s["outcomes"]["possibly_delivered"].as_u64(),
            s["outcomes"]["delivery_failed"].as_u64(),
            s["in_flight"].as_u64(),
            outcome_total(&s)
        ),
        (Some(10), Some(0), Some(0), 11),
        "{s}"
    );
    // They were in Kafka after all: "possibly" was the honest answer.
    kafka.round_trip_time(1, Duration::ZERO);
    assert_eq!(read(&kafka.bootstrap, "slow", 11).await.len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ack_mode_a_dropped_record_does_not_refuse_the_publish() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("full", 1);
    kafka.broker_down(1);
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"n/#\"\nremote.topic = \"full\"\n";
    let broker = Broker::start(&bridge_config(
        &kafka.bootstrap,
        "max_inflight_messages = 1",
        entries,
    ))
    .await;
    let mut c = V3Client::connect(broker.addr, "plain-qos1").await;
    c.publish("n/1", 1, "in flight").await;
    c.publish("n/1", 1, "dropped").await;
    assert!(c.next_ack(Duration::from_secs(5)).await.is_some());
    assert!(
        c.next_ack(Duration::from_secs(5)).await.is_some(),
        "acknowledged although its record was dropped"
    );
    assert_eq!(c.disconnects.load(std::sync::atomic::Ordering::Relaxed), 0);
    let s = broker.entry_stats(0, 0).await;
    assert_eq!(
        (
            s["matched"].as_u64(),
            s["outcomes"]["dropped_buffer_full"].as_u64()
        ),
        (Some(2), Some(1)),
        "{s}"
    );
}
