//! The disk spool (`buffer.mode = "disk"`), against real parts: records wait on disk
//! across a restart, a full spool honours `queue_timeout` and refuses what it cannot write, a torn tail or a corrupt
//! segment does not stop the start, a record Kafka refuses for good does not block the
//! ones behind it, and the spool is on `/metrics`. A hung Kafka is in `spool_memory.rs`,
//! `kill -9` in rmqttd's process tests.

use std::path::Path;
use std::time::{Duration, Instant};

use bridge_testkit::http::{request, sample};
use bridge_testkit::procs::free_port;
use bridge_testkit::*;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rmqtt_bridge_egress_kafka::PLUGIN_NAME;

fn entry(filter: &str, topic: &str) -> String {
    format!("[[bridges.entries]]\nlocal.topic_filter = \"{filter}\"\nremote.topic = \"{topic}\"\n")
}

fn texts(recs: &[Record]) -> Vec<String> {
    recs.iter().map(Record::payload_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_spooled_while_kafka_is_down_are_delivered_after_a_restart() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("later", 1);
    kafka.broker_down(1);
    let dir = tempfile::tempdir().unwrap();
    // Room for 10 records in flight: the pump hands 10 to librdkafka, 90 stay behind.
    let keys = format!(
        "shutdown_timeout = \"1s\"\nmax_inflight_messages = 10\n{}",
        disk_buffer(dir.path(), "")
    );
    let config = bridge_config(&kafka.bootstrap, &keys, &entry("r/#", "later"));
    let first = Broker::start(&config).await;
    let mut c = V3Client::connect(first.addr, "early").await;
    for i in 0..100 {
        c.publish("r/1", 1, i.to_string()).await;
    }
    for _ in 0..100 {
        let ack = c.next_ack(Duration::from_secs(10)).await;
        assert!(ack.is_some(), "acknowledged once on disk, with Kafka down");
    }
    first
        .stats_when(0, "the bound full", |s| s["produced"] == 10)
        .await;
    // Stopped with 10 records purged unsent and 90 the pump never handed over: none of
    // them may count as possibly in Kafka at the restart.
    first.stop_plugin().await;
    let left = first.attrs().await["bridges"][0]["spool"].clone();
    assert_eq!(left["records"], 100, "{left}");
    drop(first);

    kafka.broker_up(1);
    let second = Broker::start(&config).await;
    let s = second
        .spool_when("the replay delivered", |s| s["records"] == 0)
        .await;
    assert_eq!(
        (s["replayed"].as_u64(), s["redelivered"].as_u64()),
        (Some(100), Some(0)),
        "{s}"
    );
    let recs = read(&kafka.bootstrap, "later", 100).await;
    assert_eq!(
        texts(&recs),
        (0..100).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    let stats = second.settled_stats(0, 0).await;
    assert_eq!(stats["outcomes"]["delivered"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_purged_from_producers_a_reload_replaced_are_sent_in_the_same_run() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("again", 1);
    kafka.broker_down(1);
    let dir = tempfile::tempdir().unwrap();
    let keys = format!(
        "shutdown_timeout = \"500ms\"\nmax_inflight_messages = 20\n{}",
        disk_buffer(dir.path(), "")
    );
    let entries = format!("{}remote.key = \"k\"\n", entry("a/#", "again"));
    let config = bridge_config(&kafka.bootstrap, &keys, &entries);
    let broker = Broker::start(&config).await;
    let mut c = V3Client::connect(broker.addr, "reloaded").await;
    for i in 0..60 {
        c.publish("a/1", 1, i.to_string()).await;
    }
    for _ in 0..60 {
        c.next_ack(Duration::from_secs(10)).await.expect("a PUBACK");
    }
    broker
        .stats_when(0, "the bound full", |s| s["produced"] == 20)
        .await;
    // A new librdkafka setting replaces the producers, which purge their 20 records.
    let replaced = config.replace("\"linger.ms\" = \"1\"", "\"linger.ms\" = \"2\"");
    broker.reload(&replaced).await.unwrap();
    broker
        .spool_when("the purged records requeued", |s| s["requeued"] == 20)
        .await;
    kafka.broker_up(1);
    let s = broker
        .spool_when("every record delivered in this run", |s| s["records"] == 0)
        .await;
    assert_eq!(
        (s["kept"].as_u64(), s["requeued"].as_u64()),
        (Some(0), Some(20)),
        "{s}"
    );
    let recs = read(&kafka.bootstrap, "again", 60).await;
    assert_eq!(
        texts(&recs),
        (0..60).map(|i| i.to_string()).collect::<Vec<_>>(),
        "each once, in order"
    );
    let stats = broker.settled_stats(0, 0).await;
    assert_eq!(
        (
            stats["produced"].as_u64(),
            stats["outcomes"]["delivered"].as_u64()
        ),
        (Some(60), Some(60)),
        "counted once each: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_waits_queue_timeout_then_refuses_and_counts_what_it_drops() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("full", 1);
    kafka.broker_down(1);
    let dir = tempfile::tempdir().unwrap();
    let keys = disk_buffer(dir.path(), ", max_bytes = \"1MiB\"");
    let entries = format!("{}remote.queue_timeout = \"700ms\"\n", entry("f/#", "full"));
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, &keys, &entries)).await;
    let mut c = V5Client::connect(broker.addr, "filler").await;
    let payload = "x".repeat(4096);
    // One at a time until the spool is full: the publish that finds it full waits
    // queue_timeout for room (none comes: Kafka is down), then its record is dropped
    // and, since "written" promises the record is in the spool, the publish refused.
    let mut n = 0;
    let waited = loop {
        let started = Instant::now();
        c.client
            .publish(
                "f/1",
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                payload.clone(),
            )
            .await
            .unwrap();
        let (_, code) = c.next_ack(Duration::from_secs(30)).await.expect("a PUBACK");
        n += 1;
        if code != 0 {
            assert_eq!(code, 0x97, "quota exceeded");
            break started.elapsed();
        }
        assert!(n < 1_000, "the spool never filled");
    };
    assert_eq!(
        broker.entry_stats(0, 0).await["outcomes"]["dropped_buffer_full"],
        1
    );
    assert!(
        waited >= Duration::from_millis(700),
        "the drop waited queue_timeout: {waited:?}"
    );
    let dropped = 1;
    kafka.broker_up(1);
    broker
        .spool_when("an empty spool", |s| s["records"] == 0)
        .await;
    let stats = broker.settled_stats(0, 0).await;
    assert_eq!(
        stats["outcomes"]["delivered"].as_u64().unwrap() + dropped,
        n,
        "every publish counted once: {stats}"
    );
}

/// Runs a broker that spools `n` records while Kafka is down, and stops it.
async fn leave_records(kafka: &MockKafka, config: &str, n: usize) {
    kafka.broker_down(1);
    let broker = Broker::start(config).await;
    let mut c = V3Client::connect(broker.addr, "leaver").await;
    for i in 0..n {
        c.publish("t/1", 1, i.to_string()).await;
    }
    for _ in 0..n {
        c.next_ack(Duration::from_secs(10)).await.expect("a PUBACK");
    }
    broker.stop_plugin().await;
    kafka.broker_up(1);
}

/// Where the frames written into a segment end: segment files are allocated ahead and
/// read as zeros past that (each frame starts with its length, then its checksum).
fn data_end(bytes: &[u8]) -> usize {
    let mut at = 0;
    while at + 8 <= bytes.len() && bytes[at..at + 8] != [0; 8] {
        at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    at
}

fn only_segment(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    logs.pop().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_off_counted_and_the_rest_replayed() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("torn", 1);
    let dir = tempfile::tempdir().unwrap();
    let keys = format!("shutdown_timeout = \"1s\"\n{}", disk_buffer(dir.path(), ""));
    let config = bridge_config(&kafka.bootstrap, &keys, &entry("t/#", "torn"));
    leave_records(&kafka, &config, 30).await;
    // A crash in the middle of a write: the last frame's first bytes only.
    let segment = only_segment(&dir.path().join("b1"));
    let mut bytes = std::fs::read(&segment).unwrap();
    let end = data_end(&bytes);
    bytes[end..end + 7].copy_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&segment, bytes).unwrap();
    let broker = Broker::start(&config).await;
    let s = broker
        .spool_when("the replay delivered", |s| s["records"] == 0)
        .await;
    assert_eq!(
        (s["torn_bytes"].as_u64(), s["replayed"].as_u64()),
        (Some(7), Some(30)),
        "{s}"
    );
    let recs = read(&kafka.bootstrap, "torn", 30).await;
    assert_eq!(
        texts(&recs),
        (0..30).map(|i| i.to_string()).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_segment_is_moved_aside_and_the_broker_still_starts() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("corrupt", 1);
    let dir = tempfile::tempdir().unwrap();
    let keys = format!("shutdown_timeout = \"1s\"\n{}", disk_buffer(dir.path(), ""));
    let config = bridge_config(&kafka.bootstrap, &keys, &entry("t/#", "corrupt"));
    leave_records(&kafka, &config, 30).await;
    let spool = dir.path().join("b1");
    let segment = only_segment(&spool);
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = data_end(&bytes) / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();
    // A later segment, so that the damage is not a torn tail.
    std::fs::write(spool.join(format!("{:020}.log", 1_000_000)), b"").unwrap();
    let broker = Broker::start(&config).await;
    let s = broker
        .spool_when("the replay delivered", |s| s["records"] == 0)
        .await;
    assert_eq!(s["corrupt_segments"], 1, "{s}");
    let kept = s["replayed"].as_u64().unwrap() as usize;
    assert!(
        (1..30).contains(&kept),
        "the records before the damage: {s}"
    );
    let recs = read(&kafka.bootstrap, "corrupt", kept).await;
    assert_eq!(
        texts(&recs),
        (0..kept).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    assert!(segment.with_extension("corrupt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_kafka_refuses_for_good_leaves_the_spool_and_the_rest_flow() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("poison", 1);
    let dir = tempfile::tempdir().unwrap();
    let config = bridge_config(
        &kafka.bootstrap,
        &disk_buffer(dir.path(), ""),
        &entry("p/#", "poison"),
    );
    let broker = Broker::start(&config).await;
    let c = V3Client::connect(broker.addr, "poisoner").await;
    c.publish("p/1", 1, "before").await;
    read(&kafka.bootstrap, "poison", 1).await;
    kafka.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    c.publish("p/1", 1, "x".repeat(5_000)).await;
    broker
        .stats_when(0, "the large record failed", |s| {
            s["outcomes"]["delivery_failed"] == 1
        })
        .await;
    for i in 0..10 {
        c.publish("p/1", 1, i.to_string()).await;
    }
    let recs = read(&kafka.bootstrap, "poison", 11).await;
    assert_eq!(
        texts(&recs[1..]),
        (0..10).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    broker
        .spool_when("an empty spool", |s| s["records"] == 0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_mode_on_disk_acknowledges_once_kafka_has_the_record() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("acked", 1);
    kafka.broker_down(1);
    let dir = tempfile::tempdir().unwrap();
    let entries = format!(
        "{}remote.ack_after_delivery = true\n",
        entry("a/#", "acked")
    );
    let broker = Broker::start(&bridge_config(
        &kafka.bootstrap,
        &disk_buffer(dir.path(), ""),
        &entries,
    ))
    .await;
    let mut c = V3Client::connect(broker.addr, "waiter").await;
    c.publish("a/1", 1, "held").await;
    assert!(
        c.next_ack(Duration::from_secs(2)).await.is_none(),
        "no PUBACK while Kafka is down, although the record is on disk"
    );
    kafka.broker_up(1);
    assert!(c.next_ack(Duration::from_secs(20)).await.is_some());
    assert_eq!(texts(&read(&kafka.bootstrap, "acked", 1).await), ["held"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_directory_in_use_refuses_the_second_broker() {
    let kafka = MockKafka::start(1);
    let dir = tempfile::tempdir().unwrap();
    let config = bridge_config(
        &kafka.bootstrap,
        &disk_buffer(dir.path(), ""),
        &entry("u/#", "used"),
    );
    let _first = Broker::start(&config).await;
    let second = Broker::builder()
        .config(PLUGIN_NAME, config.as_str())
        .register_bridge()
        .start()
        .await;
    let err = format!("{:#}", second.err().expect("the second start is refused"));
    assert!(
        err.contains("field `buffer.dir`") && err.contains("in use"),
        "names the field and the cause: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spool_is_on_metrics() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("seen", 1);
    kafka.broker_down(1);
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let bridge = bridge_config(
        &kafka.bootstrap,
        &disk_buffer(dir.path(), ""),
        &entry("m/#", "seen"),
    );
    let broker = Broker::start(&format!("http_laddr = \"127.0.0.1:{http}\"\n{bridge}")).await;
    let mut c = V3Client::connect(broker.addr, "metered").await;
    for i in 0..5 {
        c.publish("m/1", 1, i.to_string()).await;
    }
    for _ in 0..5 {
        c.next_ack(Duration::from_secs(10)).await.expect("a PUBACK");
    }
    let m = tokio::task::spawn_blocking(move || request(http, "GET", "/metrics"))
        .await
        .unwrap();
    let b = "bridge=\"b1\"";
    assert_eq!(sample(&m.body, "spool_records", b), 5.0);
    assert!(sample(&m.body, "spool_bytes", b) > 0.0);
    assert_eq!(sample(&m.body, "spool_bytes_limit", b), (1u64 << 30) as f64);
    assert!(sample(&m.body, "spool_oldest_record_age_seconds", b) >= 0.0);
    for counter in [
        "spool_replayed_total",
        "spool_redelivered_total",
        "spool_kept_total",
        "spool_torn_bytes_total",
        "spool_corrupt_segments_total",
    ] {
        assert_eq!(sample(&m.body, counter, b), 0.0, "{counter}");
    }
}
