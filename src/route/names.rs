//! The configured names an entry routes with: its MQTT topic filter and checked Kafka
//! topic names.

use std::str::FromStr;

/// A validated MQTT topic filter (`local.topic_filter`). The routing tree matches it;
/// this type only checks it, with messages that say what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFilter {
    raw: String,
}

impl TopicFilter {
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl FromStr for TopicFilter {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("the topic filter is empty".into());
        }
        if raw.contains('\0') {
            return Err("a topic filter cannot contain NUL".into());
        }
        let levels = raw.split('/').count();
        for (i, level) in raw.split('/').enumerate() {
            match level {
                "#" if i + 1 < levels => {
                    return Err(format!(
                        "invalid topic filter \"{raw}\": '#' must be the last level"
                    ))
                }
                "#" | "+" => {}
                l if l.contains(['#', '+']) => {
                    return Err(format!(
                        "invalid topic filter \"{raw}\": '{}' must occupy a whole level",
                        if l.contains('#') { '#' } else { '+' }
                    ))
                }
                _ => {}
            }
        }
        // The broker's own parser has the last word (a `$` level, say, may only come first).
        rmqtt::topic::Topic::from_str(raw)
            .map_err(|e| format!("invalid topic filter \"{raw}\": {e}"))?;
        Ok(TopicFilter {
            raw: raw.to_owned(),
        })
    }
}

/// Kafka's topic naming rules, as the transform ABI states them for host and guest alike.
pub fn check_kafka_topic(name: &str) -> Result<(), String> {
    abi::rules::check_topic(name).map_err(|e| e.to_string())
}

/// A Kafka topic name that was checked at load (`transform.dead_letter_topic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaTopic(String);

impl KafkaTopic {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KafkaTopic {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        check_kafka_topic(s).map(|()| KafkaTopic(s.to_owned()))
    }
}

text_value!(TopicFilter, KafkaTopic);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_filters_are_refused() {
        for bad in ["", "a/#/b", "a/b#", "a+/b", "x\0y", "a/$b"] {
            assert!(bad.parse::<TopicFilter>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn kafka_topic_rules() {
        assert!(check_kafka_topic("telemetry.v1_x-y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(250)] {
            assert!(check_kafka_topic(bad).is_err(), "{bad:?}");
        }
    }
}
