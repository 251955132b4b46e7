//! Config-only shaping end to end: `rmqttd` with templated entries, Debian's
//! `mosquitto_pub` as the publisher, tansu as Kafka, and `/metrics` over HTTP. Every
//! placeholder, nested and array paths, escapes and unicode, numbers kept as written,
//! each `on_template_error` policy, and templates beside a transform.

use std::time::{Duration, Instant};

use bridge_testkit::http::{request, sample};
use bridge_testkit::procs::{free_port, start_tansu};
use bridge_testkit::rmqttd::{mosquitto_pub, read_back, Site};
use bridge_testkit::{example_module, Record};

const RMQTTD: &str = env!("CARGO_BIN_EXE_rmqttd");

/// Topics the entries write to (created up front: tansu can lose records produced while
/// it auto-creates a topic).
const TOPICS: [&str; 9] = [
    "tpl-s1", "tpl-ms", "tpl-drop", "tpl-fwd", "tpl-ok", "tpl-dlq", "tpl-bad", "tpl-kh", "tpl-pt",
];

fn bridge_config(bootstrap: &str, http_port: u16) -> String {
    let key_headers = example_module("key-headers");
    let passthrough = example_module("passthrough");
    format!(
        r#"http_laddr = "127.0.0.1:{http_port}"
[[bridges]]
name = "b1"
servers = "{bootstrap}"
[[bridges.entries]]
local.topic_filter = "t/+/+/all"
remote.topic = "tpl-${{topic.1}}"
remote.skip_levels = 1
remote.key = "${{payload.device_id}}"
remote.timestamp = "${{payload.time}}"
remote.payload = "${{payload.data}}"
remote.headers = {{ lt = "${{local.topic}}", cid = "${{clientid}}", user = "${{username}}", mqtt_topic = "${{topic}}", level = "L-${{topic.2}}", q = "${{qos}}", r = "${{retain}}", recv = "${{timestamp}}", tenant = "${{property.tenant}}", nested = "${{payload.a.b[1].c}}", num = "${{payload.n}}", obj = "${{payload.o}}", esc = "${{payload.esc}}", all = "${{payload}}" }}
[[bridges.entries]]
local.topic_filter = "ms/#"
remote.topic = "tpl-ms"
remote.timestamp = "${{payload.t}}"
remote.payload = "${{payload}}"
[[bridges.entries]]
local.topic_filter = "f/drop/#"
remote.topic = "tpl-drop"
remote.key = "${{payload.device_id}}"
remote.on_template_error = "drop"
[[bridges.entries]]
local.topic_filter = "f/fwd/#"
remote.topic = "tpl-fwd"
remote.key = "${{payload.device_id}}"
remote.headers = {{ deep = "${{topic.7}}" }}
remote.timestamp = "${{payload.time}}"
[[bridges.entries]]
local.topic_filter = "f/dlq/#"
remote.topic = "tpl-ok"
remote.key = "${{payload.device_id}}"
remote.on_template_error = "dead_letter"
remote.dead_letter_topic = "tpl-dlq"
[[bridges.entries]]
local.topic_filter = "bad/#"
remote.topic = "tpl-${{property.zone}}"
[[bridges.entries]]
local.topic_filter = "kh/+/+/telemetry"
remote.topic = "tpl-kh"
remote.key = "${{clientid}}"
remote.headers = {{ site = "from-template", line = "${{topic.2}}" }}
transform.module = "{}"
transform.config = {{ key_field = "device_id", topic_headers = "site:1" }}
transform.on_error = "forward"
[[bridges.entries]]
local.topic_filter = "pt/#"
remote.topic = "tpl-pt"
remote.key = "${{payload.device_id}}"
remote.timestamp = "${{payload.t}}"
remote.payload = "ignored: the module sets the value"
transform.module = "{}"
"#,
        key_headers.display(),
        passthrough.display()
    )
}

/// Publishes `payload` to `topic` over MQTT v5 at QoS 1, with extra `mosquitto_pub` flags.
fn publish(port: u16, topic: &str, payload: &str, extra: &[&str]) {
    let mut args = vec!["-V", "mqttv5", "-q", "1", "-t", topic, "-m", payload];
    args.extend_from_slice(extra);
    mosquitto_pub(port, &args);
}

fn entry(index: usize, filter: &str) -> String {
    format!("bridge=\"b1\",entry=\"{index}:{filter}\"")
}

