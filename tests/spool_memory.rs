//! The disk spool through a hung Kafka: publishers go on, records pile up on disk, not
//! in memory, and none is lost or doubled. Its own test binary: the memory it watches
//! is the process's, which tests running beside it in one binary would grow too.

use std::time::{Duration, Instant};

use bridge_testkit::load::{exactly_once_in_turn, seqs, KeyedLoad};
use bridge_testkit::procs::start_tansu;
use bridge_testkit::*;

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
    let keys = format!(
        "max_inflight_messages = 2000\n{}",
        disk_buffer(dir.path(), "")
    );
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
