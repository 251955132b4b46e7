use rmqtt_kafka_transform::prelude::*;

#[transform]
fn rmqtt_transform(_msg: &Message) -> Outcome {
    Outcome::Drop
}

fn main() {}