/// `/metrics` once `done` holds for it (a hang guard of 60 s).
fn metrics_once(port: u16, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = request(port, "GET", "/metrics").body;
        if done(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "never settled:\n{m}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn keys(records: &[Record]) -> Vec<Option<String>> {
    records.iter().map(Record::key_str).collect()
}

#[test]
fn every_placeholder_and_policy_through_rmqttd_and_tansu() {
    let tansu = start_tansu();
    for topic in TOPICS {
        tansu.create_topic(topic, 1);
    }
    let http = free_port();
    let site = Site::new(RMQTTD, &bridge_config(&tansu.bootstrap, http));
    let _rmqttd = site.start();

    every_placeholder(&tansu.bootstrap, site.port);
    each_policy(&tansu.bootstrap, site.port, http);
    beside_a_transform(&tansu.bootstrap, site.port);
}

fn every_placeholder(bootstrap: &str, port: u16) {
    let payload = r#"{"device_id":"dé-1","a":{"b":[0,{"c":"deep"}]},"n":1.50e2,"o":{ "x" : [1, 2], "s": "a b" },"esc":"tab\t\"q\" \u20ac","time":"2024-12-05T13:00:00.123+01:00","data":{"v": 42}}"#;
    let user = ["-i", "dev-client", "-u", "alice", "-r"];
    let props = ["-D", "publish", "user-property", "tenant", "acme"];
    publish(
        port,
        "t/s1/line 2/all",
        payload,
        &[&user[..], &props[..]].concat(),
    );
    publish(port, "ms/x", r#"{"t": 1700000000042}"#, &[]);

    let r = &read_back(bootstrap, "tpl-s1", 1)[0];
    assert_eq!(r.key_str().as_deref(), Some("dé-1"));
    assert_eq!(
        r.timestamp,
        Some(1_733_400_000_123),
        "RFC 3339 with an offset"
    );
    assert_eq!(r.payload_str(), r#"{"v":42}"#, "an object as compact JSON");
    let header = |name: &str| {
        r.header(name)
            .unwrap_or_else(|| panic!("no header {name}: {r:?}"))
    };
    for (name, want) in [
        ("lt", "s1/line 2/all"),
        ("cid", "dev-client"),
        ("user", "alice"),
        ("mqtt_topic", "t/s1/line 2/all"),
        ("level", "L-line 2"),
        ("q", "1"),
        ("tenant", "acme"),
        ("nested", "deep"),
        ("num", "1.50e2"),
        ("obj", r#"{"x":[1,2],"s":"a b"}"#),
        ("esc", "tab\t\"q\" €"),
        ("all", payload),
    ] {
        assert_eq!(header(name), want, "header {name}");
    }
    assert_eq!(
        header("recv"),
        header("ts"),
        "${{timestamp}}: when the broker received it"
    );
    // The standard headers come first, the template's after them.
    let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.iter().position(|n| *n == "topic") < names.iter().position(|n| *n == "all"));

    let r = &read_back(bootstrap, "tpl-ms", 1)[0];
    assert_eq!(r.timestamp, Some(1_700_000_000_042), "a number of ms");
    assert_eq!(
        r.payload_str(),
        r#"{"t": 1700000000042}"#,
        "${{payload}} as it is"
    );
}

/// Each entry gets a message without the member, one that is not JSON, and a good one.
fn each_policy(bootstrap: &str, port: u16, http: u16) {
    for prefix in ["f/drop", "f/fwd", "f/dlq"] {
        for (i, payload) in [
            r#"{"x":1}"#,
            "hello",
            r#"{"device_id":"d9","time":"yesterday"}"#,
        ]
        .into_iter()
        .enumerate()
        {
            publish(port, &format!("{prefix}/{i}"), payload, &[]);
        }
    }
    publish(
        port,
        "bad/a",
        "{}",
        &["-D", "publish", "user-property", "zone", "z/1"],
    );
    publish(port, "bad/b", "{}", &[]);
    publish(
        port,
        "bad/c",
        "{}",
        &["-D", "publish", "user-property", "zone", "bad"],
    );

    let drop = entry(2, "f/drop/#");
    let m = metrics_once(http, |m| {
        sample(m, "template_error_total", &drop) == 2.0
            && sample(m, "delivered_total", &entry(4, "f/dlq/#")) == 1.0
            && sample(m, "dead_lettered_total", &entry(4, "f/dlq/#")) == 2.0
            && sample(m, "template_error_total", &entry(5, "bad/#")) == 2.0
            && sample(m, "delivered_total", &entry(5, "bad/#")) == 1.0
    });
    let failures = |e: &str, reason: &str| {
        sample(
            &m,
            "template_failures_total",
            &format!("{e},reason=\"{reason}\""),
        )
    };
    assert_eq!(
        (
            failures(&drop, "member_absent"),
            failures(&drop, "not_json")
        ),
        (1.0, 1.0)
    );
    let bad = entry(5, "bad/#");
    assert_eq!(
        (
            failures(&bad, "invalid_topic"),
            failures(&bad, "no_property")
        ),
        (1.0, 1.0)
    );
    assert_eq!(sample(&m, "delivered_total", &bad), 1.0);
    assert_eq!(
        keys(&read_back(bootstrap, "tpl-drop", 1)),
        [Some("d9".into())]
    );

    // forward: every record arrives, without the part that had no value.
    let fwd = read_back(bootstrap, "tpl-fwd", 3);
    assert_eq!(keys(&fwd), [None, None, Some("d9".into())]);
    for r in &fwd {
        assert!(!r.has_header("deep"), "{r:?}");
        assert_eq!(
            r.timestamp,
            r.header("ts").map(|t| t.parse().unwrap()),
            "the receive time"
        );
    }
    let fwd_entry = entry(3, "f/fwd/#");
    let m = metrics_once(http, |m| sample(m, "delivered_total", &fwd_entry) == 3.0);
    assert_eq!(
        failures_of(&m, &fwd_entry),
        3.0,
        "each record counted once, by its first failure"
    );

    assert_eq!(
        keys(&read_back(bootstrap, "tpl-ok", 1)),
        [Some("d9".into())]
    );
    let dlq = read_back(bootstrap, "tpl-dlq", 2);
    let causes: Vec<_> = dlq
        .iter()
        .map(|r| r.header("error_cause").unwrap())
        .collect();
    assert_eq!(causes, ["member_absent", "not_json"]);
    for (r, payload) in dlq.iter().zip([r#"{"x":1}"#, "hello"]) {
        assert_eq!(r.payload_str(), payload, "the original payload");
        assert_eq!(r.header("error_field").as_deref(), Some("remote.key"));
        assert_eq!(
            r.header("error_template").as_deref(),
            Some("${payload.device_id}")
        );
        assert_eq!(r.header("error_bridge").as_deref(), Some("b1"));
        assert_eq!(r.header("error_entry").as_deref(), Some("4"));
        assert!(
            r.header("error_message")
                .unwrap()
                .starts_with("remote.key = "),
            "{r:?}"
        );
    }
    assert_eq!(read_back(bootstrap, "tpl-bad", 1).len(), 1);
}

fn failures_of(metrics: &str, entry: &str) -> f64 {
    [
        "member_absent",
        "not_json",
        "no_level",
        "no_property",
        "invalid_topic",
        "invalid_timestamp",
    ]
    .iter()
    .map(|r| {
        sample(
            metrics,
            "template_failures_total",
            &format!("{entry},reason=\"{r}\""),
        )
    })
    .sum()
}

/// What a module sets wins; templates fill what it leaves unset.
fn beside_a_transform(bootstrap: &str, port: u16) {
    publish(
        port,
        "kh/p1/l7/telemetry",
        r#"{"device_id":"m1"}"#,
        &["-i", "kh-client"],
    );
    // The module fails without its key field: on_error = "forward" sends the record
    // untransformed, shaped by the templates alone.
    publish(
        port,
        "kh/p1/l8/telemetry",
        r#"{"other":1}"#,
        &["-i", "kh-client"],
    );
    let recs = read_back(bootstrap, "tpl-kh", 2);
    assert_eq!(keys(&recs), [Some("m1".into()), Some("kh-client".into())]);
    let sites: Vec<Vec<String>> = recs
        .iter()
        .map(|r| {
            let values = r.headers.iter().filter(|(n, _)| n == "site");
            values
                .map(|(_, v)| String::from_utf8(v.clone().unwrap()).unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        sites,
        [vec!["p1".to_owned()], vec!["from-template".to_owned()]]
    );
    let lines: Vec<_> = recs.iter().map(|r| r.header("line")).collect();
    assert_eq!(lines, [Some("l7".into()), Some("l8".into())]);

    publish(port, "pt/x", r#"{"device_id":"p9","t":1700000000999}"#, &[]);
    let r = &read_back(bootstrap, "tpl-pt", 1)[0];
    assert_eq!(r.key_str().as_deref(), Some("p9"));
    assert_eq!(r.timestamp, Some(1_700_000_000_999));
    assert_eq!(r.payload_str(), r#"{"device_id":"p9","t":1700000000999}"#);
}
