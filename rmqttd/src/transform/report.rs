//! What `rmqttd transform test` prints: one JSON object per output record, or one per
//! message the module filtered out or failed on, and the comparison with a golden file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use rmqtt_bridge_egress_kafka::transform::Failure;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// One line of the output, or of a golden file: its fields in name order, each as its
/// JSON text. A `payload_json` or `key_json` holds the record's bytes exactly as the
/// module made them (spacing, member order, number spelling), which a `Value` would not.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Line(BTreeMap<String, Box<RawValue>>);

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(&self.0).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl Line {
    /// The members of `fields`, a JSON object.
    fn new(fields: Value) -> Line {
        let members = fields.as_object().into_iter().flatten();
        Line(members.map(|(k, v)| (k.clone(), raw(v))).collect())
    }

    /// `name` as UTF-8 text; `name_json` when that text is a JSON document (`document`),
    /// so that it reads as one instead of an escaped string; `name_b64` when it is not
    /// UTF-8. The name says which, so a JSON payload and a text payload never look alike.
    fn bytes(&mut self, name: &str, b: Option<&[u8]>) {
        let (field, value) = match b.map(|b| (b, std::str::from_utf8(b))) {
            None => (name.to_owned(), raw(&Value::Null)),
            Some((_, Ok(text))) => match document(text) {
                Some(doc) => (format!("{name}_json"), doc),
                None => (name.to_owned(), raw(&text.into())),
            },
            Some((b, Err(_))) => (format!("{name}_b64"), raw(&base64_text(b).into())),
        };
        self.0.insert(field, value);
    }

    /// The message the line is about (`input`), if it names one.
    fn input(&self) -> Option<u64> {
        serde_json::from_str(self.0.get("input")?.get()).ok()
    }
}

/// A record's topic, key, headers, partition, timestamp and payload, as the module
/// returned them; `input` is the message's position (from 0).
pub fn record(input: usize, r: &abi::output::Record<'_>) -> Line {
    let headers: Vec<Value> = r
        .headers
        .iter()
        .map_while(Result::ok)
        .map(|(name, value)| json!([String::from_utf8_lossy(name), text(value)]))
        .collect();
    let mut line = Line::new(json!({
        "input": input,
        "topic": text(r.topic),
        "headers": headers,
        "partition": r.partition,
        "timestamp": r.timestamp,
    }));
    line.bytes("key", r.key);
    line.bytes("payload", r.payload);
    line
}

/// A message the module returned no record for.
pub fn filtered(input: usize) -> Line {
    Line::new(json!({"input": input, "outcome": "filtered"}))
}

/// A message the module failed on, as the broker would count it.
pub fn error(input: usize, f: &Failure) -> Line {
    Line::new(
        json!({"input": input, "outcome": "error", "cause": f.cause.as_str(), "message": f.message}),
    )
}

/// UTF-8 text, or `null` when absent. Topics are checked to be UTF-8 by the host; a
/// header value that is not is shown with replacement characters.
fn text(b: Option<&[u8]>) -> Value {
    b.map_or(Value::Null, |b| String::from_utf8_lossy(b).into())
}

fn raw(v: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(v).expect("a Value serializes")
}

