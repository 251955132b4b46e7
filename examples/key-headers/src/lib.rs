//! Keys each record by a JSON field and carries MQTT metadata as Kafka headers.
//!
//! The payload is a JSON object and is forwarded unchanged (borrowed, no copy). Config:
//! - `key_field` (default `device_id`): the member whose value becomes the record key; a
//!   string is used as is, a number as its JSON text, as written (`42`, `1.50`).
//! - `topic_headers` (default none): `name:level,name:level` — each adds header `name`
//!   with the 0-based MQTT topic level `level`; for `site:1,line:2` and the topic
//!   `sensors/berlin/line1/telemetry`, `site=berlin` and `line=line1`. A level the topic
//!   does not have adds no header. Checked when the plugin starts.
//!
//! The config is parsed once per instance, into `Settings` (the init function's state).
//!
//! Headers: the topic headers, in config order. The host already adds the standard
//! headers, every MQTT v5 user property among them, ahead of a module's (docs/abi.md,
//! "Headers"), so a module that copied the user properties would send each twice.
//!
//! Invalid JSON, a payload that is not an object, or a missing key field (or one that is
//! neither a string nor a number) is an error.

use std::borrow::Cow;

use rmqtt_kafka_transform::bail;
use rmqtt_kafka_transform::prelude::*;
use rmqtt_kafka_transform::serde_json::{self, value::RawValue};

/// The config, parsed once per instance.
struct Settings {
    key_field: String,
    /// `(header name, topic level)` of each `topic_headers` item, in config order.
    topic_headers: Vec<(String, usize)>,
}

/// Parses `topic_headers` (`site:1,line:2`).
fn topic_headers(spec: &str) -> Result<Vec<(String, usize)>, Error> {
    spec.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let parsed = item.split_once(':').and_then(|(name, level)| {
                let name = name.trim();
                Some((name.to_owned(), level.trim().parse().ok()?)).filter(|_| !name.is_empty())
            });
            parsed.ok_or_else(|| {
                Error::msg(format!(
                    "config key `topic_headers`: `{item}` is not `name:level` (e.g. `site:1`)"
                ))
            })
        })
        .collect()
}

fn settings(cfg: &Config) -> Result<Settings, Error> {
    cfg.reject_unknown(&["key_field", "topic_headers"])?;
    Ok(Settings {
        key_field: cfg.get_or("key_field", "device_id").to_owned(),
        topic_headers: topic_headers(cfg.get("topic_headers").unwrap_or_default())?,
    })
}

/// The key field's value as key bytes: a string's contents, borrowed from the payload
/// unless it has escapes, or a number's JSON text. Nothing is allocated for the common
/// case, which matters in a module called for every message.
fn key_text<'a>(raw: &'a RawValue, key_field: &str) -> Result<Cow<'a, str>, Error> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') if !text.contains('\\') => Ok(Cow::Borrowed(&text[1..text.len() - 1])),
        Some(b'"') => serde_json::from_str(text)
            .map(Cow::Owned)
            .map_err(|e| Error::msg(format!("key field `{key_field}`: {e}"))),
        Some(b'-' | b'0'..=b'9') => Ok(Cow::Borrowed(text)),
        _ => bail!("key field `{key_field}` must be a string or a number, not {text}"),
    }
}

#[transform(init = settings)]
fn key_headers(msg: &Message, s: &Settings) -> Result<Outcome, Error> {
    let key_field = s.key_field.as_str();
    // Reads only the key field, as its JSON text; the rest of the payload is skipped.
    let key = match msg.json_field::<&RawValue>(key_field)? {
        Some(raw) => key_text(raw, key_field)?,
        None => bail!("key field `{key_field}` is missing"),
    };

    let mut record = Record::new(msg.payload()).key(key);
    for (name, level) in &s.topic_headers {
        if let Some(value) = msg.topic_level(*level) {
            record = record.header(name.as_str(), value);
        }
    }
    Ok(record.into())
}

#[cfg(test)]
mod tests {
    use rmqtt_kafka_transform::TestMessage;

    use super::*;

