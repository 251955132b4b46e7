//! A record's value and key encoded against the entry's schemas (`remote.value_schema`,
//! `remote.key_schema`) on its way to the ledger. A record without a value or key (a
//! tombstone, an unkeyed record) keeps it absent.

use crate::observe::SchemaFailure;
use crate::record::Record;
use crate::schema::{EntrySchemas, SchemaSlot};

/// Why a record was not encoded: which setting, the kind of failure, and the message
/// (for a mismatch, `$.temperature: expected double, got string`).
pub struct NotEncoded {
    pub field: &'static str,
    pub failure: SchemaFailure,
    pub message: String,
}

/// `record` with its value and key encoded into `value` and `key`. (A new record: a
/// record's lifetime cannot shrink to the buffers', so its headers are copied.)
pub fn encoded<'a>(
    schemas: &EntrySchemas,
    record: &'a Record<'_>,
    value: &'a mut Vec<u8>,
    key: &'a mut Vec<u8>,
) -> Result<Record<'a>, NotEncoded> {
    let mut payload = record.payload;
    if let (Some(slot), Some(p)) = (&schemas.value, payload) {
        encode(slot, p, value)?;
        payload = Some(value);
    }
    let mut record_key = record.key;
    if let (Some(slot), Some(k)) = (&schemas.key, record_key) {
        encode(slot, k, key)?;
        record_key = Some(key);
    }
    Ok(Record {
        topic: record.topic,
        key: record_key,
        payload,
        partition: record.partition,
        timestamp: record.timestamp,
        received_ms: record.received_ms,
        headers: record.headers.iter().copied().collect(),
        dead_letter: record.dead_letter,
    })
}

fn encode(slot: &SchemaSlot, input: &[u8], out: &mut Vec<u8>) -> Result<(), NotEncoded> {
    let Some(encoder) = slot.encoder() else {
        return Err(NotEncoded {
            field: slot.field(),
            failure: SchemaFailure::Unavailable,
            message: format!("no schema yet: {}", slot.error().unwrap_or_default()),
        });
    };
    // The frame's 5 bytes, and room for an encoding about as long as its JSON.
    out.reserve(input.len() + 8);
    encoder.encode(input, out).map_err(|m| NotEncoded {
        field: slot.field(),
        failure: SchemaFailure::Mismatch,
        message: m.to_string(),
    })
}
