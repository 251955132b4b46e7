use rmqtt_kafka_transform::prelude::*;

#[transform]
fn t(msg: &Message) -> Record {
    Record::new(msg.payload())
}

fn main() {}