fn base64_text(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// `text` as a JSON document to print in place: an object or an array (scalars read well
/// as text, and a key `1234` stays the text it is), on one line (a line break would split
/// the output line), with nothing around it (so that the document is the bytes exactly).
fn document(text: &str) -> Option<Box<RawValue>> {
    let shaped = (text.starts_with('{') && text.ends_with('}'))
        || (text.starts_with('[') && text.ends_with(']'));
    if !shaped || text.contains(['\n', '\r']) {
        return None;
    }
    RawValue::from_string(text.to_owned()).ok()
}

/// The differences between the `actual` lines and the golden file's, empty when they are
/// equal: per message and record, each field that differs (`message 0, record 1:
/// payload.temp: expected 21.5, got "21.5"`), then both whole lines (`-` expected, `+`
/// actual). Lines are grouped by message, so a record too many or too few is reported
/// once instead of shifting every line after it. With `ignore_messages`, an error line
/// matches on its input, outcome and cause alone.
pub fn compare(golden: &Path, actual: &[Line], ignore_messages: bool) -> Result<String> {
    let golden = read_golden(golden)?;
    let printed: Vec<String> = actual.iter().map(Line::to_string).collect();
    let expected = by_message(golden.iter().map(|(l, text)| (l, text.as_str())));
    let actual = by_message(actual.iter().zip(printed.iter().map(String::as_str)));
    let none = Vec::new();
    let mut diff = String::new();
    for m in expected
        .keys()
        .chain(actual.keys())
        .collect::<BTreeSet<_>>()
    {
        let e = expected.get(m).unwrap_or(&none);
        let a = actual.get(m).unwrap_or(&none);
        for k in 0..e.len().max(a.len()) {
            let (e, a) = (e.get(k), a.get(k));
            let found = differences(e.map(|l| l.0), a.map(|l| l.0), ignore_messages);
            if found.is_empty() {
                continue;
            }
            for d in found {
                diff.push_str(&format!("message {m}, record {k}: {d}\n"));
            }
            if let Some((_, text)) = e {
                diff.push_str(&format!("- {text}\n"));
            }
            if let Some((_, text)) = a {
                diff.push_str(&format!("+ {text}\n"));
            }
        }
    }
    Ok(diff)
}

/// The golden file's lines (blank lines skipped), each with its text; an error names
/// the line that is not a JSON object or names no message.
fn read_golden(golden: &Path) -> Result<Vec<(Line, String)>> {
    let text = std::fs::read_to_string(golden)
        .with_context(|| format!("--expect {}", golden.display()))?;
    let mut lines = Vec::new();
    for (i, text) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = || format!("{} line {}", golden.display(), i + 1);
        let line: Line = serde_json::from_str(text).with_context(at)?;
        if line.input().is_none() {
            bail!("{}: no `input` (the message's position, from 0)", at());
        }
        lines.push((line, text.trim().to_owned()));
    }
    Ok(lines)
}

/// Lines by the message they are about (`input`), in their order.
fn by_message<'a>(
    lines: impl Iterator<Item = (&'a Line, &'a str)>,
) -> BTreeMap<u64, Vec<(&'a Line, &'a str)>> {
    let mut out: BTreeMap<u64, Vec<_>> = BTreeMap::new();
    for (line, text) in lines {
        let input = line.input().unwrap_or_default();
        out.entry(input).or_default().push((line, text));
    }
    out
}

/// What differs between the expected and the actual line of one message and record:
/// what happened (a record, filtered, an error) if that differs, else each field.
fn differences(e: Option<&Line>, a: Option<&Line>, ignore_messages: bool) -> Vec<String> {
    let (what_e, what_a) = (what(e), what(a));
    if what_e != what_a {
        return vec![format!("expected {what_e}, got {what_a}")];
    }
    let (Some(e), Some(a)) = (e, a) else {
        return Vec::new();
    };
    let (e, a) = (fields(e, ignore_messages), fields(a, ignore_messages));
    let mut found = Vec::new();
    for name in e.keys().chain(a.keys()).collect::<BTreeSet<_>>() {
        match (e.get(name), a.get(name)) {
            (Some(Field::Bytes(Some(x))), Some(Field::Bytes(Some(y)))) => {
                bytes_differences(name, x, y, &mut found)
            }
            (x, y) if x != y => found.push(format!(
                "{name}: expected {}, got {}",
                show_field(x),
                show_field(y)
            )),
            _ => {}
        }
    }
    found
}

/// What a line says happened: `a record`, `filtered`, `an error (trap)`, or `nothing`
/// where there is no line.
fn what(line: Option<&Line>) -> String {
    let text =
        |name: &str| -> Option<String> { serde_json::from_str(line?.0.get(name)?.get()).ok() };
    match (line, text("outcome"), text("cause")) {
        (None, ..) => "nothing".into(),
        (Some(_), None, _) => "a record".into(),
        (Some(_), Some(outcome), Some(cause)) if outcome == "error" => {
            format!("an error ({cause})")
        }
        (Some(_), Some(outcome), _) => outcome,
    }
}

