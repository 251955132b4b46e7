//! Reloading the configuration while it runs, under a steady load: 4 publishers, QoS 1,
//! keyed by publisher, the reload in the middle. Every published message is in Kafka
//! exactly once, each key's records keep their order, and the switch is clean: for
//! every publisher, the old configuration handled a prefix of its messages and the new
//! one the rest. Real broker, real clients, librdkafka's mock cluster.

use std::time::Duration;

use bridge_testkit::load::{exactly_once_in_turn, seqs, KeyedLoad};
use bridge_testkit::*;
use rumqttc::v5::mqttbytes::QoS;

/// Messages per publisher before a reload, and after it (about 0.8 s of load).
const STRETCH: u64 = 800;

/// Every record of `topic` (what arrives within a few seconds).
async fn read_all(bootstrap: &str, topic: &str) -> Vec<Record> {
    let (b, t) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        read_topic(&b, &t, usize::MAX, Duration::from_secs(3), Duration::ZERO)
    })
    .await
    .unwrap()
}

fn entry(filter: &str, topic: &str, extra: &str) -> String {
    format!("[[bridges.entries]]\nlocal.topic_filter = \"{filter}\"\nremote.topic = \"{topic}\"\nremote.key = \"${{clientid}}\"\n{extra}\n")
}

fn config(bootstrap: &str, entries: &str) -> String {
    bridge_config(bootstrap, "concurrent_client_limit = 2", entries)
}

fn kafka_with(topics: &[&str]) -> MockKafka {
    let kafka = MockKafka::start(1);
    for t in topics {
        kafka.create_topic(t, 4);
    }
    kafka
}

