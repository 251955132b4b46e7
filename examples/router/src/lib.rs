//! Routes by content: every message goes to the telemetry topic, alarms also go to the
//! alarm topic (a fan-out of two records).
//!
//! The payload is a JSON object with a `"type"` member. Config:
//! - `telemetry_topic` (default `telemetry`): receives every message, unchanged, with the
//!   entry's `remote.key`.
//! - `alarm_topic` (default `alarms`): also receives messages whose `"type"` is `"alarm"`,
//!   unchanged, keyed by their `"device"` member (a string as is, a number as its JSON
//!   text; without one the record falls back to the entry's `remote.key`).
//!
//! Both topics are checked to be valid Kafka topic names when the plugin starts. Both
//! records borrow the same payload: nothing is copied. Invalid JSON, or JSON that is not
//! an object, is an error. A missing or non-string `"type"` is simply not an alarm.

use rmqtt_kafka_transform::prelude::*;
use rmqtt_kafka_transform::serde_json::Value;

fn topics(cfg: &Config) -> (&str, &str) {
    (
        cfg.get_or("telemetry_topic", "telemetry"),
        cfg.get_or("alarm_topic", "alarms"),
    )
}

fn check_config(cfg: &Config) -> Result<(), Error> {
    cfg.reject_unknown(&["telemetry_topic", "alarm_topic"])?;
    let (telemetry, alarms) = topics(cfg);
    Record::null_payload().topic(telemetry).validate()?;
    Record::null_payload().topic(alarms).validate()
}

#[transform(init = check_config)]
fn router(msg: &Message, cfg: &Config) -> Result<Outcome, Error> {
    let (telemetry_topic, alarm_topic) = topics(cfg);
    // Reads only the members it needs; the rest of the payload is skipped, not built.
    let kind = msg.json_field::<Value>("type")?;
    let telemetry = Record::new(msg.payload()).topic(telemetry_topic);
    if kind.as_ref().and_then(Value::as_str) != Some("alarm") {
        return Ok(telemetry.into());
    }
    let mut alarm = Record::new(msg.payload()).topic(alarm_topic);
    match msg.json_field::<Value>("device")? {
        Some(Value::String(device)) => alarm = alarm.key(device),
        Some(Value::Number(device)) => alarm = alarm.key(device.to_string()),
        _ => {}
    }
    Ok(Outcome::Records(vec![telemetry, alarm]))
}

#[cfg(test)]
mod tests {
    use rmqtt_kafka_transform::TestMessage;

    use super::*;

    /// `(topic, key)` of each record.
    fn routes(payload: &str, cfg: &Config) -> Result<Vec<(String, Option<String>)>, String> {
        let t = TestMessage::new("plant/7/events", payload);
        let out = router(&t.message(), cfg).map_err(|e| e.to_string())?;
        Ok(out
            .records()
            .iter()
            .inspect(|r| assert_eq!(r.payload(), Some(payload.as_bytes())))
            .map(|r| {
                (
                    r.get_topic().unwrap().to_owned(),
                    r.get_key().map(|k| String::from_utf8(k.to_vec()).unwrap()),
                )
            })
            .collect())
    }

    fn route(topic: &str, key: Option<&str>) -> (String, Option<String>) {
        (topic.to_owned(), key.map(str::to_owned))
    }

    #[test]
    fn telemetry_goes_to_one_topic() {
        let cfg = Config::new();
        assert_eq!(
            routes(r#"{"type":"reading","device":"d1"}"#, &cfg),
            Ok(vec![route("telemetry", None)])
        );
        assert_eq!(
            routes(r#"{"device":"d1"}"#, &cfg),
            Ok(vec![route("telemetry", None)])
        );
        assert_eq!(
            routes(r#"{"type":["alarm"]}"#, &cfg),
            Ok(vec![route("telemetry", None)])
        );
    }

    #[test]
    fn alarms_fan_out_to_both_topics() {
        let cfg = Config::new();
        let both = vec![route("telemetry", None), route("alarms", Some("d1"))];
        assert_eq!(
            routes(r#"{"type":"alarm","device":"d1","code":17}"#, &cfg),
            Ok(both)
        );
        let numeric = vec![route("telemetry", None), route("alarms", Some("42"))];
        assert_eq!(routes(r#"{"type":"alarm","device":42}"#, &cfg), Ok(numeric));
        let keyless = vec![route("telemetry", None), route("alarms", None)];
        assert_eq!(routes(r#"{"type":"alarm"}"#, &cfg), Ok(keyless));
    }

    #[test]
    fn configured_topics() {
        let cfg = Config::from_pairs([
            ("telemetry_topic", "plant.telemetry"),
            ("alarm_topic", "plant.alarms"),
        ]);
        let both = vec![
            route("plant.telemetry", None),
            route("plant.alarms", Some("d1")),
        ];
        assert_eq!(routes(r#"{"type":"alarm","device":"d1"}"#, &cfg), Ok(both));
        assert!(check_config(&cfg).is_ok());
        let bad = Config::from_pairs([("alarm_topic", "plant/alarms")]);
        assert!(check_config(&bad)
            .unwrap_err()
            .to_string()
            .contains("not a valid Kafka topic name"));
    }

    #[test]
    fn both_records_borrow_the_payload() {
        let t = TestMessage::new("t", r#"{"type":"alarm","device":"d1"}"#);
        let cfg = Config::new();
        let out = router(&t.message(), &cfg).unwrap();
        assert!(out.records().iter().all(Record::payload_is_borrowed));
    }

    #[test]
    fn invalid_json_is_an_error() {
        let cfg = Config::new();
        assert!(routes("{\"type\":", &cfg)
            .unwrap_err()
            .starts_with("invalid JSON payload: EOF while parsing"));
        assert_eq!(
            routes("\"alarm\"", &cfg).unwrap_err(),
            "payload is not a JSON object"
        );
    }
}