/// A field as compared: a key or payload as its bytes, however the line spells them
/// (`payload`, `payload_b64` or `payload_json`, so that a golden file written before
/// `payload_json` still matches); any other field as its JSON value (spacing and member
/// order do not matter).
#[derive(PartialEq)]
enum Field {
    Bytes(Option<Vec<u8>>),
    Value(Value),
}

/// A line's fields by name, `payload_json` and `payload_b64` as `payload` (`key_…` as
/// `key`); without the error message when only causes are compared.
fn fields(line: &Line, ignore_messages: bool) -> BTreeMap<String, Field> {
    let mut out = BTreeMap::new();
    for (name, raw) in &line.0 {
        if ignore_messages && name == "message" {
            continue;
        }
        let value: Value = serde_json::from_str(raw.get()).unwrap_or_default();
        let field = match (name.as_str(), value) {
            ("key" | "payload", Value::Null) => Field::Bytes(None),
            ("key" | "payload", Value::String(s)) => Field::Bytes(Some(s.into_bytes())),
            ("key_json" | "payload_json", _) => Field::Bytes(Some(raw.get().as_bytes().to_vec())),
            ("key_b64" | "payload_b64", Value::String(s)) => {
                let decoded = base64::engine::general_purpose::STANDARD.decode(&s);
                decoded.map_or(Field::Value(Value::String(s)), |b| Field::Bytes(Some(b)))
            }
            (_, value) => {
                out.insert(name.clone(), Field::Value(value));
                continue;
            }
        };
        let base = name.split_once('_').map_or(name.as_str(), |(base, _)| base);
        out.insert(base.to_owned(), field);
    }
    out
}

/// Where two keys or payloads differ: member by member when both are JSON documents
/// (`payload.temp: expected 21.5, got "21.5"`), else as a whole.
fn bytes_differences(name: &str, e: &[u8], a: &[u8], found: &mut Vec<String>) {
    if e == a {
        return;
    }
    let doc = |b: &[u8]| {
        serde_json::from_slice::<Value>(b)
            .ok()
            .filter(|v| v.is_object() || v.is_array())
    };
    let (shown_e, shown_a) = (show_bytes(e), show_bytes(a));
    match (doc(e), doc(a)) {
        (Some(x), Some(y)) if x != y => value_differences(name, Some(&x), Some(&y), found),
        (Some(_), Some(_)) => found.push(format!(
            "{name}: the same JSON, written differently: expected {shown_e}, got {shown_a}"
        )),
        _ => found.push(format!("{name}: expected {shown_e}, got {shown_a}")),
    }
}

/// The paths where two JSON values differ (`.member`, `[index]`), each with both sides;
/// `None` is a member or element that one side lacks.
fn value_differences(path: &str, e: Option<&Value>, a: Option<&Value>, found: &mut Vec<String>) {
    match (e, a) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            for key in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                let path = format!("{path}{}", member(key));
                value_differences(&path, x.get(key), y.get(key), found);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for i in 0..x.len().max(y.len()) {
                value_differences(&format!("{path}[{i}]"), x.get(i), y.get(i), found);
            }
        }
        _ if e == a => {}
        _ => found.push(format!("{path}: expected {}, got {}", show(e), show(a))),
    }
}

/// `.name`, or `["a name"]` when the name is not a plain word.
fn member(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    match plain {
        true => format!(".{key}"),
        false => format!("[{}]", Value::from(key)),
    }
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "nothing".to_owned(), Value::to_string)
}

fn show_field(f: Option<&Field>) -> String {
    match f {
        None => "nothing".to_owned(),
        Some(Field::Bytes(None)) => "null".to_owned(),
        Some(Field::Bytes(Some(b))) => show_bytes(b),
        Some(Field::Value(v)) => v.to_string(),
    }
}

