use rmqtt_kafka_transform::prelude::*;

#[transform]
fn t(msg: &Message) -> Result<Record, Error> {
    Ok(Record::new(msg.payload()))
}

fn main() {}
