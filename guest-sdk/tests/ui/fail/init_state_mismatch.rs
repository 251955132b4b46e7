use rmqtt_kafka_transform::prelude::*;

struct Settings {
    threshold: f64,
}

fn parse(cfg: &Config) -> Result<f64, Error> {
    cfg.require("threshold")
}

#[transform(init = parse)]
fn filter(msg: &Message, s: &Settings) -> Result<Outcome, Error> {
    let value: f64 = msg.payload_str()?.parse()?;
    Ok(if value < s.threshold { Outcome::Drop } else { Record::new(msg.payload()).into() })
}

fn main() {}