/// Bytes as the output spells them: a JSON document as it is, other text as a JSON
/// string, anything else in base64.
fn show_bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(text) => match document(text) {
            Some(doc) => doc.get().to_owned(),
            None => Value::from(text).to_string(),
        },
        Err(_) => format!("{} (base64)", base64_text(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(input: u64, key: Option<&[u8]>, payload: Option<&[u8]>) -> Line {
        let mut line = Line::new(json!({ "input": input }));
        line.bytes("key", key);
        line.bytes("payload", payload);
        line
    }

    fn compare_with(golden: &str, actual: &[Line]) -> String {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), golden).unwrap();
        compare(file.path(), actual, false).unwrap()
    }

    #[test]
    fn a_json_document_prints_as_written_and_other_bytes_as_before() {
        let key = br#"{"tenant":"a","id":7}"#;
        let printed = line(0, Some(key), Some(br#"{"temp": 21.5, "unit": "C"}"#)).to_string();
        assert_eq!(
            printed,
            r#"{"input":0,"key_json":{"tenant":"a","id":7},"payload_json":{"temp": 21.5, "unit": "C"}}"#
        );
        for (payload, field) in [
            (&b"1234"[..], r#""payload":"1234""#), // a scalar reads well as text
            (b" {\"a\":1}", r#""payload":" {\"a\":1}""#), // spaces around it
            (b"{\"a\":\n1}", r#""payload":"{\"a\":\n1}""#), // a line break in it
            (b"{not json}", r#""payload":"{not json}""#),
            (b"\xff", r#""payload_b64":"/w==""#),
        ] {
            let printed = line(0, None, Some(payload)).to_string();
            assert!(printed.contains(field), "{printed}");
        }
    }

    #[test]
    fn a_difference_names_the_message_record_and_member() {
        let actual = [line(0, None, Some(br#"{"temp": "21.5", "tags": ["a"]}"#))];
        let golden = r#"{"input":0,"key":null,"payload_json":{"temp": 21.5, "tags": ["a", "b"]}}"#;
        let diff = compare_with(golden, &actual);
        let expected = [
            r#"message 0, record 0: payload.tags[1]: expected "b", got nothing"#.to_owned(),
            r#"message 0, record 0: payload.temp: expected 21.5, got "21.5""#.to_owned(),
            format!("- {golden}"),
            format!("+ {}", actual[0]),
        ];
        assert_eq!(diff.lines().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn the_same_bytes_match_however_a_golden_line_writes_them() {
        let actual = [line(0, None, Some(br#"{"a": 1}"#))];
        for golden in [
            r#"{"input":0,"key":null,"payload":"{\"a\": 1}"}"#,
            r#"{"input":0,"key":null,"payload_b64":"eyJhIjogMX0="}"#,
            r#"{"key": null, "payload_json": {"a": 1}, "input": 0}"#,
        ] {
            assert_eq!(compare_with(golden, &actual), "", "{golden}");
        }
        let diff = compare_with(r#"{"input":0,"key":null,"payload_json":{"a":1}}"#, &actual);
        let first = diff.lines().next().unwrap();
        assert_eq!(
            first,
            r#"message 0, record 0: payload: the same JSON, written differently: expected {"a":1}, got {"a": 1}"#
        );
    }

    #[test]
    fn a_record_too_many_is_reported_once_not_as_a_shift() {
        let actual = [
            line(0, None, Some(b"x")),
            line(0, None, Some(b"y")),
            line(1, None, Some(b"z")),
        ];
        let golden = [&actual[0], &actual[2]].map(ToString::to_string).join("\n");
        let diff = compare_with(&golden, &actual);
        let expected = [
            "message 0, record 1: expected nothing, got a record".to_owned(),
            format!("+ {}", actual[1]),
        ];
        assert_eq!(diff.lines().collect::<Vec<_>>(), expected);
        let filtered = filtered(1).to_string();
        let diff = compare_with(
            &format!("{}\n{}\n{filtered}", actual[0], actual[1]),
            &actual,
        );
        let first = diff.lines().next().unwrap();
        assert_eq!(
            first,
            "message 1, record 0: expected filtered, got a record"
        );
    }
}
