//! The cost of encoding one record against a schema, per format: a 256-byte JSON object
//! with 8 fields (the issue's yardstick), framed as Confluent's serializers frame it.
//!
//! `cargo bench --bench schema`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use rmqtt_bridge_egress_kafka::config::SchemaFormat;
use rmqtt_bridge_egress_kafka::schema::Encoder;

const AVRO: &str = r#"{"type": "record", "name": "Telemetry", "namespace": "plant", "fields": [
    {"name": "device", "type": "string"},
    {"name": "site", "type": "string"},
    {"name": "line", "type": "string"},
    {"name": "seq", "type": "long"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "temperature", "type": "double"},
    {"name": "ok", "type": "boolean"},
    {"name": "note", "type": ["null", "string"], "default": null}
]}"#;

const JSON_SCHEMA: &str = r#"{"type": "object", "properties": {
    "device": {"type": "string"}, "site": {"type": "string"}, "line": {"type": "string"},
    "seq": {"type": "integer"}, "at": {"type": "integer"}, "temperature": {"type": "number"},
    "ok": {"type": "boolean"}, "note": {"type": ["null", "string"]}
}, "required": ["device", "seq", "temperature"]}"#;

const PROTO: &str = r#"syntax = "proto3";
package plant;
message Telemetry {
  string device = 1; string site = 2; string line = 3; int64 seq = 4;
  int64 at = 5; double temperature = 6; bool ok = 7; string note = 8;
}"#;

/// 8 members, 256 bytes.
fn payload() -> Vec<u8> {
    let mut json = br#"{"device":"press-0017","site":"plant-berlin","line":"line-3","seq":123456,"at":1733400000123,"temperature":21.625,"ok":true,"note":""#.to_vec();
    json.resize(254, b'x');
    json.extend_from_slice(b"\"}");
    assert_eq!(json.len(), 256);
    json
}

fn encode(c: &mut Criterion) {
    let json = payload();
    let mut group = c.benchmark_group("schema");
    for (name, format, text, message) in [
        ("avro", SchemaFormat::Avro, AVRO, None),
        ("json", SchemaFormat::Json, JSON_SCHEMA, None),
        (
            "protobuf",
            SchemaFormat::Protobuf,
            PROTO,
            Some("plant.Telemetry"),
        ),
    ] {
        let encoder = Encoder::compile(format, text, message, 1).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(json.len() + 8);
                encoder.encode(black_box(&json), &mut out).unwrap();
                black_box(out)
            })
        });
    }
    // What bridge-bench's configuration l encodes: its payload, its schema.
    let avsc = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/telemetry.avsc");
    let schema = std::fs::read_to_string(avsc).unwrap();
    let encoder = Encoder::compile(SchemaFormat::Avro, &schema, None, 1).unwrap();
    let mut bench_payload =
        br#"{"device_id":"dev-3","pub":3,"seq":123456,"t_us":1733400000123456,"pad":""#.to_vec();
    bench_payload.resize(254, b'x');
    bench_payload.extend_from_slice(b"\"}");
    group.bench_function("avro, bridge-bench's payload", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(bench_payload.len() + 8);
            encoder.encode(black_box(&bench_payload), &mut out).unwrap();
            black_box(out)
        })
    });
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
