//! Turns compact text readings into JSON.
//!
//! Input, UTF-8 text:
//! - line protocol (default): `device=d1,temp_f=98.6,status=ok`
//! - CSV, when config `columns` is set (e.g. `columns = "device,temp_f,status"`): one line
//!   of values in that column order, `d1,98.6,ok`.
//!
//! Output: a JSON object (keys sorted) with
//! - every value that parses as a number as a JSON number (integers stay integers),
//!   anything else as a JSON string; surrounding spaces are trimmed;
//! - every key ending in `_f` converted from Fahrenheit to Celsius and renamed to `_c`,
//!   rounded to 2 decimals (`temp_f=98.6` becomes `"temp_c":37.0`);
//! - `"ts"`: the publish time in ms since the Unix epoch (replacing an input key `ts`).
//!
//! The record gets the header `content-type: application/json`. A pair without `=`, an
//! empty key, a repeated key, a non-numeric `_f` value, a CSV line with the wrong number
//! of values, or a payload that is not UTF-8 is an error.
//!
//! With config `copy_to` (comma-separated Kafka topics), the same record also goes to
//! each of those topics. The copies share one JSON buffer (an `Rc<[u8]>`): the module
//! serializes once and the host reads that one buffer for every record.

use std::rc::Rc;

use rmqtt_kafka_transform::prelude::*;
use rmqtt_kafka_transform::serde_json::{self, Map, Number, Value};
use rmqtt_kafka_transform::{bail, IntoBytes};

/// The config, parsed once per instance.
struct Settings {
    /// CSV column names; `None` for line protocol.
    columns: Option<Vec<String>>,
    /// Topics that also receive the record.
    copy_to: Vec<String>,
}

fn list(value: &str) -> Vec<String> {
    value.split(',').map(|s| s.trim().to_owned()).collect()
}

fn settings(cfg: &Config) -> Result<Settings, Error> {
    cfg.reject_unknown(&["copy_to", "columns"])?;
    let copy_to = cfg.get("copy_to").map(list).unwrap_or_default();
    for topic in &copy_to {
        Record::null_payload().topic(topic.as_str()).validate()?;
    }
    Ok(Settings {
        columns: cfg.get("columns").map(list),
        copy_to,
    })
}

/// `42` and `-7` become integers, `1.5` and `1e3` floats, anything else (including
/// `inf` and `NaN`, which JSON cannot represent) a string.
fn parse_value(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        return Value::from(i);
    }
    let looks_numeric = text.bytes().any(|b| b.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    match text
        .parse::<f64>()
        .ok()
        .filter(|_| looks_numeric)
        .and_then(Number::from_f64)
    {
        Some(n) => Value::Number(n),
        None => Value::from(text),
    }
}

fn fahrenheit_to_celsius(f: f64) -> f64 {
    ((f - 32.0) * 5.0 / 9.0 * 100.0).round() / 100.0
}

/// The `(key, value)` pairs of the payload.
fn pairs<'a>(
    text: &'a str,
    columns: Option<&'a [String]>,
) -> Result<Vec<(&'a str, &'a str)>, Error> {
    match columns {
        Some(columns) => {
            let values: Vec<&str> = text.split(',').map(str::trim).collect();
            if columns.len() != values.len() {
                bail!(
                    "expected {} comma-separated values ({}), got {}",
                    columns.len(),
                    columns.join(","),
                    values.len()
                );
            }
            Ok(columns.iter().map(String::as_str).zip(values).collect())
        }
        None => text
            .split(',')
            .map(|pair| {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| Error::msg(format!("`{pair}` is not `key=value`")))?;
                Ok((k.trim(), v.trim()))
            })
            .collect(),
    }
}

/// The JSON object of one reading.
fn document(msg: &Message, columns: Option<&[String]>) -> Result<Map<String, Value>, Error> {
    let text = msg.payload_str()?.trim();
    let mut doc = Map::new();
    for (key, value) in pairs(text, columns)? {
        if key.is_empty() {
            bail!("empty key in `{text}`");
        }
        let (key, value) = match key.strip_suffix("_f") {
            Some(base) => {
                let Some(f) = value.parse::<f64>().ok().filter(|f| f.is_finite()) else {
                    bail!("`{key}` must be a number of degrees Fahrenheit, not `{value}`");
                };
                (format!("{base}_c"), Value::from(fahrenheit_to_celsius(f)))
            }
            None => (key.to_owned(), parse_value(value)),
        };
        if doc.contains_key(&key) {
            bail!("key `{key}` appears twice");
        }
        doc.insert(key, value);
    }
    doc.insert("ts".to_owned(), Value::from(msg.timestamp_ms()));
    Ok(doc)
}

#[transform(init = settings)]
fn reshape(msg: &Message, s: &Settings) -> Result<Outcome, Error> {
    let doc = document(msg, s.columns.as_deref())?;
    if s.copy_to.is_empty() {
        return Ok(json_record(serde_json::to_vec(&doc)?).into());
    }
    let body: Rc<[u8]> = serde_json::to_vec(&doc)?.into();
    let copies = (s.copy_to.iter()).map(|topic| json_record(body.clone()).topic(topic.as_str()));
    Ok(std::iter::once(json_record(body.clone()))
        .chain(copies)
        .collect())
}

