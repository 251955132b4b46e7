//! The sparkplug-b example module end to end: the `rmqttd` process with one entry on
//! `spBv1.0/#` whose transform is the built module with two instances, tansu as Kafka,
//! and the payloads Eclipse Tahu's JavaScript encoder made (`examples/sparkplug-b/
//! fixtures`). An edge node publishes its NBIRTH and a device's DBIRTH, then NDATA and
//! DDATA that carry only aliases; every DATA record in Kafka names its metric as the
//! BIRTH did (the aliases are in the entry's state store, shared by both instances),
//! with the values the encoder was given. A second client, Debian's `mosquitto_pub` on
//! a connection of its own, publishes the DDATA again and its aliases resolve too.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bridge_testkit::procs::{free_port, start_tansu};
use bridge_testkit::rmqttd::{mosquitto_pub, read_back, settled_status, Site};
use bridge_testkit::{example_module, repo_root, V3Client};
use serde_json::{json, Value};

const RMQTTD: &str = env!("CARGO_BIN_EXE_rmqttd");
const TOKEN: &str = "sparkplug-token";
const TOPIC: &str = "sparkplug";

fn plugin_config(own_port: u16, bootstrap: &str, module: &str) -> String {
    format!(
        r#"http_laddr = "127.0.0.1:{own_port}"
http_bearer_token = "{TOKEN}"
[[bridges]]
name = "b1"
servers = "{bootstrap}"
[[bridges.entries]]
local.topic_filter = "spBv1.0/#"
remote.topic = "{TOPIC}"
transform.module = "{module}"
transform.instances = 2
"#
    )
}

/// A fixture of the sparkplug-b example: the payload the encoder wrote (`<name>.bin`)
/// and the reference (`<name>.json`: the topic and what the encoder was given).
struct Fixture {
    bin_path: PathBuf,
    bin: Vec<u8>,
    reference: Value,
}

impl Fixture {
    fn load(name: &str) -> Fixture {
        let dir = repo_root().join("examples/sparkplug-b/fixtures");
        let bin_path = dir.join(format!("{name}.bin"));
        let bin = std::fs::read(&bin_path).unwrap();
        let json = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
        Fixture {
            bin_path,
            bin,
            reference: serde_json::from_str(&json).unwrap(),
        }
    }

    fn topic(&self) -> &str {
        self.reference["topic"].as_str().unwrap()
    }

    /// `spBv1.0/<group>/<type>/<edge>[/<device>]`: group, type, edge, device.
    fn levels(&self) -> (&str, &str, &str, Option<&str>) {
        let levels: Vec<&str> = self.topic().split('/').collect();
        assert!(
            levels[0] == "spBv1.0" && (4..=5).contains(&levels.len()),
            "{}",
            self.topic()
        );
        (levels[1], levels[2], levels[3], levels.get(4).copied())
    }

    /// The record key the module gives this message's records.
    fn key(&self) -> String {
        let (group, _, edge, device) = self.levels();
        format!("{group}/{edge}/{}", device.unwrap_or(""))
    }

    fn payload(&self) -> &Value {
        &self.reference["payload"]
    }

    fn metrics(&self) -> &[Value] {
        self.payload()["metrics"].as_array().unwrap()
    }
}

/// What a BIRTH reference says about each alias: its name and datatype.
fn aliases(birth: &Fixture) -> HashMap<u64, (String, String)> {
    let named = birth.metrics().iter().filter_map(|m| {
        let alias = m["alias"].as_u64()?;
        let name = m["name"].as_str()?.to_owned();
        Some((alias, (name, m["type"].as_str()?.to_owned())))
    });
    named.collect()
}

/// What a record of a metric says, in the order the module writes a message's metrics.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    kind: String,
    metric: String,
    alias: Option<u64>,
    datatype: String,
}

/// The records a BIRTH makes: one per metric, named as it names them.
fn birth_records(birth: &Fixture) -> Vec<Expected> {
    let (_, kind, _, _) = birth.levels();
    let record = |m: &Value| Expected {
        kind: kind.to_owned(),
        metric: m["name"]
            .as_str()
            .expect("a BIRTH names its metrics")
            .into(),
        alias: m["alias"].as_u64(),
        datatype: m["type"].as_str().unwrap().into(),
    };
    birth.metrics().iter().map(record).collect()
}