    const TOPIC: &str = "sensors/berlin/line1/telemetry";

    fn headers(record: &Record) -> Vec<(String, String)> {
        record
            .headers()
            .map(|(n, v)| {
                (
                    n.to_owned(),
                    String::from_utf8(v.unwrap().to_vec()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn keys_by_the_field_and_maps_levels_but_not_properties() {
        let cfg = Config::from_pairs([("topic_headers", "site:1, line:2")]);
        let t = TestMessage::new(TOPIC, r#"{"device_id":"d1","value":42}"#)
            .user_property("tenant", "acme")
            .user_property("tag", "a")
            .user_property("tag", "b");
        let (msg, s) = (t.message(), settings(&cfg).unwrap());
        let out = key_headers(&msg, &s).unwrap();
        let [record] = out.records() else {
            panic!("{out:?}")
        };
        assert_eq!(record.get_key(), Some(&b"d1"[..]));
        assert_eq!(record.payload(), Some(msg.payload()));
        assert!(record.payload_is_borrowed());
        // The user properties are the host's to add.
        let expected = [("site", "berlin"), ("line", "line1")];
        assert_eq!(
            headers(record),
            expected.map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn numeric_keys_custom_field_and_v3_messages() {
        let cfg = Config::from_pairs([("key_field", "serial")]);
        let t = TestMessage::new(TOPIC, r#"{"serial":1234,"value":1}"#);
        let (msg, s) = (t.message(), settings(&cfg).unwrap());
        let out = key_headers(&msg, &s).unwrap();
        assert_eq!(out.records()[0].get_key(), Some(&b"1234"[..]));
        assert_eq!(out.records()[0].headers().count(), 0);
    }

    #[test]
    fn keys_keep_the_json_text_of_numbers_and_unescape_strings() {
        let s = settings(&Config::new()).unwrap();
        for (payload, key) in [
            (r#"{"device_id":1.50}"#, "1.50"),
            (r#"{"device_id": -7 }"#, "-7"),
            (r#"{"device_id":"d\u002d1"}"#, "d-1"),
            (r#"{"device_id":"a\"b"}"#, "a\"b"),
        ] {
            let t = TestMessage::new(TOPIC, payload);
            let out = key_headers(&t.message(), &s).unwrap();
            assert_eq!(
                out.records()[0].get_key(),
                Some(key.as_bytes()),
                "{payload}"
            );
        }
    }

    #[test]
    fn missing_topic_levels_add_no_header() {
        let cfg = Config::from_pairs([("topic_headers", "site:1,deep:9")]);
        let t = TestMessage::new("a/b", r#"{"device_id":"d"}"#);
        let (msg, s) = (t.message(), settings(&cfg).unwrap());
        let out = key_headers(&msg, &s).unwrap();
        assert_eq!(
            headers(&out.records()[0]),
            [("site".to_owned(), "b".to_owned())]
        );
    }

    #[test]
    fn errors() {
        let s = settings(&Config::new()).unwrap();
        let run = |payload: &str| {
            let t = TestMessage::new(TOPIC, payload);
            key_headers(&t.message(), &s)
                .map(drop)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(run(r#"{"value":1}"#), "key field `device_id` is missing");
        assert_eq!(
            run(r#"{"device_id":null}"#),
            "key field `device_id` must be a string or a number, not null"
        );
        assert_eq!(run("42"), "payload is not a JSON object");
        assert!(run("not json").starts_with("invalid JSON payload"));
    }

    #[test]
    fn topic_headers_config_is_checked() {
        for bad in ["site", "site:x", ":1", "site:-1"] {
            let err = settings(&Config::from_pairs([("topic_headers", bad)]))
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.starts_with("config key `topic_headers`"),
                "{bad}: {err}"
            );
        }
        assert!(settings(&Config::from_pairs([("topic_headers", "")])).is_ok());
        let typo = settings(&Config::from_pairs([("topic_header", "site:1")])).err();
        assert!(typo
            .unwrap()
            .to_string()
            .contains("unknown config key `topic_header`"));
    }
}