fn json_record<'a>(body: impl IntoBytes<'a>) -> Record<'a> {
    Record::new(body).header("content-type", "application/json")
}

#[cfg(test)]
mod tests {
    use rmqtt_kafka_transform::serde_json::{self, json};
    use rmqtt_kafka_transform::TestMessage;

    use super::*;

    fn run(payload: &str, cfg: &Config) -> Result<Value, String> {
        let t =
            TestMessage::new("sensors/berlin/line1/raw", payload).timestamp_ms(1_700_000_000_123);
        let (msg, s) = (t.message(), settings(cfg).unwrap());
        let out = reshape(&msg, &s).map_err(|e| e.to_string())?;
        let [record] = out.records() else {
            panic!("{out:?}")
        };
        assert_eq!(
            record.get_header("content-type"),
            Some(&b"application/json"[..])
        );
        Ok(serde_json::from_slice(record.payload().unwrap()).unwrap())
    }

    #[test]
    fn line_protocol() {
        let got = run(
            "device=d1, temp_f=98.6,count=3,ratio=0.25,status=ok,code=007x",
            &Config::new(),
        )
        .unwrap();
        let expected = json!({
            "device": "d1", "temp_c": 37.0, "count": 3, "ratio": 0.25, "status": "ok", "code": "007x",
            "ts": 1_700_000_000_123_i64
        });
        assert_eq!(got, expected);
    }

    #[test]
    fn csv_with_columns() {
        let cfg = Config::from_pairs([("columns", "device,temp_f,humidity")]);
        let got = run("d1,32,55.5\n", &cfg).unwrap();
        assert_eq!(
            got,
            json!({"device": "d1", "temp_c": 0.0, "humidity": 55.5, "ts": 1_700_000_000_123_i64})
        );
        assert_eq!(
            run("d1,32", &cfg).unwrap_err(),
            "expected 3 comma-separated values (device,temp_f,humidity), got 2"
        );
    }

    #[test]
    fn celsius_is_rounded_to_two_decimals() {
        assert_eq!(fahrenheit_to_celsius(100.0), 37.78);
        assert_eq!(fahrenheit_to_celsius(-40.0), -40.0);
        assert_eq!(run("t_f=0", &Config::new()).unwrap()["t_c"], json!(-17.78));
    }

    #[test]
    fn values_that_are_not_json_numbers_stay_strings() {
        let got = run("a=inf,b=NaN,c=1e3,d=-2,e=,f=1.2.3", &Config::new()).unwrap();
        assert_eq!(
            got,
            json!({"a": "inf", "b": "NaN", "c": 1000.0, "d": -2, "e": "", "f": "1.2.3", "ts": 1_700_000_000_123_i64})
        );
    }

    #[test]
    fn malformed_input_is_an_error() {
        let cfg = Config::new();
        assert_eq!(
            run("a=1,oops", &cfg).unwrap_err(),
            "`oops` is not `key=value`"
        );
        assert_eq!(run("", &cfg).unwrap_err(), "`` is not `key=value`");
        assert_eq!(run("=1", &cfg).unwrap_err(), "empty key in `=1`");
        assert_eq!(run("a=1,a=2", &cfg).unwrap_err(), "key `a` appears twice");
        assert_eq!(
            run("t_f=hot", &cfg).unwrap_err(),
            "`t_f` must be a number of degrees Fahrenheit, not `hot`"
        );
        let t = TestMessage::new("t", [0xff, b'=', b'1']);
        assert!(reshape(&t.message(), &settings(&cfg).unwrap())
            .unwrap_err()
            .to_string()
            .starts_with("payload is not valid UTF-8"));
    }

    #[test]
    fn copies_share_one_buffer() {
        let cfg = Config::from_pairs([("copy_to", "audit, archive")]);
        let t = TestMessage::new("t", "device=d1").timestamp_ms(5);
        let (msg, s) = (t.message(), settings(&cfg).unwrap());
        let out = reshape(&msg, &s).unwrap();
        let records = out.records();
        let topics: Vec<_> = records.iter().map(Record::get_topic).collect();
        assert_eq!(topics, [None, Some("audit"), Some("archive")]);
        assert!(records.iter().all(Record::payload_is_shared));
        let first = records[0].payload().unwrap();
        assert_eq!(first, br#"{"device":"d1","ts":5}"#);
        assert!(records
            .iter()
            .all(|r| r.payload().unwrap().as_ptr() == first.as_ptr()));
        assert!(records
            .iter()
            .all(|r| r.header_str("content-type") == Some("application/json")));
    }

    #[test]
    fn copy_to_topics_are_checked_at_startup() {
        let cfg = Config::from_pairs([("copy_to", "audit,a/b")]);
        let err = settings(&cfg).err().unwrap().to_string();
        assert!(
            err.contains("\"a/b\" is not a valid Kafka topic name"),
            "{err}"
        );
    }
}
