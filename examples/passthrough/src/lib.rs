//! The identity transform: every message becomes one record with the same payload.
//!
//! The record borrows the payload from the input buffer, so nothing is copied inside the
//! module; topic, key and partition come from the entry's `remote.*` settings. It is the
//! baseline for measuring the cost of running a transform at all.

use rmqtt_kafka_transform::prelude::*;

#[transform]
fn passthrough(msg: &Message) -> Outcome {
    Record::new(msg.payload()).into()
}

#[cfg(test)]
mod tests {
    use rmqtt_kafka_transform::TestMessage;

    use super::*;

    #[test]
    fn forwards_the_payload_unchanged() {
        let t = TestMessage::new("sensors/berlin/line1/telemetry", r#"{"value":42}"#);
        let out = passthrough(&t.message());
        let [record] = out.records() else {
            panic!("expected one record, got {out:?}")
        };
        assert_eq!(record.payload(), Some(&br#"{"value":42}"#[..]));
        assert!(
            record.payload_is_borrowed(),
            "the payload should not be copied"
        );
        assert_eq!(
            (
                record.get_topic(),
                record.get_key(),
                record.headers().count()
            ),
            (None, None, 0)
        );
    }

    #[test]
    fn empty_and_binary_payloads() {
        for payload in [&b""[..], &[0xff, 0x00, 0x80]] {
            let t = TestMessage::new("t", payload);
            assert_eq!(
                passthrough(&t.message()).records()[0].payload(),
                Some(payload)
            );
        }
    }
}