/// The records a DATA makes: one per metric, each named from `birth` by its alias.
fn data_records(data: &Fixture, birth: &Fixture) -> Vec<Expected> {
    let (_, kind, _, _) = data.levels();
    let names = aliases(birth);
    let record = |m: &Value| {
        assert!(m.get("name").is_none(), "the DATA fixture names {m}");
        let alias = m["alias"].as_u64().expect("a DATA metric has an alias");
        let (name, datatype) = names
            .get(&alias)
            .unwrap_or_else(|| panic!("{} names no alias {alias}", birth.topic()));
        assert_eq!(
            m["type"].as_str(),
            Some(datatype.as_str()),
            "alias {alias} changed type"
        );
        Expected {
            kind: kind.to_owned(),
            metric: name.clone(),
            alias: Some(alias),
            datatype: datatype.clone(),
        }
    };
    data.metrics().iter().map(record).collect()
}

/// A reference value as the module writes it: a DataSet without `numOfColumns`, the rest
/// as given (numbers are compared by [`same`]).
fn reference_value(datatype: &str, v: &Value) -> Value {
    match datatype {
        "DataSet" if !v.is_null() => {
            json!({"columns": v["columns"], "types": v["types"], "rows": v["rows"]})
        }
        _ => v.clone(),
    }
}

