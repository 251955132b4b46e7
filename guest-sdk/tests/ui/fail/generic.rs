use rmqtt_kafka_transform::prelude::*;

#[transform]
fn t<T: Default>(msg: &Message) -> Outcome {
    Record::new(msg.payload()).into()
}

fn main() {}
