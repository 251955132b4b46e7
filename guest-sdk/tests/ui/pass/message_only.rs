use rmqtt_kafka_transform::prelude::*;
use rmqtt_kafka_transform::TestMessage;

/// Doc comments and attributes stay on the function.
#[transform]
#[inline]
fn passthrough(msg: &Message) -> Outcome {
    Record::new(msg.payload()).into()
}

fn main() {
    // Still a plain function, callable with a temporary message.
    let t = TestMessage::new("a/b", "x");
    let out = passthrough(&t.message());
    assert_eq!(out.records()[0].payload(), Some(&b"x"[..]));
}
