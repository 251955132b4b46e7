//! WebAssembly transforms through the whole bridge: each example module, compiled from
//! source, loaded into a real broker, with the records checked in (mock) Kafka; and
//! failure handling (`on_error`) end to end.

use std::path::Path;

use bridge_testkit::*;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS;
use serde_json::json;

fn entry(filter: &str, topic: &str, module: &Path, extra: &str) -> String {
    format!(
        "[[bridges.entries]]\nlocal.topic_filter = \"{filter}\"\nremote.topic = \"{topic}\"\ntransform.module = \"{}\"\ntransform.instances = 2\ntransform.timeout = \"200ms\"\n{extra}\n",
        module.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_records_equal_the_config_only_ones() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("pt-wasm", 1);
    kafka.create_topic("pt-plain", 1);
    let module = example_module("passthrough");
    let entries = format!(
        "{}\n[[bridges.entries]]\nlocal.topic_filter = \"pt/#\"\nremote.topic = \"pt-plain\"\nremote.key = \"${{clientid}}\"\n",
        entry("pt/#", "pt-wasm", &module, "remote.key = \"${clientid}\"")
    );
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, "", &entries)).await;
    let c = V3Client::connect(broker.addr, "pt-client").await;
    c.publish("pt/a", 1, vec![0u8, 1, 2, 255]).await;
    c.publish("pt/b", 1, "").await;

    let wasm = read(&kafka.bootstrap, "pt-wasm", 2).await;
    let plain = read(&kafka.bootstrap, "pt-plain", 2).await;
    assert_eq!(wasm.len(), 2);
    for (w, p) in wasm.iter().zip(&plain) {
        assert_eq!(w.payload, p.payload);
        assert_eq!(
            w.key_str().as_deref(),
            Some("pt-client"),
            "the entry's key applies to module records"
        );
        assert_eq!(w.timestamp, p.timestamp);
        let names = |r: &Record| r.headers.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(w),
            names(p),
            "the standard headers come on module records too"
        );
    }
    let t = &broker.attrs().await["bridges"][0]["entries"][0]["transform"];
    assert_eq!(t["instances"], 2);
    assert_eq!(broker.settled_stats(0, 0).await["outcomes"]["delivered"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_built_for_wasip1_loads_and_runs() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("wasi", 1);
    let module = example_module_for("passthrough", "wasm32-wasip1");
    let broker = Broker::start(&bridge_config(
        &kafka.bootstrap,
        "",
        &entry("w/#", "wasi", &module, ""),
    ))
    .await;
    V3Client::connect(broker.addr, "w")
        .await
        .publish("w/1", 1, "via wasi")
        .await;
    assert_eq!(
        read(&kafka.bootstrap, "wasi", 1).await[0].payload_str(),
        "via wasi"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_filter_drops_low_readings_and_dead_letters_bad_ones() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("hot", 1);
    kafka.create_topic("rejected", 1);
    let extra = "transform.config = { threshold = 30, field = \"value\" }\ntransform.on_error = \"dead_letter\"\ntransform.dead_letter_topic = \"rejected\"";
    let config = bridge_config(
        &kafka.bootstrap,
        "",
        &entry(
            "s/+/+/telemetry",
            "hot",
            &example_module("threshold-filter"),
            extra,
        ),
    );
    let broker = Broker::start(&config).await;
    let c = V3Client::connect(broker.addr, "sensor").await;
    for v in [10, 30, 45, 29] {
        c.publish(
            "s/berlin/l1/telemetry",
            1,
            json!({ "value": v }).to_string(),
        )
        .await;
    }
    c.publish("s/berlin/l1/telemetry", 1, "not json").await;

    let hot: Vec<serde_json::Value> = read(&kafka.bootstrap, "hot", 2)
        .await
        .iter()
        .map(|r| serde_json::from_slice(r.payload.as_ref().unwrap()).unwrap())
        .collect();
    assert_eq!(hot, [json!({"value": 30}), json!({"value": 45})]);
    let dlq = read(&kafka.bootstrap, "rejected", 1).await;
    assert_eq!(dlq.len(), 1);
    let d = &dlq[0];
    assert_eq!(d.payload_str(), "not json", "the original payload");
    assert_eq!(d.header("error_bridge").as_deref(), Some("b1"));
    assert_eq!(d.header("error_entry").as_deref(), Some("0"));
    assert_eq!(d.header("error_cause").as_deref(), Some("guest_error"));
    assert!(
        d.header("error_message").unwrap().contains("invalid JSON"),
        "{:?}",
        d.header("error_message")
    );
    assert_eq!(d.header("topic").as_deref(), Some("s/berlin/l1/telemetry"));

    let s = broker.settled_stats(0, 0).await;
    assert_eq!(s["matched"], 5);
    assert_eq!(s["outcomes"]["delivered"], 2);
    assert_eq!(s["outcomes"]["filtered"], 2);
    assert_eq!(s["outcomes"]["dead_lettered"], 1);
    assert_eq!(
        outcome_total(&s),
        5,
        "every message ends in exactly one outcome: {s}"
    );
    let t = &broker.attrs().await["bridges"][0]["entries"][0]["transform"];
    assert_eq!(t["failures"]["guest_error"], 1);
    assert_eq!(t["replaced"], 0, "a reported error keeps the instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_headers_takes_the_key_from_json_and_headers_from_levels_after_the_hosts() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("telemetry", 1);
    let extra =
        "transform.config = { key_field = \"device_id\", topic_headers = \"plant:1,line:2\" }";
    let config = bridge_config(
        &kafka.bootstrap,
        "",
        &entry(
            "sensors/+/+/telemetry",
            "telemetry",
            &example_module("key-headers"),
            extra,
        ),
    );
    let broker = Broker::start(&config).await;
    let c = V5Client::connect(broker.addr, "kh").await;
    let props = PublishProperties {
        user_properties: vec![
            ("site".into(), "berlin".into()),
            ("fw".into(), "1.2".into()),
        ],
        ..Default::default()
    };
    c.client
        .publish_with_properties(
            "sensors/berlin/line1/telemetry",
            QoS::AtLeastOnce,
            false,
            "{\"device_id\":\"d-42\",\"value\":7}",
            props,
        )
        .await
        .unwrap();

    let recs = read(&kafka.bootstrap, "telemetry", 1).await;
    let r = &recs[0];
    assert_eq!(r.key_str().as_deref(), Some("d-42"));
    assert_eq!(r.payload_str(), "{\"device_id\":\"d-42\",\"value\":7}");
    assert_eq!(r.header("plant").as_deref(), Some("berlin"));
    assert_eq!(r.header("line").as_deref(), Some("line1"));
    // Each user property once: the host adds them, the module only its topic levels.
    for (name, value) in [("site", "berlin"), ("fw", "1.2")] {
        let found: Vec<_> = r.headers.iter().filter(|(k, _)| k == name).collect();
        assert_eq!(found.len(), 1, "{name}: {:?}", r.headers);
        assert_eq!(r.header(name).as_deref(), Some(value));
    }
    let tail: Vec<&str> = r
        .headers
        .iter()
        .rev()
        .take(4)
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        tail,
        ["line", "plant", "fw", "site"],
        "module headers follow the standard ones (user properties last), in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reshape_turns_line_protocol_into_json() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("readings", 1);
    let config = bridge_config(
        &kafka.bootstrap,
        "",
        &entry("legacy/+/raw", "readings", &example_module("reshape"), ""),
    );
    let broker = Broker::start(&config).await;
    V3Client::connect(broker.addr, "legacy")
        .await
        .publish("legacy/x/raw", 1, "device=d1,temp_f=98.6,humidity=40")
        .await;

    let r = &read(&kafka.bootstrap, "readings", 1).await[0];
    let doc: serde_json::Value = serde_json::from_slice(r.payload.as_ref().unwrap()).unwrap();
    let ts: i64 = r.header("ts").unwrap().parse().unwrap();
    assert_eq!(
        doc,
        json!({"device": "d1", "temp_c": 37.0, "humidity": 40, "ts": ts})
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_fans_alarms_out_to_a_second_topic() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("plant.telemetry", 1);
    kafka.create_topic("plant.alarms", 1);
    kafka.create_topic("plant-events", 1);
    let extra = "transform.config = { telemetry_topic = \"plant.telemetry\", alarm_topic = \"plant.alarms\" }";
    let config = bridge_config(
        &kafka.bootstrap,
        "",
        &entry(
            "plant/+/events",
            "plant-events",
            &example_module("router"),
            extra,
        ),
    );
    let broker = Broker::start(&config).await;
    let c = V3Client::connect(broker.addr, "plc").await;
    c.publish(
        "plant/p1/events",
        1,
        "{\"type\":\"reading\",\"device\":\"d1\",\"v\":1}",
    )
    .await;
    c.publish(
        "plant/p1/events",
        1,
        "{\"type\":\"alarm\",\"device\":\"d7\"}",
    )
    .await;

    let telemetry = read(&kafka.bootstrap, "plant.telemetry", 2).await;
    assert_eq!(telemetry.len(), 2);
    let alarms = read(&kafka.bootstrap, "plant.alarms", 1).await;
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0].key_str().as_deref(), Some("d7"));
    assert!(
        read_none(&kafka.bootstrap, "plant-events").await.is_empty(),
        "every record had a topic override"
    );
    let s = broker.settled_stats(0, 0).await;
    assert_eq!(
        (s["matched"].as_u64(), s["outcomes"]["delivered"].as_u64()),
        (Some(2), Some(3))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_are_contained_and_handled_by_on_error() {
    let kafka = MockKafka::start(1);
    for t in ["echo-drop", "echo-fwd", "echo-dlq", "dlq"] {
        kafka.create_topic(t, 1);
    }
    let wat = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/echo-or-trap.wat");
    let entries = [
        entry("e/#", "echo-drop", &wat, ""),
        entry("e/#", "echo-fwd", &wat, "transform.on_error = \"forward\""),
        entry(
            "e/#",
            "echo-dlq",
            &wat,
            "transform.on_error = \"dead_letter\"\ntransform.dead_letter_topic = \"dlq\"",
        ),
    ]
    .concat();
    let broker = Broker::start(&bridge_config(&kafka.bootstrap, "", &entries)).await;
    let c = V3Client::connect(broker.addr, "trapper").await;
    c.publish("e/1", 1, "before").await;
    c.publish("e/1", 1, "!boom").await;
    c.publish("e/1", 1, "after").await;

    let texts = |rs: Vec<Record>| rs.iter().map(Record::payload_str).collect::<Vec<_>>();
    assert_eq!(
        texts(read(&kafka.bootstrap, "echo-drop", 2).await),
        ["before", "after"]
    );
    assert_eq!(
        texts(read(&kafka.bootstrap, "echo-fwd", 3).await),
        ["before", "!boom", "after"]
    );
    assert_eq!(
        texts(read(&kafka.bootstrap, "echo-dlq", 2).await),
        ["before", "after"]
    );
    let dlq = read(&kafka.bootstrap, "dlq", 1).await;
    assert_eq!(dlq[0].payload_str(), "!boom");
    assert_eq!(dlq[0].header("error_cause").as_deref(), Some("trap"));
    assert!(dlq[0]
        .header("error_message")
        .unwrap()
        .contains("unreachable"));

    for (e, outcome) in [
        (0, "transform_error"),
        (1, "delivered"),
        (2, "dead_lettered"),
    ] {
        let s = broker.settled_stats(0, e).await;
        let want = if outcome == "delivered" { 3 } else { 1 };
        assert_eq!(s["outcomes"][outcome], want, "entry {e}: {s}");
        assert_eq!(outcome_total(&s), 3, "entry {e}: {s}");
        let t = &broker.attrs().await["bridges"][0]["entries"][e]["transform"];
        assert_eq!(
            (t["failures"]["trap"].as_u64(), t["replaced"].as_u64()),
            (Some(1), Some(1)),
            "entry {e}: {t}"
        );
    }
}

#[test]
fn the_passthrough_module_is_at_most_100_kb() {
    let size = std::fs::metadata(example_module("passthrough"))
        .unwrap()
        .len();
    assert!(size <= 100_000, "passthrough.wasm is {size} bytes");
}

/// `module` with a custom section appended: the same code, other bytes, so a reload
/// sees a changed module.
fn rebuilt(module: &Path, dir: &Path) -> std::path::PathBuf {
    let mut bytes = std::fs::read(module).unwrap();
    // Custom section (id 0) of 5 bytes: a 4-byte name, "test", and no content.
    bytes.extend_from_slice(&[0, 5, 4, b't', b'e', b's', b't']);
    let path = dir.join("deadband-rebuilt.wasm");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadband_state_is_shared_by_instances_and_outlives_reloads_of_the_same_module() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("band", 1);
    let module = example_module("deadband");
    let dir = tempfile::tempdir().unwrap();
    let extra = |instances: u32| {
        format!("transform.config = {{ min_change = 1 }}\ntransform.state_max_keys = 2\ntransform.instances = {instances}")
    };
    let config = |module: &Path, instances| {
        let entry = entry("band/#", "band", module, &extra(instances))
            .replace("transform.instances = 2\n", "");
        bridge_config(&kafka.bootstrap, "", &entry)
    };
    let broker = Broker::start(&config(&module, 4)).await;
    let c = V3Client::connect(broker.addr, "meter").await;
    let reading = |v: f64| json!({ "value": v }).to_string();
    // Sequential QoS 1 publishes go to whichever of the 4 instances is free.
    for v in [20.0, 20.5, 20.9, 21.0, 20.4, 19.9] {
        c.publish("band/a", 1, reading(v)).await;
    }
    c.publish("band/b", 1, reading(5.0)).await;
    // A third key is past state_max_keys = 2: the put fails, on_error drops it.
    c.publish("band/c", 1, reading(1.0)).await;
    let values = |rs: &[Record]| {
        rs.iter()
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(&r.payload_str()).unwrap()["value"]
                    .as_f64()
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        values(&read(&kafka.bootstrap, "band", 4).await),
        [20.0, 21.0, 19.9, 5.0]
    );
    let s = broker.settled_stats(0, 0).await;
    assert_eq!(s["outcomes"]["filtered"], 3);
    assert_eq!(s["outcomes"]["transform_error"], 1);
    let state =
        |attrs: &serde_json::Value| attrs["bridges"][0]["entries"][0]["transform"]["state"].clone();
    let st = state(&broker.attrs().await);
    assert_eq!(
        (st["keys"].as_u64(), st["max_keys"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(st["puts_refused"]["too_many_keys"], 1);

    // Other settings, same module: a new pool over the same store.
    broker.reload(&config(&module, 2)).await.unwrap();
    c.publish("band/a", 1, reading(20.5)).await;
    assert_eq!(
        broker
            .stats_when(0, "filtered 4", |s| s["outcomes"]["filtered"] == 4)
            .await["outcomes"]["filtered"],
        4
    );
    // A changed module starts empty: 20.5 is its topic's first reading.
    broker
        .reload(&config(&rebuilt(&module, dir.path()), 2))
        .await
        .unwrap();
    c.publish("band/a", 1, reading(20.5)).await;
    let all = read(&kafka.bootstrap, "band", 5).await;
    assert_eq!(values(&all[4..]), [20.5]);
    assert_eq!(state(&broker.attrs().await)["keys"], 1);
}
