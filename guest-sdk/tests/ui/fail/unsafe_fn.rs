use rmqtt_kafka_transform::prelude::*;

#[transform]
unsafe fn t(_msg: &Message) -> Outcome {
    Outcome::Drop
}

fn main() {}
