//! What `rmqttd transform test` prints: one JSON object per output record, or one per
//! message the module filtered out or failed on, and the comparison with a golden file.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;
use rmqtt_bridge_egress_kafka::transform::Failure;
use serde_json::{json, Map, Value};

/// A record's topic, key, headers, partition, timestamp and payload, as the module
/// returned them; `input` is the message's position (from 0).
pub fn record(input: usize, r: &abi::output::Record<'_>) -> Value {
    let mut line = Map::new();
    line.insert("input".into(), input.into());
    line.insert("topic".into(), text(r.topic));
    bytes_field(&mut line, "key", r.key);
    let headers: Vec<Value> = r
        .headers
        .iter()
        .map_while(Result::ok)
        .map(|(name, value)| json!([String::from_utf8_lossy(name), text(value)]))
        .collect();
    line.insert("headers".into(), headers.into());
    line.insert("partition".into(), json!(r.partition));
    line.insert("timestamp".into(), json!(r.timestamp));
    bytes_field(&mut line, "payload", r.payload);
    Value::Object(line)
}

/// A message the module returned no record for.
pub fn filtered(input: usize) -> Value {
    json!({"input": input, "outcome": "filtered"})
}

/// A message the module failed on, as the broker would count it.
pub fn error(input: usize, f: &Failure) -> Value {
    json!({"input": input, "outcome": "error", "cause": f.cause.as_str(), "message": f.message})
}

/// UTF-8 text, or `null` when absent. Topics are checked to be UTF-8 by the host; a
/// header value that is not is shown with replacement characters.
fn text(b: Option<&[u8]>) -> Value {
    b.map_or(Value::Null, |b| String::from_utf8_lossy(b).into())
}

/// `name` as UTF-8 text, or `name_b64` when the bytes are not UTF-8.
fn bytes_field(line: &mut Map<String, Value>, name: &str, b: Option<&[u8]>) {
    match b.map(std::str::from_utf8) {
        None => {
            line.insert(name.into(), Value::Null);
        }
        Some(Ok(s)) => {
            line.insert(name.into(), s.into());
        }
        Some(Err(_)) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(b.unwrap_or_default());
            line.insert(format!("{name}_b64"), encoded.into());
        }
    }
}

/// The differences between `actual` lines and the golden file's, as a diff; empty when
/// they are equal (as JSON values, so that key order and spacing do not matter). With
/// `ignore_messages`, an error line matches on its input, outcome and cause alone.
pub fn compare(golden: &Path, actual: &[Value], ignore_messages: bool) -> Result<String> {
    let text = std::fs::read_to_string(golden)
        .with_context(|| format!("--expect {}", golden.display()))?;
    let mut expected = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}", golden.display(), i + 1))?;
        expected.push(v);
    }
    let mut diff = String::new();
    for i in 0..expected.len().max(actual.len()) {
        let (e, a) = (expected.get(i), actual.get(i));
        let wordless = |v: Option<&Value>| {
            let mut v = v.cloned();
            if let Some(Value::Object(line)) = &mut v {
                line.remove("message");
            }
            v
        };
        if e == a || (ignore_messages && wordless(e) == wordless(a)) {
            continue;
        }
        diff.push_str(&format!("line {}:\n", i + 1));
        if let Some(e) = e {
            diff.push_str(&format!("- {e}\n"));
        }
        if let Some(a) = a {
            diff.push_str(&format!("+ {a}\n"));
        }
    }
    Ok(diff)
}
