//! Schema-aware records end to end: the `rmqttd` process, tansu as Kafka, the stub
//! schema registry as a process of its own (`tests/registry/stub_registry.py`: no
//! Confluent-compatible registry installs here), and every record read back through
//! Confluent's own Python deserializers (`tests/registry/decode.py`). Publishers are
//! Debian's `mosquitto_pub`.

use bridge_testkit::http::sample;
use bridge_testkit::procs::{free_port, start_tansu, Tansu};
use bridge_testkit::registry::{decode, start_registry, start_registry_with_auth};
use bridge_testkit::rmqttd::{mosquitto_pub, plugin_request, read_back, status_when, Site};
use bridge_testkit::tls::make_certs;
use bridge_testkit::{example_module, Record};
use serde_json::{json, Value};

const RMQTTD: &str = env!("CARGO_BIN_EXE_rmqttd");
const TOKEN: &str = "schema-token";

const TELEMETRY_V1: &str = r#"{"type": "record", "name": "Telemetry", "namespace": "plant",
  "fields": [
    {"name": "device", "type": "string"},
    {"name": "temperature", "type": "double"},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "note", "type": ["null", "string"], "default": null}
  ]}"#;

/// Version 2 adds a field with a default: a compatible evolution.
const TELEMETRY_V2: &str = r#"{"type": "record", "name": "Telemetry", "namespace": "plant",
  "fields": [
    {"name": "device", "type": "string"},
    {"name": "temperature", "type": "double"},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "note", "type": ["null", "string"], "default": null},
    {"name": "unit", "type": "string", "default": "C"}
  ]}"#;

const READING_JSON_SCHEMA: &str = r#"{"type": "object",
  "properties": {"device": {"type": "string"}, "reading": {"type": "number"}},
  "required": ["device", "reading"]}"#;

const READING_PROTO: &str = r#"syntax = "proto3";
package plant;
message Reading {
  string device = 1;
  string status = 2;
  double temp_c = 3;
  int64 ts = 4;
}
"#;

/// The plugin's configuration: its endpoint on `http`, one bridge to `bootstrap` with
/// `entries`.
fn plugin_config(http: u16, bootstrap: &str, entries: &str) -> String {
    format!(
        r#"http_laddr = "127.0.0.1:{http}"
http_bearer_token = "{TOKEN}"
[[bridges]]
name = "b1"
servers = "{bootstrap}"
{entries}"#
    )
}

fn publish(port: u16, topic: &str, payload: &str) {
    mosquitto_pub(port, &["-q", "1", "-t", topic, "-m", payload]);
}

/// The plugin's `/status` entry `i` of bridge 0 once `ready` holds for it.
fn entry_when(http: u16, i: usize, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let doc = status_when(http, TOKEN, what, |d| ready(&d["bridges"][0]["entries"][i]));
    doc["bridges"][0]["entries"][i].clone()
}

