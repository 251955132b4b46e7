use rmqtt_kafka_transform::prelude::*;

#[transform]
fn t(_payload: &[u8]) -> Outcome {
    Outcome::Drop
}

fn main() {}