/// JSON equality where numbers are equal by value: integers exactly (64-bit ones
/// included), a number with a fraction or exponent as an f64 (`11` is `11.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                x.as_f64() == y.as_f64()
            } else {
                x == y
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Checks a DATA record's fields against the reference of its metric `m` in `data`.
fn check_data_record(record: &Value, data: &Fixture, m: &Value, expected: &Expected) {
    let (group, kind, edge, device) = data.levels();
    let payload = data.payload();
    let what = format!("{} alias {}: {record}", data.topic(), m["alias"]);
    assert_eq!(
        (
            &record["group"],
            &record["edge"],
            &record["device"],
            &record["type"]
        ),
        (&json!(group), &json!(edge), &json!(device), &json!(kind)),
        "{what}"
    );
    assert_eq!(record["metric"], json!(expected.metric), "{what}");
    assert_eq!(record["alias"], m["alias"], "{what}");
    assert_eq!(record["datatype"], json!(expected.datatype), "{what}");
    let want = reference_value(&expected.datatype, &m["value"]);
    assert!(
        same(&record["value"], &want),
        "{what}: value {} where the encoder was given {want}",
        record["value"]
    );
    assert_eq!(record["seq"], payload["seq"], "{what}");
    let timestamp = m.get("timestamp").unwrap_or(&payload["timestamp"]);
    assert_eq!(&record["timestamp"], timestamp, "{what}");
    let historical = m.get("isHistorical").unwrap_or(&json!(false)).clone();
    assert_eq!(record["is_historical"], historical, "{what}");
}

#[test]
fn data_metrics_carry_the_names_their_birth_gave_the_aliases() {
    let [nbirth, dbirth, ndata, ddata] = ["nbirth", "dbirth", "ndata", "ddata"].map(Fixture::load);
    // The fixtures are one edge node and one of its devices.
    assert_eq!(nbirth.key(), ndata.key());
    assert_eq!(dbirth.key(), ddata.key());
    assert_ne!(nbirth.key(), dbirth.key());
    assert!(nbirth.key().ends_with('/'), "a node's key has no device");
    for data in [&ndata, &ddata] {
        assert_eq!(data.reference["datatypeOnWire"], false, "aliases only");
    }
    // Each BIRTH's aliases, before anything is published: the DATA fixtures use them.
    let ndata_records = data_records(&ndata, &nbirth);
    let ddata_records = data_records(&ddata, &dbirth);
    // What each key's records are in Kafka, in order: the second DDATA is
    // mosquitto_pub's.
    let expected: HashMap<String, Vec<Expected>> = [
        (
            nbirth.key(),
            [birth_records(&nbirth), ndata_records.clone()].concat(),
        ),
        (
            dbirth.key(),
            [
                birth_records(&dbirth),
                ddata_records.clone(),
                ddata_records.clone(),
            ]
            .concat(),
        ),
    ]
    .into();
    let total: usize = expected.values().map(Vec::len).sum();

    let module = example_module("sparkplug-b");
    let tansu = start_tansu();
    tansu.create_topic(TOPIC, 3);
    let own_port = free_port();
    let config = plugin_config(own_port, &tansu.bootstrap, module.to_str().unwrap());
    let site = Site::new(RMQTTD, &config);
    let rmqttd = site.start();
    let addr = SocketAddr::from(([127, 0, 0, 1], site.port));

    // One edge node's session: the BIRTHs, then the DATA, in order on one connection.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut edge = V3Client::connect(addr, "edge1").await;
        for f in [&nbirth, &dbirth, &ndata, &ddata] {
            edge.publish(f.topic(), 1, f.bin.clone()).await;
        }
        for f in [&nbirth, &dbirth, &ndata, &ddata] {
            // A hang guard, not a timing assertion: PUBACK once the bridge took the
            // message's records (`remote.ack = "received"`), so after its transform.
            let ack = edge.next_ack(Duration::from_secs(30)).await;
            assert!(ack.is_some(), "no PUBACK for {}", f.topic());
        }
    });
    // Another client, another connection, the device's DATA again: the aliases are the
    // entry's, not the connection's.
    let bin = ddata.bin_path.to_str().unwrap();
    mosquitto_pub(site.port, &["-q", "1", "-t", ddata.topic(), "-f", bin]);

    let records = read_back(&tansu.bootstrap, TOPIC, total);
    let mut by_key: HashMap<String, Vec<Value>> = HashMap::new();
    for r in &records {
        let key = String::from_utf8(r.key.clone().expect("keyed")).unwrap();
        let payload = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
        by_key.entry(key).or_default().push(payload);
    }
    let log = || site.stderr();
    assert_eq!(
        records.len(),
        total,
        "one record per metric published; by key: {:?}\nrmqttd's log:\n{}",
        by_key.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>(),
        log()
    );
    let mut keys: Vec<&String> = by_key.keys().collect();
    keys.sort();
    let mut want_keys: Vec<&String> = expected.keys().collect();
    want_keys.sort();
    assert_eq!(keys, want_keys, "record keys");

    // Each key's records in the order published: every metric under the name its BIRTH
    // gave it, none with `metric` null.
    for (key, want) in &expected {
        let got: Vec<Expected> = by_key[key]
            .iter()
            .map(|p| Expected {
                kind: p["type"].as_str().unwrap().into(),
                metric: p["metric"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{key}: a record without its name: {p}\n{}", log()))
                    .into(),
                alias: p["alias"].as_u64(),
                datatype: p["datatype"].as_str().unwrap().into(),
            })
            .collect();
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g, w, "{key}: record {i}");
        }
        assert_eq!(got.len(), want.len(), "{key}: records");
    }

    // The DATA records, field by field against the encoder's input.
    let births = |key: &str| {
        if key == nbirth.key() {
            nbirth.metrics().len()
        } else {
            dbirth.metrics().len()
        }
    };
    let mut checked = 0;
    for (data, names, copies) in [(&ndata, &ndata_records, 1), (&ddata, &ddata_records, 2)] {
        let key = data.key();
        let records = &by_key[&key][births(&key)..];
        assert_eq!(records.len(), data.metrics().len() * copies, "{key}");
        let metrics = data.metrics().iter().zip(names).cycle();
        for (record, (m, expected)) in records.iter().zip(metrics) {
            check_data_record(record, data, m, expected);
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        ndata.metrics().len() + 2 * ddata.metrics().len(),
        "every DATA record checked"
    );

    // Every message accounted: each metric one delivered record, nothing else.
    let doc = settled_status(own_port, TOKEN);
    let entry = &doc["bridges"][0]["entries"][0];
    let stats = &entry["stats"];
    let outcomes = stats["outcomes"].as_object().unwrap();
    assert_eq!(stats["matched"].as_u64(), Some(5), "{stats}");
    assert_eq!(stats["acl_denied"].as_u64(), Some(0), "{stats}");
    assert_eq!(
        outcomes["delivered"].as_u64(),
        Some(total as u64),
        "{stats}"
    );
    for (outcome, n) in outcomes {
        if outcome != "delivered" {
            assert_eq!(n.as_u64(), Some(0), "{outcome}: {stats}");
        }
    }
    let transform = &entry["transform"];
    assert_eq!(transform["instances"].as_u64(), Some(2), "{transform}");
    let failures = transform["failures"].as_object().unwrap();
    assert!(
        failures.values().all(|n| n.as_u64() == Some(0)),
        "{transform}"
    );
    let state = &transform["state"];
    assert!(state["keys"].as_u64().unwrap() > 0, "{transform}");
    // One key per alias a BIRTH named, and one per node and device (the module's
    // README, "Aliases and the state store").
    let stored = aliases(&nbirth).len() + aliases(&dbirth).len() + 2;
    assert_eq!(state["keys"].as_u64(), Some(stored as u64), "{transform}");
    let refused = state["puts_refused"].as_object().unwrap();
    assert!(refused.values().all(|n| n.as_u64() == Some(0)), "{state}");
    assert!(
        !log().contains("not named by a current BIRTH"),
        "an alias did not resolve:\n{}",
        log()
    );
    drop(rmqttd);
}
