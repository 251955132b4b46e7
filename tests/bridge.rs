//! The config-only bridge through a real broker, real MQTT clients and librdkafka's mock
//! cluster: topic mapping, keys, partitions, headers, several bridges, client ids.

use bridge_testkit::*;
use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_map_through_local_topic_skip_levels_and_fixed_names() {
    let kafka = MockKafka::start(1);
    for t in ["map-a-x-y", "map-fixed", "map-c-d"] {
        kafka.create_topic(t, 1);
    }
    let entries = r#"
[[bridges.entries]]
local.topic_filter = "a/#"
remote.topic = "map-${local.topic}"
[[bridges.entries]]
local.topic_filter = "fixed/+"
remote.topic = "map-fixed"
[[bridges.entries]]
local.topic_filter = "s/+/c/#"
remote.topic = "map-${local.topic}"
remote.skip_levels = 2
"#;
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, "", entries)).await;
    let c = V3Client::connect(broker.addr, "mapper").await;
    c.publish("a/x/y", 1, "one").await;
    c.publish("fixed/z", 1, "two").await;
    c.publish("s/1/c/d", 1, "three").await;

    for (topic, payload, mqtt_topic) in [
        ("map-a-x-y", "one", "a/x/y"),
        ("map-fixed", "two", "fixed/z"),
        ("map-c-d", "three", "s/1/c/d"),
    ] {
        let recs = read(&kafka.bootstrap, topic, 1).await;
        assert_eq!(recs.len(), 1, "{topic}");
        assert_eq!(recs[0].payload_str(), payload);
        assert_eq!(
            recs[0].header("topic").as_deref(),
            Some(mqtt_topic),
            "the topic header is the original MQTT topic"
        );
    }
    for e in 0..3 {
        let s = broker.settled_stats(0, e).await;
        assert_eq!(
            (s["matched"].as_u64(), s["outcomes"]["delivered"].as_u64()),
            (Some(1), Some(1)),
            "entry {e}: {s}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_and_key_template() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("keyed", 3);
    kafka.create_topic("unkeyed", 3);
    let entries = r#"
[[bridges.entries]]
local.topic_filter = "k/#"
remote.topic = "keyed"
remote.partition = 2
remote.key = "${clientid}|${username}|${local.topic}"
[[bridges.entries]]
local.topic_filter = "u/#"
remote.topic = "unkeyed"
"#;
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, "", entries)).await;
    let alice = V3Client::connect_with(broker.addr, "dev-7", Some(("alice", "pw")), true).await;
    alice.publish("k/room/1", 1, "x").await;
    let anon = V3Client::connect(broker.addr, "dev-8").await;
    anon.publish("k/room/2", 1, "y").await;
    anon.publish("u/1", 1, "z").await;

    let mut recs = read(&kafka.bootstrap, "keyed", 2).await;
    recs.sort_by_key(|r| r.payload_str());
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|r| r.partition == 2), "remote.partition");
    assert_eq!(recs[0].key_str().as_deref(), Some("dev-7|alice|k/room/1"));
    assert_eq!(
        recs[1].key_str().as_deref(),
        Some("dev-8||k/room/2"),
        "no username renders empty"
    );
    let recs = read(&kafka.bootstrap, "unkeyed", 1).await;
    assert_eq!(recs[0].key, None, "no remote.key, no key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_header_including_v5_properties() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("headers", 1);
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"h/#\"\nremote.topic = \"headers\"\n";
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, "", entries)).await;

    let v5 = V5Client::connect(broker.addr, "v5-client").await;
    let props = PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(120),
        content_type: Some("application/json".into()),
        response_topic: Some("reply/here".into()),
        correlation_data: Some(Bytes::from_static(&[1, 2, 3])),
        user_properties: vec![
            ("site".into(), "berlin".into()),
            ("tag".into(), "a".into()),
            ("tag".into(), "b".into()),
        ],
        ..Default::default()
    };
    v5.client
        .publish_with_properties("h/v5", QoS::AtLeastOnce, false, "{\"t\":1}", props)
        .await
        .unwrap();
    let v3 = V3Client::connect(broker.addr, "v3-client").await;
    v3.publish("h/v3", 0, "plain").await;

    let recs = read(&kafka.bootstrap, "headers", 2).await;
    assert_eq!(recs.len(), 2);
    let r5 = recs
        .iter()
        .find(|r| r.header("topic").as_deref() == Some("h/v5"))
        .unwrap();
    let h = header_map(r5);
    assert_eq!(h["from_type"].as_deref(), Some("custom"));
    assert_eq!(h["from_node"].as_deref(), Some("1"));
    assert!(h["from_ipaddress"]
        .as_deref()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(h["from_clientid"].as_deref(), Some("v5-client"));
    assert_eq!(h["from_username"].as_deref(), Some("undefined"));
    assert_eq!(h["dup"].as_deref(), Some("false"));
    assert_eq!(h["retain"].as_deref(), Some("false"));
    assert_eq!(h["qos"].as_deref(), Some("1"));
    assert!(h["packet_id"].as_deref().unwrap().parse::<u16>().unwrap() > 0);
    let ts: i64 = h["ts"].as_deref().unwrap().parse().unwrap();
    let time: i64 = h["time"].as_deref().unwrap().parse().unwrap();
    assert!(time >= ts);
    assert_eq!(
        r5.timestamp,
        Some(ts),
        "the Kafka timestamp is the publish's creation time"
    );
    assert_eq!(h["content_type"].as_deref(), Some("application/json"));
    assert_eq!(h["response_topic"].as_deref(), Some("reply/here"));
    assert_eq!(h["payload_format_indicator"].as_deref(), Some("1"));
    assert_eq!(h["message_expiry_interval"].as_deref(), Some("120"));
    let corr = r5
        .headers
        .iter()
        .find(|(k, _)| k == "correlation_data")
        .unwrap()
        .1
        .clone();
    assert_eq!(corr, Some(vec![1, 2, 3]));
    let user: Vec<(&str, String)> = r5
        .headers
        .iter()
        .filter(|(k, _)| k == "site" || k == "tag")
        .map(|(k, v)| {
            (
                k.as_str(),
                String::from_utf8_lossy(v.as_deref().unwrap()).into_owned(),
            )
        })
        .collect();
    assert_eq!(
        user,
        [
            ("site", "berlin".into()),
            ("tag", "a".into()),
            ("tag", "b".into())
        ],
        "every user property, in order"
    );
    assert_eq!(r5.payload_str(), "{\"t\":1}", "payload unchanged");

    let r3 = recs
        .iter()
        .find(|r| r.header("topic").as_deref() == Some("h/v3"))
        .unwrap();
    assert_eq!(r3.header("qos").as_deref(), Some("0"));
    assert!(!r3.has_header("packet_id"), "QoS 0 has no packet id");
    for v5_only in [
        "content_type",
        "response_topic",
        "correlation_data",
        "payload_format_indicator",
        "message_expiry_interval",
    ] {
        assert!(!r3.has_header(v5_only), "{v5_only} on a v3 record");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_bridges_and_entries_and_a_disabled_bridge() {
    let kafka = MockKafka::start(1);
    for t in ["multi-1", "multi-2", "multi-3", "multi-off"] {
        kafka.create_topic(t, 1);
    }
    let b = &kafka.bootstrap;
    let config = format!(
        r#"
[[bridges]]
name = "first"
servers = "{b}"
[[bridges.entries]]
local.topic_filter = "m/#"
remote.topic = "multi-1"
[[bridges.entries]]
local.topic_filter = "m/+/x"
remote.topic = "multi-2"

[[bridges]]
name = "off"
enable = false
servers = "{b}"
[[bridges.entries]]
local.topic_filter = "m/#"
remote.topic = "multi-off"

[[bridges]]
name = "second"
servers = "{b}"
[[bridges.entries]]
local.topic_filter = "m/1/#"
remote.topic = "multi-3"
"#
    );
    let broker = Broker::start(&config).await;
    let c = V3Client::connect(broker.addr, "multi").await;
    c.publish("m/1/x", 1, "to-all-three").await;
    c.publish("m/2/y", 1, "to-first-only").await;

    let names: Vec<_> = read(b, "multi-1", 2)
        .await
        .iter()
        .map(Record::payload_str)
        .collect();
    assert_eq!(names.len(), 2);
    assert_eq!(
        read(b, "multi-2", 1)
            .await
            .iter()
            .map(Record::payload_str)
            .collect::<Vec<_>>(),
        ["to-all-three"]
    );
    assert_eq!(
        read(b, "multi-3", 1)
            .await
            .iter()
            .map(Record::payload_str)
            .collect::<Vec<_>>(),
        ["to-all-three"]
    );
    assert!(
        read_none(b, "multi-off").await.is_empty(),
        "a disabled bridge forwards nothing"
    );
    let attrs = broker.attrs().await;
    let first = &attrs["bridges"][0];
    assert_eq!(
        first["stats"]["matched"], 3,
        "bridge totals add up its entries: {first}"
    );
    let bridges: Vec<_> = attrs["bridges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bridges, ["first", "second"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_topics_are_not_forwarded() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("only-a", 1);
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"a/+\"\nremote.topic = \"only-a\"\n";
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, "", entries)).await;
    let c = V3Client::connect(broker.addr, "other").await;
    for t in ["b/1", "a/1/2", "a", "$SYS/a"] {
        c.publish(t, 1, "no").await;
    }
    c.publish("a/1", 1, "yes").await;
    let recs = read(&kafka.bootstrap, "only-a", 1).await;
    assert_eq!(
        recs.iter().map(Record::payload_str).collect::<Vec<_>>(),
        ["yes"]
    );
    assert_eq!(broker.settled_stats(0, 0).await["matched"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ids_follow_the_seed_format() {
    let kafka = MockKafka::start(1);
    let entries = "[[bridges.entries]]\nlocal.topic_filter = \"a/#\"\nremote.topic = \"t\"\n[[bridges.entries]]\nlocal.topic_filter = \"b/#\"\nremote.topic = \"t\"\n";
    let broker = Broker::start(&bridge_config(
        &kafka.bootstrap,
        "concurrent_client_limit = 3",
        entries,
    ))
    .await;
    let attrs = broker.attrs().await;
    assert_eq!(attrs["running"], true);
    for e in 0..2 {
        let ids: Vec<_> = attrs["bridges"][0]["entries"][e]["client_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let want: Vec<_> = (1..=3)
            .map(|n| format!("test:b1:egress:1:{e}:{n}"))
            .collect();
        assert_eq!(ids, want);
    }
}

/// Publishes `per_key` numbered messages for each of `keys` keys (`{prefix}/{k}`),
/// round robin.
async fn publish_keyed(broker: &Broker, prefix: &str, (keys, per_key): (usize, usize)) {
    let c = V3Client::connect(broker.addr, &format!("orderer-{prefix}")).await;
    for i in 0..per_key {
        for k in 0..keys {
            c.publish(&format!("{prefix}/{k}"), 1, format!("{i}")).await;
        }
    }
}

/// Reads what [`publish_keyed`] sent from `topic`: each record once, each key's in
/// order and in one partition.
async fn check_key_order(
    kafka: &MockKafka,
    prefix: &str,
    topic: &str,
    (keys, per_key): (usize, usize),
) {
    let recs = read(&kafka.bootstrap, topic, keys * per_key).await;
    assert_eq!(recs.len(), keys * per_key);
    for k in 0..keys {
        let key = format!("{prefix}/{k}");
        let of_key: Vec<&Record> = recs
            .iter()
            .filter(|r| r.key_str().as_deref() == Some(&key))
            .collect();
        let seq: Vec<usize> = of_key
            .iter()
            .map(|r| r.payload_str().parse().unwrap())
            .collect();
        assert_eq!(seq, (0..per_key).collect::<Vec<_>>(), "order of key {key}");
        assert!(
            of_key.iter().all(|r| r.partition == of_key[0].partition),
            "{key}: one partition"
        );
    }
}

fn keyed_entry(filter: &str, topic: &str) -> String {
    format!("[[bridges.entries]]\nlocal.topic_filter = \"{filter}\"\nremote.topic = \"{topic}\"\nremote.key = \"${{local.topic}}\"\n")
}

/// The topic exists at start: the producers know its partitions, and keyed records
/// take their partition's producer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_keeps_its_order_across_producers() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("ordered", 4);
    let entries = keyed_entry("o/+", "ordered");
    let config = bridge_config(&kafka.bootstrap, "concurrent_client_limit = 4", &entries);
    let broker = Broker::start(&config).await;
    publish_keyed(&broker, "o", (8, 50)).await;
    check_key_order(&kafka, "o", "ordered", (8, 50)).await;
    assert_eq!(
        broker.attrs().await["bridges"][0]["entries"][0]["partitions"],
        serde_json::json!({"topic": "ordered", "partitions": 4, "keyed_records": "by_partition"})
    );
}

/// Kafka is down at start. Keyed records published before the producers learn a
/// topic's partitions take their key hash's producer, and keep doing so; a topic that
/// had no record by then is routed by partition once librdkafka's statistics give its
/// count. Both keep each key's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_without_a_known_count_keeps_key_order_by_key_hash() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("early", 4);
    kafka.create_topic("late", 4);
    kafka.broker_down(1);
    let entries = keyed_entry("e/+", "early") + &keyed_entry("l/+", "late");
    let config = bridge_config(&kafka.bootstrap, "concurrent_client_limit = 4", &entries).replace(
        "[bridges.properties]\n",
        "[bridges.properties]\n\"statistics.interval.ms\" = \"100\"\n",
    );
    let broker = Broker::start(&config).await;
    let routing = || {
        let broker = &broker;
        async move {
            broker.attrs().await["bridges"][0]["entries"][0]["partitions"]["keyed_records"].clone()
        }
    };
    assert_eq!(routing().await, "undecided", "Kafka was down");
    publish_keyed(&broker, "e", (8, 50)).await;
    broker
        .stats_when(0, "early's records", |s| s["produced"] == 400)
        .await;
    kafka.broker_up(1);
    assert_eq!(routing().await, "by_key_hash");
    let learned = |p: &serde_json::Value| p["keyed_records"] == "by_partition";
    let part = |a: &serde_json::Value| a["bridges"][0]["entries"][1]["partitions"].clone();
    broker
        .attrs_when("late's partition count", part, learned)
        .await;
    check_key_order(&kafka, "e", "early", (8, 50)).await;
    publish_keyed(&broker, "l", (8, 50)).await;
    check_key_order(&kafka, "l", "late", (8, 50)).await;
    assert_eq!(routing().await, "by_key_hash", "decided for good");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_that_maps_to_an_invalid_kafka_name_is_counted_as_a_template_error() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("x-ok", 1);
    let entries =
        "[[bridges.entries]]\nlocal.topic_filter = \"#\"\nremote.topic = \"x-${local.topic}\"\n";
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, "", entries)).await;
    let c = V3Client::connect(broker.addr, "spaces").await;
    c.publish("has space", 1, "bad").await;
    c.publish("ok", 1, "good").await;
    assert_eq!(
        read(&kafka.bootstrap, "x-ok", 1).await[0].payload_str(),
        "good"
    );
    let s = broker.settled_stats(0, 0).await;
    assert_eq!(
        (
            s["outcomes"]["template_error"].as_u64(),
            s["template_failures"]["invalid_topic"].as_u64(),
            s["outcomes"]["delivered"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{s}"
    );
}
