//! The encoder against apache-avro's own writer (a reference nobody here wrote), on the
//! same JSON read through its `Value`, and its mismatches' paths.

use apache_avro::types::Value as AvroValue;
use apache_avro::Schema;

use super::AvroEncoder;

const TELEMETRY: &str = r#"{
  "type": "record", "name": "Telemetry", "namespace": "plant",
  "fields": [
    {"name": "device", "type": "string"},
    {"name": "site", "type": "string"},
    {"name": "seq", "type": "long"},
    {"name": "temperature", "type": "double"},
    {"name": "humidity", "type": "float"},
    {"name": "ok", "type": "boolean"},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["IDLE", "RUNNING", "FAULT"]}},
    {"name": "note", "type": ["null", "string"], "default": null}
  ]
}"#;

const TELEMETRY_JSON: &str = r#"{"device":"press-17","site":"plant-1","seq":123456,"temperature":21.5,"humidity":40.25,"ok":true,"status":"RUNNING","note":"calibrated last week"}"#;

fn ours(schema: &str, json: &str) -> Result<Vec<u8>, String> {
    let e = AvroEncoder::new(schema)?;
    let mut out = Vec::new();
    e.encode(json.as_bytes(), &mut out)
        .map_err(|m| m.to_string())?;
    Ok(out)
}

/// apache-avro's encoding of `value` (built for its resolver, which wants unions'
/// and enums' values in its own forms).
fn reference(schema: &str, value: AvroValue) -> Vec<u8> {
    let schema = Schema::parse_str(schema).unwrap();
    let value = value.resolve(&schema).unwrap();
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .unwrap();
    writer.write_value_to_vec(value).unwrap()
}

fn record(fields: Vec<(&str, AvroValue)>) -> AvroValue {
    AvroValue::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn telemetry_value(note: AvroValue) -> AvroValue {
    record(vec![
        ("device", AvroValue::String("press-17".into())),
        ("site", AvroValue::String("plant-1".into())),
        ("seq", AvroValue::Long(123_456)),
        ("temperature", AvroValue::Double(21.5)),
        ("humidity", AvroValue::Float(40.25)),
        ("ok", AvroValue::Boolean(true)),
        ("status", AvroValue::Enum(1, "RUNNING".into())),
        ("note", note),
    ])
}

#[test]
fn a_record_encodes_as_apache_avro_encodes_it() {
    let note = AvroValue::Union(
        1,
        Box::new(AvroValue::String("calibrated last week".into())),
    );
    assert_eq!(
        ours(TELEMETRY, TELEMETRY_JSON).unwrap(),
        reference(TELEMETRY, telemetry_value(note))
    );
}

#[test]
fn members_in_any_order_and_unknown_members_are_fine() {
    let shuffled = r#"{"note":"calibrated last week","status":"RUNNING","ok":true,"extra":[1,{"a":2}],
        "humidity":40.25,"temperature":21.5,"seq":123456,"site":"plant-1","device":"press-17"}"#;
    assert_eq!(ours(TELEMETRY, shuffled), ours(TELEMETRY, TELEMETRY_JSON));
}

#[test]
fn missing_fields_take_their_defaults_and_nullable_ones_null() {
    let without_note = r#"{"device":"press-17","site":"plant-1","seq":123456,"temperature":21.5,"humidity":40.25,"ok":true,"status":"RUNNING"}"#;
    let null = AvroValue::Union(0, Box::new(AvroValue::Null));
    assert_eq!(
        ours(TELEMETRY, without_note).unwrap(),
        reference(TELEMETRY, telemetry_value(null))
    );
    let schema = r#"{"type": "record", "name": "R", "fields": [
        {"name": "a", "type": "int", "default": 7},
        {"name": "b", "type": ["string", "null"], "default": "x"},
        {"name": "c", "type": ["null", "long"]}
    ]}"#;
    let expected = reference(
        schema,
        record(vec![
            ("a", AvroValue::Int(7)),
            (
                "b",
                AvroValue::Union(0, Box::new(AvroValue::String("x".into()))),
            ),
            ("c", AvroValue::Union(0, Box::new(AvroValue::Null))),
        ]),
    );
    assert_eq!(ours(schema, "{}").unwrap(), expected);
}

