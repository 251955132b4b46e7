//! The module against payloads encoded by Eclipse Tahu's JavaScript library
//! (`fixtures/`, made by `fixtures/generate.js`): every record is compared, whole, with
//! what the reference file says the encoder was given.

use std::collections::HashMap;

use prost::Message as _;
use rmqtt_kafka_transform::TestMessage;
use serde_json::{json, Map, Value};

use super::*;

/// A fixture: its topic and payload as the encoder wrote them, and the reference.
struct Fixture {
    bin: &'static [u8],
    reference: Value,
}

fn fixture(name: &str) -> Fixture {
    let (bin, json): (&[u8], &str) = match name {
        "nbirth" => (
            include_bytes!("../fixtures/nbirth.bin"),
            include_str!("../fixtures/nbirth.json"),
        ),
        "dbirth" => (
            include_bytes!("../fixtures/dbirth.bin"),
            include_str!("../fixtures/dbirth.json"),
        ),
        "ndata" => (
            include_bytes!("../fixtures/ndata.bin"),
            include_str!("../fixtures/ndata.json"),
        ),
        "ddata" => (
            include_bytes!("../fixtures/ddata.bin"),
            include_str!("../fixtures/ddata.json"),
        ),
        "ndeath" => (
            include_bytes!("../fixtures/ndeath.bin"),
            include_str!("../fixtures/ndeath.json"),
        ),
        "ddeath" => (
            include_bytes!("../fixtures/ddeath.bin"),
            include_str!("../fixtures/ddeath.json"),
        ),
        _ => panic!("no fixture {name}"),
    };
    Fixture {
        bin,
        reference: serde_json::from_str(json).unwrap(),
    }
}

impl Fixture {
    fn topic(&self) -> &str {
        self.reference["topic"].as_str().unwrap()
    }

    fn run(&self) -> Result<Vec<(String, Value)>, String> {
        run(self.topic(), self.bin)
    }
}

/// The records made of one message: key and parsed payload.
fn run(topic: &str, payload: &[u8]) -> Result<Vec<(String, Value)>, String> {
    let t = TestMessage::new(topic, payload);
    let cfg = Config::new();
    let out = sparkplug_b(&t.message(), &cfg).map_err(|e| e.to_string())?;
    let record = |r: &Record| {
        let key = r.key_str().unwrap().to_owned();
        (key, serde_json::from_slice(r.payload().unwrap()).unwrap())
    };
    Ok(out.records().iter().map(record).collect())
}

/// Names and datatypes a BIRTH reference gives its aliases.
fn names(birth: &Fixture) -> HashMap<u64, (String, String)> {
    let metrics = birth.reference["payload"]["metrics"].as_array().unwrap();
    let named = metrics.iter().filter_map(|m| {
        let alias = m["alias"].as_u64()?;
        Some((
            alias,
            (
                m["name"].as_str()?.to_owned(),
                m["type"].as_str()?.to_owned(),
            ),
        ))
    });
    named.collect()
}

/// The records the reference says a message should make; aliases without a name are
/// named from `birth`, checking that the BIRTH gave them the same datatype.
fn expected(f: &Fixture, birth: Option<&Fixture>) -> Vec<(String, Value)> {
    let levels: Vec<&str> = f.topic().split('/').collect();
    let key = format!(
        "{}/{}/{}",
        levels[1],
        levels[3],
        levels.get(4).unwrap_or(&"")
    );
    let names = birth.map(names).unwrap_or_default();
    let payload = &f.reference["payload"];
    let metrics = payload["metrics"].as_array().unwrap();
    let expect = |m: &Value| {
        let datatype = m["type"].as_str().unwrap();
        let name = match m.get("name") {
            Some(name) => name.clone(),
            None => {
                let (name, birth_type) = &names[&m["alias"].as_u64().unwrap()];
                assert_eq!(birth_type, datatype, "alias {} changed type", m["alias"]);
                json!(name)
            }
        };
        let mut r = json!({
            "group": levels[1], "edge": levels[3], "device": levels.get(4),
            "type": levels[2], "seq": payload["seq"],
            "metric": name, "alias": m["alias"], "datatype": datatype,
            "value": value(datatype, &m["value"]),
            "timestamp": m.get("timestamp").unwrap_or(&payload["timestamp"]),
            "is_historical": m.get("isHistorical").unwrap_or(&json!(false)),
            "is_transient": m.get("isTransient").unwrap_or(&json!(false)),
        });
        if let Some(md) = m.get("metadata") {
            r["metadata"] = snake_case(md);
        }
        if let Some(p) = m.get("properties") {
            r["properties"] = properties(p);
        }
        (key.clone(), r)
    };
    metrics.iter().map(expect).collect()
}

