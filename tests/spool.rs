//! The disk spool (`buffer.mode = "disk"`), against real parts: records wait on disk
//! through a hung Kafka and across a restart, a full spool honours `queue_timeout`, a
//! torn tail or a corrupt segment does not stop the start, a record Kafka refuses for
//! good does not block the ones behind it, and the spool is on `/metrics`. `kill -9` is
//! in rmqttd's process tests.

use std::path::Path;
use std::time::{Duration, Instant};

use bridge_testkit::http::{request, sample};
use bridge_testkit::load::{exactly_once_in_turn, seqs, KeyedLoad};
use bridge_testkit::procs::{free_port, start_tansu};
use bridge_testkit::*;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rmqtt_bridge_egress_kafka::PLUGIN_NAME;

/// The bridge keys of a disk-mode bridge spooling under `dir`; `extra` adds buffer keys.
fn disk(dir: &Path, extra: &str) -> String {
    format!(
        "buffer = {{ mode = \"disk\", dir = \"{}\"{extra} }}",
        dir.display()
    )
}

fn entry(filter: &str, topic: &str) -> String {
    format!("[[bridges.entries]]\nlocal.topic_filter = \"{filter}\"\nremote.topic = \"{topic}\"\n")
}

fn texts(recs: &[Record]) -> Vec<String> {
    recs.iter().map(Record::payload_str).collect()
}

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_kafka_fills_the_disk_not_memory_and_loses_or_duplicates_nothing() {
    let tansu = start_tansu();
    tansu.create_topic("hung", 4);
    let dir = tempfile::tempdir().unwrap();
    let keys = format!("max_inflight_messages = 2000\n{}", disk(dir.path(), ""));
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"load/+\"\nremote.topic = \"hung\"\nremote.key = \"${local.topic}\"\n";
    let broker = Broker::start(&bridge_config(&tansu.bootstrap, &keys, entries)).await;
    let load = KeyedLoad::start(broker.addr);
    load.run_for(500).await;
    tansu.pause();
    let rss_before = rss_mib();
    let paused_at = Instant::now();
    // Publishers keep going: their PUBACKs wait for the disk, not for Kafka.
    load.run_for(2_000).await;
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(paused_at.elapsed())).await;
    let spooled = broker
        .spool_when("records on disk", |s| s["records"].as_u64() > Some(0))
        .await;
    let rss_after = rss_mib();
    tansu.resume();
    let sent = load.finish_after(500).await;
    let total: u64 = sent.iter().sum();
    let recs = read(&tansu.bootstrap, "hung", total as usize).await;
    exactly_once_in_turn(&sent, &[&seqs(&recs)]);
    assert!(
        spooled["records"].as_u64().unwrap() > 4_000,
        "the hang piled records on disk: {spooled}"
    );
    assert!(
        rss_after < rss_before + 48,
        "memory stayed flat while the spool grew: {rss_before} MiB, then {rss_after} MiB with {spooled}"
    );
    let s = broker
        .spool_when("an empty spool", |s| s["records"] == 0)
        .await;
    assert_eq!(s["redelivered"], 0);
    eprintln!(
        "hung 30 s: {total} messages, spool at the end of the hang {spooled}, RSS {rss_before} -> {rss_after} MiB"
    );
    let stats = broker.settled_stats(0, 0).await;
    assert_eq!(
        stats["outcomes"]["delivered"].as_u64(),
        Some(total),
        "{stats}"
    );
    assert_eq!(outcome_total(&stats), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_spooled_while_kafka_is_down_are_delivered_after_a_restart() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("later", 1);
    kafka.broker_down(1);
    let dir = tempfile::tempdir().unwrap();
    let keys = format!("shutdown_timeout = \"1s\"\n{}", disk(dir.path(), ""));
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
async fn a_full_spool_waits_queue_timeout_then_counts_what_it_drops() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("full", 1);
    kafka.broker_down(1);
    let dir = tempfile::tempdir().unwrap();
    let keys = disk(dir.path(), ", max_bytes = \"1MiB\"");
    let entries = format!("{}remote.queue_timeout = \"700ms\"\n", entry("f/#", "full"));
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, &keys, &entries)).await;
    let mut c = V3Client::connect(broker.addr, "filler").await;
    let payload = "x".repeat(4096);
    // One at a time until the spool is full: the publish that finds it full waits
    // queue_timeout for room (none comes: Kafka is down), then its record is dropped.
    let mut n = 0;
    let waited = loop {
        let started = Instant::now();
        c.publish("f/1", 1, payload.clone()).await;
        c.next_ack(Duration::from_secs(30)).await.expect("a PUBACK");
        n += 1;
        let stats = broker.entry_stats(0, 0).await;
        if stats["outcomes"]["dropped_buffer_full"] == 1 {
            break started.elapsed();
        }
        assert!(n < 1_000, "the spool never filled: {stats}");
    };
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
    let keys = format!("shutdown_timeout = \"1s\"\n{}", disk(dir.path(), ""));
    let config = bridge_config(&kafka.bootstrap, &keys, &entry("t/#", "torn"));
    leave_records(&kafka, &config, 30).await;
    // A crash in the middle of a write: the last frame's first bytes only.
    let segment = only_segment(&dir.path().join("b1"));
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
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
    let keys = format!("shutdown_timeout = \"1s\"\n{}", disk(dir.path(), ""));
    let config = bridge_config(&kafka.bootstrap, &keys, &entry("t/#", "corrupt"));
    leave_records(&kafka, &config, 30).await;
    let spool = dir.path().join("b1");
    let segment = only_segment(&spool);
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
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
        &disk(dir.path(), ""),
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
        &disk(dir.path(), ""),
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
        &disk(dir.path(), ""),
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
        &disk(dir.path(), ""),
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
