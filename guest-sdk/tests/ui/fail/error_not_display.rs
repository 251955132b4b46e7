use rmqtt_kafka_transform::prelude::*;

#[transform]
fn t(msg: &Message) -> Result<Outcome, Vec<u8>> {
    Err(msg.payload().to_vec())
}

fn main() {}