/// A reference value (the encoder's input) as the module writes it: the same, except
/// that Float and Double are compared as floats (JSON `11` is not `11.0`), a DataSet
/// drops `numOfColumns`, a Template's members become the module's shape.
fn value(datatype: &str, v: &Value) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    match datatype {
        "Float" | "Double" => json!(v.as_f64().unwrap()),
        "FloatArray" | "DoubleArray" => v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| json!(x.as_f64()))
            .collect(),
        "DataSet" => {
            let types = v["types"].as_array().unwrap();
            let row = |row: &Value| -> Value {
                let cells = row.as_array().unwrap().iter().zip(types);
                cells
                    .map(|(cell, t)| value(t.as_str().unwrap(), cell))
                    .collect()
            };
            let rows: Value = v["rows"].as_array().unwrap().iter().map(row).collect();
            json!({"columns": v["columns"], "types": v["types"], "rows": rows})
        }
        "Template" => template(v),
        "PropertySet" => properties(v),
        "PropertySetList" => v.as_array().unwrap().iter().map(properties).collect(),
        _ => v.clone(),
    }
}

fn template(v: &Value) -> Value {
    let member = |m: &Value| {
        let t = m["type"].as_str().unwrap();
        let mut out = json!({"name": m["name"], "datatype": t, "value": value(t, &m["value"])});
        if let Some(ts) = m.get("timestamp") {
            out["timestamp"] = ts.clone();
        }
        out
    };
    let parameter = |p: &Value| {
        let t = p["type"].as_str().unwrap();
        json!({"name": p["name"], "type": t, "value": value(t, &p["value"])})
    };
    let list = |key: &str, f: &dyn Fn(&Value) -> Value| -> Value {
        v[key]
            .as_array()
            .map_or(json!([]), |a| a.iter().map(f).collect())
    };
    json!({
        "template_ref": v["templateRef"], "version": v["version"],
        "is_definition": v.get("isDefinition").unwrap_or(&json!(false)),
        "metrics": list("metrics", &member), "parameters": list("parameters", &parameter),
    })
}

/// `{key: {type, value}}` as `{key: value}`.
fn properties(p: &Value) -> Value {
    let members = p
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, pv)| (k.clone(), value(pv["type"].as_str().unwrap(), &pv["value"])));
    Value::Object(members.collect())
}

/// Tahu's camelCase metadata names as the spec's snake_case ones.
fn snake_case(md: &Value) -> Value {
    let rename = |k: &str| {
        k.chars().fold(String::new(), |mut s, c| {
            if c.is_ascii_uppercase() {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
            s
        })
    };
    let members = md
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (rename(k), v.clone()));
    Value::Object(members.collect::<Map<_, _>>())
}

/// Compares record by record, so that a mismatch names the metric.
fn assert_records(actual: &[(String, Value)], expected: &[(String, Value)]) {
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a, e, "record {i} ({})", e.1["metric"]);
    }
    assert_eq!(actual.len(), expected.len(), "record count");
}

#[test]
fn nbirth_decodes_every_datatype_as_the_encoder_was_given_it() {
    let nbirth = fixture("nbirth");
    let records = nbirth.run().unwrap();
    assert_records(&records, &expected(&nbirth, None));
    // Every datatype of the spec but the two that only properties have.
    let mut seen: Vec<&str> = records
        .iter()
        .filter_map(|(_, r)| r["datatype"].as_str())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 32, "{seen:?}");
    assert_eq!(records[0].0, "plant1/edge1/");
}

#[test]
fn dbirth_records_are_keyed_by_device() {
    let dbirth = fixture("dbirth");
    let records = dbirth.run().unwrap();
    assert_records(&records, &expected(&dbirth, None));
    assert!(records.iter().all(|(key, _)| key == "plant1/edge1/press1"));
}

