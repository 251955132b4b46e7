//! Drops readings below a threshold and forwards the rest unchanged.
//!
//! The payload is a JSON object. Config:
//! - `threshold` (required): a number; checked when the plugin starts.
//! - `field` (default `value`): the member of the object to compare.
//!
//! The config is parsed once per instance, into `Settings` (the init function's state).
//!
//! `field < threshold` drops the message; otherwise the payload is forwarded as is
//! (borrowed, no copy). Invalid JSON, a payload that is not an object, a missing field or
//! a non-numeric field is an error, handled by the entry's `transform.on_error`.

use rmqtt_kafka_transform::prelude::*;
use rmqtt_kafka_transform::{bail, serde_json::Value};

/// The config, parsed once per instance when the plugin starts.
struct Settings {
    threshold: f64,
    field: String,
}

/// Runs once per instance at plugin start: a missing or invalid `threshold` refuses the
/// start instead of failing every message.
fn settings(cfg: &Config) -> Result<Settings, Error> {
    cfg.reject_unknown(&["threshold", "field"])?;
    let threshold: f64 = cfg.require("threshold")?;
    if !threshold.is_finite() {
        bail!(
            "config key `threshold` must be a finite number, not {:?}",
            cfg.get_or("threshold", "")
        );
    }
    let field = cfg.get_or("field", "value").to_owned();
    Ok(Settings { threshold, field })
}

#[transform(init = settings)]
fn threshold_filter(msg: &Message, s: &Settings) -> Result<Outcome, Error> {
    let field = s.field.as_str();
    // Reads only `field`; the rest of the payload is skipped, not built.
    let value = match msg.json_field::<Value>(field)? {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(other) => bail!("field `{field}` is not a number: {other}"),
        None => bail!("field `{field}` is missing"),
    };
    if value < s.threshold {
        Ok(Outcome::Drop)
    } else {
        Ok(Record::new(msg.payload()).into())
    }
}

#[cfg(test)]
mod tests {
    use rmqtt_kafka_transform::TestMessage;

    use super::*;

    /// `Ok(None)`: dropped; `Ok(Some(payload))`: forwarded; `Err(message)`: failed.
    fn run(payload: &str, cfg: &Config) -> Result<Option<String>, String> {
        let t = TestMessage::new("sensors/berlin/line1/telemetry", payload);
        let s = settings(cfg).unwrap();
        let out = threshold_filter(&t.message(), &s).map_err(|e| e.to_string())?;
        match out.records() {
            [] => Ok(None),
            [record] => Ok(record.payload_str().map(String::from)),
            more => panic!("expected at most one record, got {more:?}"),
        }
    }

    #[test]
    fn drops_below_and_forwards_at_or_above() {
        let cfg = Config::from_pairs([("threshold", "30")]);
        assert_eq!(run(r#"{"value":29.9}"#, &cfg), Ok(None));
        assert_eq!(
            run(r#"{"value":30,"unit":"C"}"#, &cfg),
            Ok(Some(r#"{"value":30,"unit":"C"}"#.into()))
        );
        assert!(run(r#"{"value":1e3}"#, &cfg).unwrap().is_some());
        assert_eq!(run(r#"{"value":-5}"#, &cfg), Ok(None));
    }

    #[test]
    fn forwards_the_payload_without_copying_it() {
        let t = TestMessage::new("t", r#"{"value":31}"#);
        let s = settings(&Config::from_pairs([("threshold", "30")])).unwrap();
        let out = threshold_filter(&t.message(), &s).unwrap();
        assert!(out.records()[0].payload_is_borrowed());
    }

    #[test]
    fn custom_field() {
        let cfg = Config::from_pairs([("threshold", "-10.5"), ("field", "temp")]);
        assert_eq!(run(r#"{"temp":-11,"value":100}"#, &cfg), Ok(None));
        assert!(run(r#"{"temp":-10.5}"#, &cfg).unwrap().is_some());
    }

    #[test]
    fn bad_payloads_are_errors() {
        let cfg = Config::from_pairs([("threshold", "30")]);
        assert_eq!(
            run(r#"{"other":1}"#, &cfg).unwrap_err(),
            "field `value` is missing"
        );
        assert_eq!(
            run(r#"{"value":"42"}"#, &cfg).unwrap_err(),
            r#"field `value` is not a number: "42""#
        );
        assert_eq!(
            run("[1,2]", &cfg).unwrap_err(),
            "payload is not a JSON object"
        );
        let err = run("{oops", &cfg).unwrap_err();
        assert!(
            err.starts_with("invalid JSON payload: key must be a string"),
            "{err}"
        );
    }

    #[test]
    fn config_is_checked_at_startup() {
        let err = |cfg: &Config| settings(cfg).err().map(|e| e.to_string());
        assert_eq!(
            err(&Config::new()).as_deref(),
            Some("missing required config key `threshold`")
        );
        let err = err(&Config::from_pairs([("threshold", "high")])).unwrap();
        assert_eq!(
            err,
            "config key `threshold`: invalid value \"high\": invalid float literal"
        );
        assert!(settings(&Config::from_pairs([("threshold", "NaN")])).is_err());
        assert!(settings(&Config::from_pairs([("threshold", "30")])).is_ok());
    }
}
