use rmqtt_kafka_transform::prelude::*;

#[transform]
fn t() -> Outcome {
    Outcome::Drop
}

fn main() {}