/// The entry's counters carried on across the reload: one outcome per message.
async fn counted_once(broker: &Broker, sent: &[u64]) {
    let s = broker.settled_stats(0, 0).await;
    let total: u64 = sent.iter().sum();
    assert_eq!(s["matched"], total, "{s}");
    assert_eq!(s["outcomes"]["delivered"], total, "{s}");
    assert_eq!(outcome_total(&s), total, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_module_version_takes_over_between_two_publishes() {
    let kafka = kafka_with(&["out", "out-v2"]);
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("m.wasm");
    std::fs::copy(example_module("key-headers"), &module).unwrap();
    let transform = |config: &str| {
        format!(
            "transform.module = \"{}\"\ntransform.config = {{ {config} }}",
            module.display()
        )
    };
    let v1 = config(
        &kafka.bootstrap,
        &entry("load/+", "out", &transform("topic_headers = \"v1:0\"")),
    );
    let broker = Broker::start(&v1).await;
    let load = KeyedLoad::start(broker.addr);
    load.run_for(STRETCH).await;
    // Version 2 is other code under the same path: the router, to its own topic.
    std::fs::copy(example_module("router"), &module).unwrap();
    let v2 = v1.replace("topic_headers = \"v1:0\"", "telemetry_topic = \"out-v2\"");
    broker.reload(&v2).await.unwrap();
    let sent = load.finish_after(STRETCH).await;

    let old = read_all(&kafka.bootstrap, "out").await;
    let new = read_all(&kafka.bootstrap, "out-v2").await;
    assert!(
        old.iter()
            .all(|r| r.header("v1").as_deref() == Some("load")),
        "v1 stamps"
    );
    assert!(
        new.iter().all(|r| !r.has_header("v1")),
        "no v1 after the switch"
    );
    exactly_once_in_turn(&sent, &[&seqs(&old), &seqs(&new)]);
    counted_once(&broker, &sent).await;
    let pool = &broker.attrs().await["bridges"][0]["entries"][0]["transform"];
    assert!(
        pool["module"].as_str().unwrap().ends_with("m.wasm"),
        "{pool}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_remote_topic_splits_the_stream_cleanly() {
    let kafka = kafka_with(&["a", "b"]);
    let before = config(&kafka.bootstrap, &entry("load/+", "a", ""));
    let broker = Broker::start(&before).await;
    let clients = broker.attrs().await["bridges"][0]["entries"][0]["client_ids"].clone();
    let load = KeyedLoad::start(broker.addr);
    load.run_for(STRETCH).await;
    broker
        .reload(&before.replace("remote.topic = \"a\"", "remote.topic = \"b\""))
        .await
        .unwrap();
    let sent = load.finish_after(STRETCH).await;

    let a = read_all(&kafka.bootstrap, "a").await;
    let b = read_all(&kafka.bootstrap, "b").await;
    exactly_once_in_turn(&sent, &[&seqs(&a), &seqs(&b)]);
    counted_once(&broker, &sent).await;
    let entry = broker.attrs().await["bridges"][0]["entries"][0].clone();
    assert_eq!(
        entry["client_ids"], clients,
        "the bridge kept its producers"
    );
    // The kept producers learned b's partitions before its first keyed record.
    let partitions = &entry["partitions"];
    assert_eq!(
        (&partitions["topic"], &partitions["keyed_records"]),
        (&"b".into(), &"by_partition".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_servers_get_new_producers_and_nothing_is_lost_in_the_switch() {
    let first = kafka_with(&["out"]);
    let second = kafka_with(&["out"]);
    let before = config(&first.bootstrap, &entry("load/+", "out", ""));
    let broker = Broker::start(&before).await;
    let load = KeyedLoad::start(broker.addr);
    load.run_for(STRETCH).await;
    let after = before.replace(&first.bootstrap, &second.bootstrap);
    broker.reload(&after).await.unwrap();
    let sent = load.finish_after(STRETCH).await;

    let old = read_all(&first.bootstrap, "out").await;
    let new = read_all(&second.bootstrap, "out").await;
    // The new producers sent only once the old ones had drained: a clean cut per key.
    exactly_once_in_turn(&sent, &[&seqs(&old), &seqs(&new)]);
    counted_once(&broker, &sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_is_refused_and_the_old_configuration_carries_on() {
    let kafka = kafka_with(&["out"]);
    let good = config(
        &kafka.bootstrap,
        &entry(
            "load/+",
            "out",
            &format!(
                "transform.module = \"{}\"",
                example_module("key-headers").display()
            ),
        ),
    );
    let broker = Broker::start(&good).await;
    let load = KeyedLoad::start(broker.addr);
    load.run_for(STRETCH).await;
    let missing = "/nonexistent/m.wasm";
    let broken = [
        (
            good.replace("remote.topic =", "remote.topik ="),
            "field `remote.topik`",
        ),
        (
            good.replace(
                &example_module("key-headers").display().to_string(),
                missing,
            ),
            "field `transform.module`: cannot read module /nonexistent/m.wasm",
        ),
        (
            format!("{good}transform.config = {{ topic_headers = \"nonsense\" }}\n"),
            "field `transform.module`",
        ),
    ];
    for (file, expect) in &broken {
        let err = format!("{:#}", broker.reload(file).await.expect_err("refused"));
        assert!(
            err.contains("bridge \"b1\", entry 0") && err.contains(expect),
            "{err}"
        );
    }
    let sent = load.finish_after(STRETCH).await;

    let recs = read_all(&kafka.bootstrap, "out").await;
    let by_key = seqs(&recs);
    for (p, &n) in sent.iter().enumerate() {
        assert_eq!(by_key[&format!("p{p}")], (0..n).collect::<Vec<_>>());
    }
    counted_once(&broker, &sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_added_then_one_removed() {
    let kafka = kafka_with(&["one", "two"]);
    let one = config(&kafka.bootstrap, &entry("load/+", "one", ""));
    let two = config(&kafka.bootstrap, &entry("load/+", "two", ""))
        .replace("name = \"b1\"", "name = \"b2\"");
    let broker = Broker::start(&one).await;
    let load = KeyedLoad::start(broker.addr);
    load.run_for(STRETCH).await;
    broker.reload(&format!("{one}\n{two}")).await.unwrap();
    load.run_for(STRETCH).await;
    broker.reload(&two).await.unwrap();
    let sent = load.finish_after(STRETCH).await;

    let one = seqs(&read_all(&kafka.bootstrap, "one").await);
    let two = seqs(&read_all(&kafka.bootstrap, "two").await);
    for (p, &n) in sent.iter().enumerate() {
        let key = format!("p{p}");
        let (a, b) = (&one[&key], &two[&key]);
        // "one" ran from the start until its removal, "two" from its addition on.
        assert_eq!(*a, (0..a.len() as u64).collect::<Vec<_>>(), "{key} in one");
        let first = n - b.len() as u64;
        assert_eq!(*b, (first..n).collect::<Vec<_>>(), "{key} in two");
        assert!(first <= a.len() as u64, "{key}: no gap between the two");
    }
    let attrs = broker.attrs().await;
    assert_eq!(attrs["bridges"].as_array().unwrap().len(), 1, "{attrs}");
    assert_eq!(attrs["bridges"][0]["name"], "b2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_mode_publishes_waiting_during_a_reload_get_their_puback() {
    let kafka = kafka_with(&["a", "b"]);
    // Slow acknowledgements: many publishes wait for Kafka while the reload happens.
    kafka.round_trip_time(1, Duration::from_millis(300));
    let before = config(
        &kafka.bootstrap,
        &entry("load/+", "a", "remote.ack_after_delivery = true"),
    );
    let broker = Broker::start(&before).await;
    let load = KeyedLoad::start(broker.addr);
    load.run_for(STRETCH).await;
    let after = before.replace("remote.topic = \"a\"", "remote.topic = \"b\"");
    broker.reload(&after).await.unwrap();
    kafka.round_trip_time(1, Duration::ZERO);
    // Every publisher got all its PUBACKs, none was disconnected (a refusal would).
    let sent = load.finish_after(STRETCH).await;

    let a = read_all(&kafka.bootstrap, "a").await;
    let b = read_all(&kafka.bootstrap, "b").await;
    exactly_once_in_turn(&sent, &[&seqs(&a), &seqs(&b)]);
    counted_once(&broker, &sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_producers_are_replaced_in_order_when_the_entries_change() {
    let kafka = kafka_with(&["a", "z"]);
    let shared = "concurrent_client_limit = 2\nproducer_pool = \"bridge\"";
    let before = bridge_config(&kafka.bootstrap, shared, &entry("load/+", "a", ""));
    let broker = Broker::start(&before).await;
    let ids = broker.attrs().await["bridges"][0]["entries"][0]["client_ids"].clone();
    let load = KeyedLoad::start(broker.addr);
    load.run_for(STRETCH).await;
    // Another entry: the bridge's shared producers are created anew for both.
    let after = format!("{before}{}", entry("other/#", "z", ""));
    let answer = broker.reload(&after).await;
    answer.unwrap();
    let sent = load.finish_after(STRETCH).await;

    let by_key = seqs(&read_all(&kafka.bootstrap, "a").await);
    for (p, &n) in sent.iter().enumerate() {
        let key = format!("p{p}");
        assert_eq!(
            by_key[&key],
            (0..n).collect::<Vec<_>>(),
            "{key}: once each, in order"
        );
    }
    counted_once(&broker, &sent).await;
    let attrs = broker.attrs().await;
    assert_eq!(
        attrs["bridges"][0]["entries"][1]["client_ids"], ids,
        "{attrs}"
    );
}

/// The refusal handler is registered only once a pipeline can refuse: a reload that
/// turns ack mode on must have it in place before the new entries take publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_mode_turned_on_by_a_reload_refuses_what_kafka_did_not_take() {
    let kafka = kafka_with(&["acked"]);
    kafka.broker_down(1);
    let plain = "[[bridges.entries]]\nlocal.topic_filter = \"ack/#\"\nremote.topic = \"acked\"\n";
    let before = bridge_config(&kafka.bootstrap, "max_inflight_messages = 1", plain);
    let broker = Broker::start(&before).await;
    let mut v5 = V5Client::connect(broker.addr, "v5").await;
    v5.client
        .publish("ack/1", QoS::AtLeastOnce, false, "before")
        .await
        .unwrap();
    let (_, reason) = v5.next_ack(Duration::from_secs(5)).await.expect("a PUBACK");
    assert_eq!(reason, 0, "without ack mode the PUBACK goes out at once");

    let after = before.replace(
        "remote.topic = \"acked\"\n",
        "remote.topic = \"acked\"\nremote.ack_after_delivery = true\n",
    );
    broker.reload(&after).await.unwrap();
    // The first record still holds the only in-flight slot (Kafka is down)...
    broker
        .stats_when(0, "the first record in flight", |s| s["in_flight"] == 1)
        .await;
    // ...so the next publish is refused at once with 0x97, quota exceeded.
    v5.client
        .publish("ack/2", QoS::AtLeastOnce, false, "after")
        .await
        .unwrap();
    let (_, reason) = v5.next_ack(Duration::from_secs(5)).await.expect("a PUBACK");
    assert_eq!(reason, 0x97);
}