fn reload(http: u16) -> Value {
    let r = plugin_request(http, TOKEN, "POST", "/reload");
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

fn header(r: &Record, name: &str) -> String {
    r.header(name)
        .unwrap_or_else(|| panic!("no header {name}: {r:?}"))
}

fn values(decoded: &[Value]) -> Vec<Value> {
    decoded
        .iter()
        .map(|d| {
            assert!(d.get("error").is_none(), "did not decode: {d}");
            d["value"].clone()
        })
        .collect()
}

/// Avro from the payload (keyed, the key a registered `"string"` schema from a file),
/// JSON Schema from a template's output, Protobuf from a transform's records: each
/// topic decoded by Confluent's deserializer; a mismatch goes to the dead letter with
/// its path, and never to the governed topic.
#[test]
fn every_format_decodes_with_confluents_deserializers() {
    let tansu = start_tansu();
    for topic in ["sr-avro", "sr-json", "sr-proto", "sr-dlq"] {
        tansu.create_topic(topic, 1);
    }
    let registry = start_registry();
    registry.register("sr-avro-value", "AVRO", TELEMETRY_V1);
    let key_id = registry.register("sr-avro-key", "AVRO", r#""string""#);
    registry.register("sr-json-value", "JSON", READING_JSON_SCHEMA);
    registry.register("sr-proto-value", "PROTOBUF", READING_PROTO);
    let http = free_port();
    let url = &registry.url;
    let reshape = example_module("reshape");
    let entries = format!(
        r#"[[bridges.entries]]
local.topic_filter = "avro/+"
remote.topic = "sr-avro"
remote.key = "${{topic.1}}"
remote.value_schema = {{ format = "avro", registry = "{url}", subject = "sr-avro-value" }}
remote.key_schema = {{ format = "avro", file = "key.avsc", id = {key_id} }}
remote.on_schema_error = "dead_letter"
remote.dead_letter_topic = "sr-dlq"
[[bridges.entries]]
local.topic_filter = "json/+"
remote.topic = "sr-json"
remote.payload = '{{"device": "${{topic.1}}", "reading": ${{payload.v}}}}'
remote.value_schema = {{ format = "json", registry = "{url}", version = "1" }}
[[bridges.entries]]
local.topic_filter = "proto/+"
remote.topic = "sr-proto"
remote.value_schema = {{ format = "protobuf", registry = "{url}", subject = "sr-proto-value", message = "plant.Reading" }}
transform.module = "{reshape}"
"#,
        reshape = reshape.display()
    );
    let site = Site::new(RMQTTD, &plugin_config(http, &tansu.bootstrap, &entries));
    site.write("key.avsc", r#""string""#);
    let _rmqttd = site.start();

    publish(
        site.port,
        "avro/press-1",
        r#"{"temperature": 21.5, "device": "press-1", "price": "12.30", "at": "2024-12-05T12:00:00.123Z"}"#,
    );
    publish(
        site.port,
        "avro/press-2",
        r#"{"device": "press-2", "temperature": 19, "price": 0.07, "at": 1733400000123, "note": "calibrated"}"#,
    );
    publish(
        site.port,
        "avro/press-3",
        r#"{"device": "press-3", "temperature": "hot", "price": "1", "at": 0}"#,
    );
    publish(site.port, "json/meter-1", r#"{"v": 42.5}"#);
    publish(site.port, "json/meter-2", r#"{"v": "high"}"#);
    publish(site.port, "proto/line-1", "device=d1,temp_f=98.6,status=ok");

    let avro = decode(
        &tansu.bootstrap,
        "sr-avro",
        2,
        "avro",
        url,
        &["--key-format", "avro"],
    );
    assert_eq!(
        values(&avro),
        [
            json!({"device": "press-1", "temperature": 21.5, "price": "12.30", "at": "2024-12-05T12:00:00.123000+00:00", "note": null}),
            json!({"device": "press-2", "temperature": 19.0, "price": "0.07", "at": "2024-12-05T12:00:00.123000+00:00", "note": "calibrated"}),
        ]
    );
    let keys: Vec<&Value> = avro.iter().map(|d| &d["key"]).collect();
    assert_eq!(keys, [&json!("press-1"), &json!("press-2")]);

    // The mismatch went to the dead letter, with the path and the reason.
    let dead = read_back(&tansu.bootstrap, "sr-dlq", 1);
    assert_eq!(dead.len(), 1, "{dead:?}");
    let d = &dead[0];
    assert_eq!(header(d, "error_cause"), "schema_mismatch");
    assert_eq!(
        header(d, "error_message"),
        "$.temperature: expected double, got string"
    );
    assert_eq!(header(d, "error_field"), "remote.value_schema");
    assert!(
        d.payload_str().contains(r#""temperature": "hot""#),
        "the original payload"
    );

    let json_records = decode(&tansu.bootstrap, "sr-json", 1, "json", url, &[]);
    assert_eq!(
        values(&json_records),
        [json!({"device": "meter-1", "reading": 42.5})]
    );

    let proto = decode(&tansu.bootstrap, "sr-proto", 1, "protobuf", url, &[]);
    let reading = &values(&proto)[0];
    assert_eq!(reading["device"], "d1");
    assert_eq!(reading["status"], "ok");
    assert_eq!(reading["temp_c"], 37.0);

    // Every outcome counted: the JSON mismatch dropped (the default), none sent raw.
    let avro_entry = entry_when(http, 0, "avro settled", |e| {
        e["stats"]["outcomes"]["dead_lettered"] == 1
    });
    assert_eq!(avro_entry["stats"]["outcomes"]["delivered"], 2);
    assert_eq!(avro_entry["stats"]["schema_failures"]["schema_mismatch"], 1);
    assert_eq!(avro_entry["value_schema"]["ready"], true);
    assert_eq!(avro_entry["key_schema"]["id"], key_id);
    let json_entry = entry_when(http, 1, "json settled", |e| {
        e["stats"]["outcomes"]["delivered"] == 1
    });
    assert_eq!(json_entry["stats"]["outcomes"]["schema_error"], 1);
    assert_eq!(json_entry["value_schema"]["version"], 1);
    assert_eq!(
        read_back(&tansu.bootstrap, "sr-json", 1).len(),
        1,
        "the mismatch was never sent"
    );
    let metrics = plugin_request(http, TOKEN, "GET", "/metrics").body;
    let labels = r#"bridge="b1",entry="1:json/+",reason="schema_mismatch""#;
    assert_eq!(sample(&metrics, "schema_failures_total", labels), 1.0);
}

/// Over https with basic authentication (the registry's certificate trusted through
/// `SSL_CERT_FILE`): a new version registered under the subject is taken by a reload;
/// the registry going away afterwards changes nothing (the record path never asks it),
/// and a reload while it is away keeps the schema it has.
#[test]
fn a_new_version_is_picked_up_by_a_reload_and_the_registry_may_go_away() {
    let tansu = start_tansu();
    tansu.create_topic("sr-evolve", 1);
    let mut registry = start_registry_with_auth(Some(("reader", "s3cret")), None);
    let certs_dir = tempfile::tempdir().unwrap();
    let certs = make_certs(certs_dir.path());
    let https = registry.serve_https(&certs);
    let v1 = registry.register("sr-evolve-value", "AVRO", TELEMETRY_V1);
    let http = free_port();
    let mut site = Site::new(RMQTTD, &evolving_config(&tansu, &https, http));
    site.set_env("SSL_CERT_FILE", &certs.ca.display().to_string());
    let _rmqttd = site.start();
    let reading = r#"{"device": "d", "temperature": 1.5, "price": "1.00", "at": 0}"#;
    publish(site.port, "evolve/a", reading);

    let v2 = registry.register("sr-evolve-value", "AVRO", TELEMETRY_V2);
    assert_ne!(v1, v2);
    let answer = reload(http);
    assert_eq!(answer["reloaded"], true, "{answer}");
    let changed = &answer["changes"]["entries_changed"];
    assert_eq!(
        changed,
        &json!(["b1/0:evolve/+"]),
        "a new version changes the entry"
    );
    let e = entry_when(http, 0, "version 2", |e| e["value_schema"]["id"] == v2);
    assert_eq!(e["value_schema"]["version"], 2);
    publish(site.port, "evolve/b", reading);

    registry.kill();
    publish(site.port, "evolve/c", reading);
    let answer = reload(http);
    assert_eq!(
        answer["reloaded"], true,
        "a reload keeps the schema it has: {answer}"
    );
    assert_eq!(answer["changes"]["entries_unchanged"], 1, "{answer}");
    assert_eq!(
        entry_when(http, 0, "kept", |e| e["value_schema"]["ready"] == true)["value_schema"]["id"],
        v2
    );
    publish(site.port, "evolve/d", reading);

    registry.restart();
    let auth = ["--basic", "reader:s3cret"];
    let decoded = decode(
        &tansu.bootstrap,
        "sr-evolve",
        4,
        "avro",
        &registry.url,
        &auth,
    );
    let units: Vec<Value> = values(&decoded)
        .into_iter()
        .map(|v| v.get("unit").cloned().unwrap_or(Value::Null))
        .collect();
    assert_eq!(units, [Value::Null, json!("C"), json!("C"), json!("C")]);
    // The framing carries each version's id.
    let raw = read_back(&tansu.bootstrap, "sr-evolve", 4);
    let ids: Vec<u32> = raw
        .iter()
        .map(|r| u32::from_be_bytes(r.payload.as_ref().unwrap()[1..5].try_into().unwrap()))
        .collect();
    assert_eq!(ids, [v1, v2, v2, v2]);
}

fn evolving_config(tansu: &Tansu, url: &str, http: u16) -> String {
    let entries = format!(
        r#"[[bridges.entries]]
local.topic_filter = "evolve/+"
remote.topic = "sr-evolve"
remote.value_schema = {{ format = "avro", registry = "{url}", subject = "sr-evolve-value", username = "reader", password = "s3cret" }}
"#
    );
    plugin_config(http, &tansu.bootstrap, &entries)
}

/// The registry down when the broker starts: the broker starts, the entry says why it
/// has no schema (`/health`, `/status`, `/metrics`) and dead-letters its records; once
/// the registry is back, a retry fetches the schema and records are encoded.
#[test]
fn the_registry_down_at_start_leaves_the_entry_waiting_then_it_recovers() {
    let tansu = start_tansu();
    for topic in ["sr-late", "sr-late-dlq"] {
        tansu.create_topic(topic, 1);
    }
    let mut registry = start_registry_with_auth(None, Some("tok"));
    let id = registry.register("sr-late-value", "JSON", READING_JSON_SCHEMA);
    registry.kill();
    let http = free_port();
    let entries = format!(
        r#"[[bridges.entries]]
local.topic_filter = "late/+"
remote.topic = "sr-late"
remote.value_schema = {{ format = "json", registry = "{url}", subject = "sr-late-value", token = "tok", timeout = "1s" }}
remote.on_schema_error = "dead_letter"
remote.dead_letter_topic = "sr-late-dlq"
"#,
        url = registry.url
    );
    let site = Site::new(RMQTTD, &plugin_config(http, &tansu.bootstrap, &entries));
    let _rmqttd = site.start();

    let health = bridge_testkit::http::request(http, "GET", "/health");
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(
        health.body.contains("remote.value_schema is not available"),
        "{}",
        health.body
    );
    let metrics = plugin_request(http, TOKEN, "GET", "/metrics").body;
    let labels = r#"bridge="b1",entry="0:late/+",field="remote.value_schema""#;
    assert_eq!(sample(&metrics, "schema_ready", labels), 0.0);
    assert!(site
        .stderr()
        .contains("no schema, so its records go to remote.on_schema_error"));

    publish(site.port, "late/m1", r#"{"device": "m1", "reading": 1}"#);
    let dead = read_back(&tansu.bootstrap, "sr-late-dlq", 1);
    assert_eq!(header(&dead[0], "error_cause"), "schema_unavailable");

    registry.restart();
    let e = entry_when(http, 0, "fetched by the retry", |e| {
        e["value_schema"]["ready"] == true
    });
    assert_eq!(e["value_schema"]["id"], id);
    publish(site.port, "late/m2", r#"{"device": "m2", "reading": 2}"#);
    let decoded = decode(
        &tansu.bootstrap,
        "sr-late",
        1,
        "json",
        &registry.url,
        &["--token", "tok"],
    );
    assert_eq!(values(&decoded), [json!({"device": "m2", "reading": 2})]);
    let health = bridge_testkit::http::request(http, "GET", "/health");
    assert_eq!(health.status, 200, "{}", health.body);
}