#[test]
fn ndata_aliases_resolve_from_the_nbirth() {
    let (nbirth, ndata) = (fixture("nbirth"), fixture("ndata"));
    assert_eq!(
        ndata.reference["datatypeOnWire"], false,
        "the DATA carries no datatypes"
    );
    nbirth.run().unwrap();
    assert_records(&ndata.run().unwrap(), &expected(&ndata, Some(&nbirth)));
}

#[test]
fn ddata_aliases_resolve_from_the_dbirth_not_the_node() {
    let (nbirth, dbirth, ddata) = (fixture("nbirth"), fixture("dbirth"), fixture("ddata"));
    nbirth.run().unwrap();
    dbirth.run().unwrap();
    // Alias 10 is the node's Int8 and the device's Double: the device's wins here.
    let records = ddata.run().unwrap();
    assert_records(&records, &expected(&ddata, Some(&dbirth)));
    assert_eq!(records[0].1["metric"], "Pressure");
}

#[test]
fn ndeath_forwards_bdseq_and_forgets_the_aliases() {
    let (nbirth, ndata, ndeath) = (fixture("nbirth"), fixture("ndata"), fixture("ndeath"));
    nbirth.run().unwrap();
    let records = ndeath.run().unwrap();
    assert_records(&records, &expected(&ndeath, None));
    assert_eq!(records[0].1["seq"], Value::Null, "an NDEATH has no seq");
    let after = ndata.run().unwrap();
    assert!(
        after.iter().all(|(_, r)| r["metric"].is_null()),
        "{after:?}"
    );
}

#[test]
fn a_stale_ndeath_does_not_forget_a_newer_birth() {
    let (nbirth, ndata) = (fixture("nbirth"), fixture("ndata"));
    nbirth.run().unwrap();
    // The will of session 2, delivered after the NBIRTH of session 3.
    let will = Payload {
        timestamp: Some(1),
        metrics: vec![named_metric("bdSeq", 4, MetricValue::Long(2))],
        ..Payload::default()
    };
    run("spBv1.0/plant1/NDEATH/edge1", &will.encode_to_vec()).unwrap();
    assert_eq!(ndata.run().unwrap()[0].1["metric"], "Types/Int8");
}

#[test]
fn ddeath_without_metrics_is_one_record_for_the_death() {
    let (dbirth, ddata, ddeath) = (fixture("dbirth"), fixture("ddata"), fixture("ddeath"));
    dbirth.run().unwrap();
    let records = ddeath.run().unwrap();
    let expected = json!({
        "group": "plant1", "edge": "edge1", "device": "press1", "type": "DDEATH", "seq": 4,
        "metric": null, "alias": null, "datatype": null, "value": null,
        "timestamp": 1700000002500u64, "is_historical": false, "is_transient": false,
    });
    assert_eq!(records, [("plant1/edge1/press1".to_owned(), expected)]);
    assert!(ddata
        .run()
        .unwrap()
        .iter()
        .all(|(_, r)| r["metric"].is_null()));
}

#[test]
fn data_without_a_birth_keeps_the_alias_and_the_raw_value() {
    let records = fixture("ndata").run().unwrap();
    let first = &records[0].1;
    assert_eq!(
        (&first["metric"], &first["alias"], &first["datatype"]),
        (&Value::Null, &json!(10), &Value::Null)
    );
    assert_eq!(first["value"], 127);
    // Int32 −1 without its datatype is the protobuf's uint32; an array its bytes.
    assert_eq!(records[1].1["value"], 4294967295u64);
    assert_eq!(records[8].1["value"], "AQD+/wMA");
    assert!(UNKNOWN_ALIASES.load(Ordering::Relaxed) > 0);
}

fn named_metric(name: &str, datatype: u32, value: MetricValue) -> Metric {
    Metric {
        name: Some(name.into()),
        datatype: Some(datatype),
        value: Some(value),
        ..Metric::default()
    }
}

