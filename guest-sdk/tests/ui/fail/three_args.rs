use rmqtt_kafka_transform::prelude::*;

#[transform]
fn t(_msg: &Message, _cfg: &Config, _extra: u32) -> Outcome {
    Outcome::Drop
}

fn main() {}
