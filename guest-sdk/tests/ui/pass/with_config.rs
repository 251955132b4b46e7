use rmqtt_kafka_transform::prelude::*;
use rmqtt_kafka_transform::TestMessage;

// Records may borrow from the message and from the config.
#[transform]
pub fn route(msg: &Message, cfg: &Config) -> Result<Outcome, Error> {
    let topic = cfg.get_or("topic", "default");
    Ok(Record::new(msg.payload()).topic(topic).key(msg.client_id()).into())
}

fn main() {
    let cfg = Config::from_pairs([("topic", "t1")]);
    let t = TestMessage::new("a", "x");
    let out = route(&t.message(), &cfg).unwrap();
    assert_eq!(out.records()[0].get_topic(), Some("t1"));
}