#[test]
fn a_rebirth_reassigns_and_drops_aliases() {
    let (nbirth, ndata) = (fixture("nbirth"), fixture("ndata"));
    nbirth.run().unwrap();
    let mut renamed = named_metric("Renamed", 1, MetricValue::Int(0));
    renamed.alias = Some(10);
    let rebirth = Payload {
        timestamp: Some(1700000100000),
        seq: Some(0),
        metrics: vec![named_metric("bdSeq", 4, MetricValue::Long(4)), renamed],
        ..Payload::default()
    };
    run("spBv1.0/plant1/NBIRTH/edge1", &rebirth.encode_to_vec()).unwrap();
    let records = ndata.run().unwrap();
    assert_eq!(records[0].1["metric"], "Renamed");
    assert_eq!(
        records[1].1["metric"],
        Value::Null,
        "alias 12 is not in the rebirth"
    );
}

#[test]
fn garbage_payloads_are_errors() {
    let topic = "spBv1.0/plant1/NDATA/edge1";
    assert_eq!(
        run(topic, b"").unwrap_err(),
        "empty payload: not a Sparkplug B payload"
    );
    let err = run(topic, b"{\"value\": 42}").unwrap_err();
    assert!(err.starts_with("not a Sparkplug B payload: "), "{err}");
    let err = run(topic, &[0xff; 16]).unwrap_err();
    assert!(err.starts_with("not a Sparkplug B payload: "), "{err}");
    // An unknown field only: valid protobuf, no Sparkplug in it.
    let err = run(topic, &[0x78, 0x01]).unwrap_err();
    assert_eq!(
        err,
        "not a Sparkplug B payload: no timestamp, seq or metrics"
    );
    let nbirth = fixture("nbirth").bin;
    let err = run(topic, &nbirth[..nbirth.len() - 1]).unwrap_err();
    assert!(err.starts_with("not a Sparkplug B payload: "), "{err}");
}

/// Every prefix of a real payload and a few thousand random ones: an error or records,
/// never a panic.
#[test]
fn truncated_and_random_payloads_never_panic() {
    let nbirth = fixture("nbirth").bin;
    let topic = "spBv1.0/plant1/NBIRTH/edge1";
    let failed = (1..nbirth.len())
        .filter(|&n| run(topic, &nbirth[..n]).is_err())
        .count();
    assert!(
        failed > nbirth.len() * 9 / 10,
        "{failed} of {} prefixes failed",
        nbirth.len()
    );
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for len in 0..3000 {
        let bytes: Vec<u8> = (0..len % 97)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = run(topic, &bytes);
    }
}

#[test]
fn values_that_do_not_fit_their_datatype_are_errors() {
    let topic = "spBv1.0/g/NBIRTH/e";
    let one = |m: Metric| {
        let p = Payload {
            timestamp: Some(1),
            metrics: vec![m],
            ..Payload::default()
        };
        run(topic, &p.encode_to_vec()).unwrap_err()
    };
    assert_eq!(
        one(named_metric("t", 3, MetricValue::String("1".into()))),
        r#"metric "t": datatype Int32 but the value is in string_value"#
    );
    assert_eq!(
        one(named_metric("t", 99, MetricValue::Int(1))),
        "unknown datatype 99"
    );
    assert_eq!(
        one(named_metric("t", 5, MetricValue::Int(256))),
        r#"metric "t": 256 is out of range for UInt8"#
    );
    assert_eq!(
        one(named_metric("t", 24, MetricValue::Bytes(vec![1, 2, 3]))),
        r#"metric "t": Int32Array of 3 bytes: not whole 4-byte elements"#
    );
}

#[test]
fn commands_and_state_are_dropped_and_other_topics_refused() {
    let ncmd = fixture("ndata").bin;
    let out = |topic: &str| run(topic, ncmd);
    assert_eq!(out("spBv1.0/plant1/NCMD/edge1"), Ok(vec![]));
    assert_eq!(out("spBv1.0/plant1/DCMD/edge1/press1"), Ok(vec![]));
    assert_eq!(out("spBv1.0/STATE/scada"), Ok(vec![]));
    let err = out("sensors/plant1/NDATA/edge1").unwrap_err();
    assert_eq!(
        err,
        r#"topic "sensors/plant1/NDATA/edge1" is not in the spBv1.0 namespace"#
    );
}

#[test]
fn any_config_key_refuses_the_start() {
    assert!(check_config(&Config::new()).is_ok());
    let err = check_config(&Config::from_pairs([("alias_ttl", "1h")])).unwrap_err();
    assert!(err.to_string().contains("alias_ttl"), "{err}");
}
