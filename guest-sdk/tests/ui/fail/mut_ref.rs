use rmqtt_kafka_transform::prelude::*;

#[transform]
fn t(_msg: &Message, _cfg: &mut Config) -> Outcome {
    Outcome::Drop
}

fn main() {}
