use rmqtt_kafka_transform::prelude::*;

struct Settings {
    key: String,
}

fn parse(cfg: &Config) -> Result<Settings, Error> {
    Ok(Settings {
        key: cfg.require("key")?,
    })
}

// The records borrow from the state, which lives as long as the instance; but `'static`
// is more than the host lends for a call.
#[transform(init = parse)]
fn keyed(msg: &Message, s: &Settings) -> Outcome<'static> {
    Record::new(msg.payload()).key(s.key.as_str()).into()
}

fn main() {}
