use rmqtt_kafka_transform::prelude::*;

#[transform]
fn t(msg: &Message) {
    let _ = msg;
}

fn main() {}
