//! What a record's delivery report must know, packed into librdkafka's opaque pointer so
//! that a record costs no allocation: bit 0 dead letter, bit 1 has a slot, bits 2..12 the
//! entry among its producers' ledgers, bits 12..32 the slot, bits 32..64 the receive time.

use crate::config::{MAX_INFLIGHT_MESSAGES, MAX_SHARED_ENTRIES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// A dead-letter record: counted as `dead_lettered` once delivered.
    pub dead_letter: bool,
    /// Whose record it is: the ledger's position among those its producers report to
    /// (always 0 for an entry's own producers).
    pub ledger: usize,
    /// Its slot in the bridge's [`Acks`](super::acks::Acks), if something needs to hear
    /// of its report: a publish waiting for Kafka, or its spool.
    pub slot: Option<usize>,
    /// When the broker received the publish, in ms since the epoch, wrapping at 32 bits
    /// (49 days): enough for the delivery latency, which is a difference.
    pub received_ms: u32,
}

const LEDGER_BITS: u32 = 10;
const SLOT_BITS: u32 = 20;

// The configuration's limits are what the tag has room for: every record in flight
// holds a slot at most, and a slot is below `max_inflight_messages`.
const _: () = assert!(MAX_SHARED_ENTRIES == 1 << LEDGER_BITS);
const _: () = assert!(MAX_INFLIGHT_MESSAGES == 1 << SLOT_BITS);
// A tag needs the whole 64 bits of the opaque pointer.
const _: () = assert!(usize::BITS >= 64);

impl Tag {
    pub fn encode(self) -> usize {
        debug_assert!(self.ledger < MAX_SHARED_ENTRIES);
        let mut v = usize::from(self.dead_letter) | (self.ledger & (MAX_SHARED_ENTRIES - 1)) << 2;
        if let Some(slot) = self.slot {
            debug_assert!(slot < MAX_INFLIGHT_MESSAGES);
            v |= 2 | ((slot & (MAX_INFLIGHT_MESSAGES - 1)) << 12);
        }
        v | ((self.received_ms as usize) << 32)
    }

    pub fn decode(v: usize) -> Tag {
        Tag {
            dead_letter: v & 1 != 0,
            ledger: (v >> 2) & (MAX_SHARED_ENTRIES - 1),
            slot: (v & 2 != 0).then_some((v >> 12) & (MAX_INFLIGHT_MESSAGES - 1)),
            received_ms: (v >> 32) as u32,
        }
    }
}

/// Milliseconds since the epoch, wrapped to a tag's 32 bits.
pub fn wrapped_ms(ms: i64) -> u32 {
    ms as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_roundtrip() {
        for (dead_letter, ledger, slot, received_ms) in [
            (false, 0, None, 0),
            (true, 7, None, u32::MAX),
            (false, 0, Some(0), 1),
            (true, MAX_SHARED_ENTRIES - 1, Some(123_456), 0x8000_0000),
            (false, 513, Some(MAX_INFLIGHT_MESSAGES - 1), u32::MAX),
        ] {
            let tag = Tag {
                dead_letter,
                ledger,
                slot,
                received_ms,
            };
            assert_eq!(Tag::decode(tag.encode()), tag);
        }
    }

    #[test]
    fn latency_survives_the_32_bit_wrap() {
        let received = wrapped_ms((1 << 32) - 5);
        let acked = wrapped_ms((1 << 32) + 20);
        assert_eq!(acked.wrapping_sub(received), 25);
    }
}
