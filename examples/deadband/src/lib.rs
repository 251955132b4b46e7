//! Forwards a reading only when it moved by at least `min_change` since the last one
//! forwarded on its topic: a deadband filter, with the last value in the entry's state
//! store, so every instance of the pool sees it.
//!
//! The payload is a JSON object. Config:
//! - `min_change` (required): a finite, non-negative number.
//! - `field` (default `value`): the member of the object to compare.
//!
//! The first reading of a topic is forwarded. A forwarded reading becomes the topic's
//! last value (state key: the topic, value: an `f64` in little-endian bytes); a dropped one
//! does not, so a slow drift is forwarded once it adds up to `min_change`. Invalid JSON,
//! a missing or non-numeric field is an error, handled by the entry's
//! `transform.on_error`; so is a full state store (`transform.state_max_keys`).

use rmqtt_kafka_transform::prelude::*;
use rmqtt_kafka_transform::{bail, serde_json::Value, state};

/// The config, parsed once per instance when the plugin starts.
struct Settings {
    min_change: f64,
    field: String,
}

fn settings(cfg: &Config) -> Result<Settings, Error> {
    cfg.reject_unknown(&["min_change", "field"])?;
    let min_change: f64 = cfg.require("min_change")?;
    if !min_change.is_finite() || min_change < 0.0 {
        bail!(
            "config key `min_change` must be a finite number of at least 0, not {:?}",
            cfg.get_or("min_change", "")
        );
    }
    let field = cfg.get_or("field", "value").to_owned();
    Ok(Settings { min_change, field })
}

#[transform(init = settings)]
fn deadband(msg: &Message, s: &Settings) -> Result<Outcome, Error> {
    let field = s.field.as_str();
    let value = match msg.json_field::<Value>(field)? {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(other) => bail!("field `{field}` is not a number: {other}"),
        None => bail!("field `{field}` is missing"),
    };
    let topic = msg.topic();
    if last_value(topic).is_some_and(|last| (value - last).abs() < s.min_change) {
        return Ok(Outcome::Drop);
    }
    state::put(topic, value.to_le_bytes())?;
    Ok(Record::new(msg.payload()).into())
}

/// The last value forwarded on `topic`; `None` before the first.
fn last_value(topic: &str) -> Option<f64> {
    let mut bytes = [0; 8];
    (state::read(topic, &mut bytes)? == 8).then(|| f64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use rmqtt_kafka_transform::TestMessage;

    use super::*;

    /// Whether the reading on `topic` was forwarded.
    fn forwarded(topic: &str, payload: &str, s: &Settings) -> Result<bool, String> {
        let t = TestMessage::new(topic, payload);
        let out = deadband(&t.message(), s).map_err(|e| e.to_string())?;
        Ok(!out.is_drop())
    }

    #[test]
    fn forwards_the_first_reading_and_moves_of_min_change() {
        let s = settings(&Config::from_pairs([("min_change", "0.5")])).unwrap();
        assert_eq!(forwarded("a", r#"{"value":20}"#, &s), Ok(true));
        assert_eq!(forwarded("a", r#"{"value":20.4}"#, &s), Ok(false));
        assert_eq!(forwarded("a", r#"{"value":19.6}"#, &s), Ok(false));
        assert_eq!(forwarded("a", r#"{"value":20.5}"#, &s), Ok(true));
        assert_eq!(
            forwarded("a", r#"{"value":20.9}"#, &s),
            Ok(false),
            "20.5 is the last now"
        );
    }

    #[test]
    fn topics_are_separate_and_drops_do_not_move_the_last_value() {
        let s = settings(&Config::from_pairs([("min_change", "1"), ("field", "t")])).unwrap();
        assert_eq!(forwarded("x", r#"{"t":0}"#, &s), Ok(true));
        assert_eq!(forwarded("y", r#"{"t":0.2}"#, &s), Ok(true));
        for step in [0.4, 0.8] {
            assert_eq!(forwarded("x", &format!(r#"{{"t":{step}}}"#), &s), Ok(false));
        }
        assert_eq!(
            forwarded("x", r#"{"t":1.0}"#, &s),
            Ok(true),
            "the drift added up"
        );
    }

    #[test]
    fn bad_payloads_and_config_are_errors() {
        let s = settings(&Config::from_pairs([("min_change", "1")])).unwrap();
        let err = forwarded("a", r#"{"value":"1"}"#, &s).unwrap_err();
        assert_eq!(err, r#"field `value` is not a number: "1""#);
        assert_eq!(
            forwarded("a", "{}", &s).unwrap_err(),
            "field `value` is missing"
        );
        let bad =
            |pairs: &[(&str, &str)]| settings(&Config::from_pairs(pairs.iter().copied())).is_err();
        assert!(bad(&[]));
        assert!(bad(&[("min_change", "-1")]));
        assert!(bad(&[("min_change", "1"), ("min_chnage", "2")]));
    }
}