#[test]
fn unions_take_bare_and_wrapped_values() {
    let schema = r#"["null", "long", "double", "string"]"#;
    let encode = |json: &str| ours(schema, json).unwrap();
    assert_eq!(encode("null"), reference(schema, AvroValue::Null));
    assert_eq!(encode("5"), [2, 10]);
    assert_eq!(encode("2.5"), reference(schema, AvroValue::Double(2.5)));
    assert_eq!(
        encode(r#""x""#),
        reference(schema, AvroValue::String("x".into()))
    );
    assert_eq!(
        encode(r#"{"double": 5}"#),
        reference(schema, AvroValue::Double(5.0))
    );
    assert_eq!(encode(r#"{"string": "5"}"#), encode(r#""5""#));
}

#[test]
fn arrays_maps_fixed_and_bytes() {
    let schema = r#"{"type": "record", "name": "R", "fields": [
        {"name": "xs", "type": {"type": "array", "items": "int"}},
        {"name": "empty", "type": {"type": "array", "items": "int"}},
        {"name": "m", "type": {"type": "map", "values": "string"}},
        {"name": "f", "type": {"type": "fixed", "name": "F", "size": 2}},
        {"name": "b", "type": "bytes"}
    ]}"#;
    let json =
        r#"{"xs": [1, -2, 300], "empty": [], "m": {"k": "v"}, "f": "\u00ff\u0001", "b": "ab"}"#;
    let expected = reference(
        schema,
        record(vec![
            (
                "xs",
                AvroValue::Array(vec![
                    AvroValue::Int(1),
                    AvroValue::Int(-2),
                    AvroValue::Int(300),
                ]),
            ),
            ("empty", AvroValue::Array(vec![])),
            (
                "m",
                AvroValue::Map([("k".to_owned(), AvroValue::String("v".into()))].into()),
            ),
            ("f", AvroValue::Fixed(2, vec![0xff, 1])),
            ("b", AvroValue::Bytes(b"ab".to_vec())),
        ]),
    );
    assert_eq!(ours(schema, json).unwrap(), expected);
}

#[test]
fn logical_types_from_numbers_and_text() {
    let schema = r#"{"type": "record", "name": "R", "fields": [
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "at2", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "price2", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}}
    ]}"#;
    let json = r#"{"at": 1733400000123, "at2": "2024-12-05T12:00:00.123Z", "day": "1970-01-11",
        "price": "1234.50", "price2": 0.07, "id": "123e4567-e89b-12d3-a456-426614174000"}"#;
    let mut expected = Vec::new();
    for ms in [1_733_400_000_123i64, 1_733_400_000_123] {
        super::encode::long(&mut expected, ms);
    }
    super::encode::long(&mut expected, 10);
    expected.extend([6, 0x01, 0xe2, 0x3a]); // 123450 = 0x01e23a, 3 bytes
    expected.extend([2, 7]);
    expected.push(72); // 36 characters
    expected.extend(b"123e4567-e89b-12d3-a456-426614174000");
    assert_eq!(ours(schema, json).unwrap(), expected);
}

#[test]
fn a_recursive_schema_encodes() {
    let schema = r#"{"type": "record", "name": "Node", "fields": [
        {"name": "v", "type": "int"},
        {"name": "next", "type": ["null", "Node"], "default": null}
    ]}"#;
    let json = r#"{"v": 1, "next": {"v": 2, "next": {"Node": {"v": 3}}}}"#;
    assert_eq!(ours(schema, json).unwrap(), [2, 2, 4, 2, 6, 0]);
}

#[test]
fn mismatches_name_the_path_and_the_reason() {
    let fails = |schema: &str, json: &str| ours(schema, json).unwrap_err();
    let wrong = TELEMETRY_JSON.replace("21.5", "\"hot\"");
    assert_eq!(
        fails(TELEMETRY, &wrong),
        "$.temperature: expected double, got string"
    );
    let missing = TELEMETRY_JSON.replace(r#""seq":123456,"#, "");
    assert_eq!(
        fails(TELEMETRY, &missing),
        "$.seq: missing, and the schema gives no default"
    );
    let symbol = TELEMETRY_JSON.replace("RUNNING", "ASLEEP");
    assert!(fails(TELEMETRY, &symbol).starts_with("$.status: \"ASLEEP\" is not one of"));
    let nested = r#"{"type": "record", "name": "R", "fields": [
        {"name": "rs", "type": {"type": "array", "items":
            {"type": "record", "name": "I", "fields": [{"name": "n", "type": "int"}]}}}]}"#;
    assert_eq!(
        fails(nested, r#"{"rs": [{"n": 1}, {"n": 4294967296}]}"#),
        "$.rs[1].n: 4294967296 is out of int's range"
    );
    assert_eq!(
        fails(nested, r#"{"rs": [{"n": 1.5}]}"#),
        "$.rs[0].n: expected an integer, got 1.5"
    );
    assert_eq!(fails(TELEMETRY, "[]"), "$: expected record, got array");
    assert!(fails(TELEMETRY, "{\"device\": ").starts_with("$: not JSON"));
    assert!(fails(r#""long""#, "1 2").starts_with("$: not JSON"));
    let decimal = r#"{"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}"#;
    assert_eq!(
        fails(decimal, "1.234"),
        "$: 1.234 has more than 2 digits after the point"
    );
    assert_eq!(
        fails(r#"["null", "double"]"#, r#""x""#),
        r#"$: expected one of ["null", "double"], got string"#
    );
}

#[test]
fn what_is_not_supported_is_refused_when_compiled() {
    let duration = r#"{"type": "fixed", "name": "D", "size": 12, "logicalType": "duration"}"#;
    assert!(AvroEncoder::new(duration)
        .err()
        .unwrap()
        .contains("duration is not supported"));
    assert!(AvroEncoder::new(r#"{"type": "nope"}"#)
        .err()
        .unwrap()
        .starts_with("not an Avro schema"));
    let bad_default = r#"{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "default": "x"}]}"#;
    let e = AvroEncoder::new(bad_default).err().unwrap();
    assert!(e.contains("default"), "{e}");
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let schema = r#"{"type": "record", "name": "Node", "fields": [
        {"name": "next", "type": ["null", "Node"], "default": null}
    ]}"#;
    let nested =
        |depth: usize| format!("{}{{}}{}", r#"{"next": "#.repeat(depth), "}".repeat(depth));
    // Each level: the union's branch index, then the innermost record's null.
    assert_eq!(ours(schema, &nested(100)).unwrap().len(), 101);
    let e = ours(schema, &nested(100_000)).unwrap_err();
    assert!(e.contains("not JSON") && e.contains("recursion"), "{e}");
}
