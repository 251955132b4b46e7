use rmqtt_kafka_transform::prelude::*;

#[transform]
async fn t(_msg: &Message) -> Outcome {
    Record::new(msg.payload()).into()
}

fn main() {}
