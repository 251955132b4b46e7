use rmqtt_kafka_transform::prelude::*;

/// The config, parsed once per instance.
struct Settings {
    threshold: f64,
    topic: String,
}

fn parse(cfg: &Config) -> Result<Settings, Error> {
    Ok(Settings {
        threshold: cfg.require("threshold")?,
        topic: cfg.get_or("topic", "readings").to_owned(),
    })
}

#[transform(init = parse)]
fn filter(msg: &Message, s: &Settings) -> Result<Outcome, Error> {
    let value: f64 = msg.payload_str()?.parse()?;
    if value < s.threshold {
        return Ok(Outcome::Drop);
    }
    // Records may borrow from the state, which lives as long as the instance.
    Ok(Record::new(msg.payload()).topic(s.topic.as_str()).into())
}

fn main() {
    let s = parse(&Config::from_pairs([("threshold", "3")])).unwrap();
    let t = rmqtt_kafka_transform::TestMessage::new("t", "5");
    let out = filter(&t.message(), &s).unwrap();
    assert_eq!(out.records()[0].get_topic(), Some("readings"));
}
