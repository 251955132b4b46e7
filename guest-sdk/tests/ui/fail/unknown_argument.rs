use rmqtt_kafka_transform::prelude::*;

#[transform(threshold = 3)]
fn t(_msg: &Message) -> Outcome {
    Outcome::Drop
}

fn main() {}
