use rmqtt_kafka_transform::prelude::*;

struct Settings {
    key: String,
}

fn parse(cfg: &Config) -> Result<Settings, Error> {
    Ok(Settings {
        key: cfg.require("key")?,
    })
}

#[transform(init = parse)]
fn keyed(msg: &Message, s: &'static Settings) -> Result<Outcome, Error> {
    Ok(Record::new(msg.payload()).key(s.key.as_str()).into())
}

fn main() {}
