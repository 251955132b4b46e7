//! The disk spool through `kill -9`, at `remote.ack = "written"` and `"synced"`: rmqttd
//! as a process, publishers that send one QoS 1 message at a time and resend what was
//! not acknowledged (rumqttc does, after it reconnects), and a tansu. After the restart,
//! every acknowledged message is in Kafka at least once, each key's first copies are in
//! order, and the duplicates are bounded by what the spool counted as possibly
//! redelivered plus one resend per publisher.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_testkit::http::request;
use bridge_testkit::procs::{free_port, signal, start_tansu, wait_exit, Tansu};
use bridge_testkit::rmqttd::{read_back, Site};
use bridge_testkit::V3Client;
use serde_json::Value;

const RMQTTD: &str = env!("CARGO_BIN_EXE_rmqttd");
const PUBLISHERS: usize = 4;

fn config(tansu: &Tansu, http: u16, level: &str) -> String {
    format!(
        "http_laddr = \"127.0.0.1:{http}\"\n[[bridges]]\nname = \"b1\"\nservers = \"{}\"\nclient_id_prefix = \"s\"\nbuffer = {{ mode = \"disk\", dir = \"spool\" }}\n[bridges.properties]\n\"linger.ms\" = \"5\"\n[[bridges.entries]]\nlocal.topic_filter = \"t/#\"\nremote.topic = \"spooled\"\nremote.key = \"${{local.topic}}\"\nremote.ack = \"{level}\"\n",
        tansu.bootstrap
    )
}

/// Publishes `t/p<n>` messages numbered from 0, one at a time, each waiting for its
/// PUBACK (through a crash and restart of the broker) until `stop`. Returns the numbers
/// acknowledged.
async fn publish_until(site_port: u16, n: usize, stop: Arc<AtomicBool>) -> Vec<usize> {
    let addr = ([127, 0, 0, 1], site_port).into();
    let mut c = V3Client::connect(addr, &format!("p{n}")).await;
    let mut acked = Vec::new();
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        c.publish(&format!("t/p{n}"), 1, seq.to_string()).await;
        let ack = c.next_ack(Duration::from_secs(60)).await;
        assert!(ack.is_some(), "p{n}: message {seq} never acknowledged");
        acked.push(seq);
        seq += 1;
    }
    acked
}

/// The spool's status from the plugin's endpoint.
fn spool_status(http: u16) -> Value {
    let r = request(http, "GET", "/status");
    let doc: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    doc["bridges"][0]["spool"].clone()
}

#[test]
fn kill_9_mid_stream_loses_no_message_acknowledged_as_written() {
    kill_9_mid_stream_loses_no_acknowledged_message("written");
}

#[test]
fn kill_9_mid_stream_loses_no_message_acknowledged_as_synced() {
    kill_9_mid_stream_loses_no_acknowledged_message("synced");
}

fn kill_9_mid_stream_loses_no_acknowledged_message(level: &str) {
    let tansu = start_tansu();
    tansu.create_topic("spooled", 1);
    let http = free_port();
    let site = Site::new(RMQTTD, &config(&tansu, http, level));
    let first = site.start();
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut killed = first;
    let (acked, _second) = runtime.block_on(async {
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|n| tokio::spawn(publish_until(site.port, n, stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        signal(killed.0.id(), "KILL");
        wait_exit(&mut killed.0, Duration::from_secs(10), "the killed rmqttd");
        let second = site.start();
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, Ordering::Relaxed);
        let mut acked = Vec::new();
        for p in publishers {
            acked.push(p.await.unwrap());
        }
        (acked, second)
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let spool = loop {
        let s = spool_status(http);
        if s["records"] == 0 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(spool["records"], 0, "the spool drained: {spool}");
    let total: usize = acked.iter().map(Vec::len).sum();
    let recs = read_back(&tansu.bootstrap, "spooled", total);
    let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for r in &recs {
        let key = r.key_str().unwrap();
        by_key
            .entry(key)
            .or_default()
            .push(r.payload_str().parse().unwrap());
    }
    let mut duplicates = 0;
    for (n, sent) in acked.iter().enumerate() {
        let got = by_key.remove(&format!("t/p{n}")).unwrap_or_default();
        let mut first: Vec<usize> = Vec::new();
        for s in &got {
            if first.contains(s) {
                duplicates += 1;
            } else {
                first.push(*s);
            }
        }
        let missing: Vec<_> = sent.iter().filter(|s| !first.contains(s)).collect();
        assert!(
            missing.is_empty(),
            "p{n}: acknowledged but not in Kafka: {missing:?}"
        );
        assert!(
            first.windows(2).all(|w| w[0] < w[1]),
            "p{n}: order of first copies"
        );
    }
    let redelivered = spool["redelivered"].as_u64().unwrap() as usize;
    assert!(
        duplicates <= redelivered + PUBLISHERS,
        "{duplicates} duplicates, {redelivered} redelivered: {spool}"
    );
    assert!(
        total > 100,
        "the load ran on both sides of the crash: {total}"
    );
    eprintln!(
        "kill -9 at \"{level}\": {total} acknowledged, {} records in Kafka, {duplicates} duplicates, spool after restart {spool}",
        recs.len()
    );
}
