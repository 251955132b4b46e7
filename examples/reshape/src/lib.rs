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

use rmqtt_kafka_transform::bail;
use rmqtt_kafka_transform::prelude::*;
use rmqtt_kafka_transform::serde_json::{Map, Number, Value};

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
fn pairs<'a>(text: &'a str, columns: Option<&'a str>) -> Result<Vec<(&'a str, &'a str)>, Error> {
    match columns {
        Some(columns) => {
            let names: Vec<&str> = columns.split(',').map(str::trim).collect();
            let values: Vec<&str> = text.split(',').map(str::trim).collect();
            if names.len() != values.len() {
                bail!(
                    "expected {} comma-separated values ({columns}), got {}",
                    names.len(),
                    values.len()
                );
            }
            Ok(names.into_iter().zip(values).collect())
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

#[transform]
fn reshape(msg: &Message, cfg: &Config) -> Result<Outcome, Error> {
    let text = msg.payload_str()?.trim();
    let mut doc = Map::new();
    for (key, value) in pairs(text, cfg.get("columns"))? {
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
    Ok(Record::json(&doc)?
        .header("content-type", "application/json")
        .into())
}

#[cfg(test)]
mod tests {
    use rmqtt_kafka_transform::serde_json::{self, json};
    use rmqtt_kafka_transform::TestMessage;

    use super::*;

    fn run(payload: &str, cfg: &Config) -> Result<Value, String> {
        let t =
            TestMessage::new("sensors/berlin/line1/raw", payload).timestamp_ms(1_700_000_000_123);
        let out = reshape(&t.message(), cfg).map_err(|e| e.to_string())?;
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
        assert!(reshape(&t.message(), &cfg)
            .unwrap_err()
            .to_string()
            .starts_with("payload is not valid UTF-8"));
    }
}
