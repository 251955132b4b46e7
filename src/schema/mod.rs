//! Schema-aware records: an entry's record value (and key) encoded against a schema and
//! framed as Confluent's serializers frame it, so that a topic governed by a schema
//! registry takes them: the magic byte 0, the schema's id (4 bytes, big-endian), then
//! the Avro encoding, the JSON text, or Protobuf's message indexes and encoding.
//!
//! Schemas come from a file with a fixed id, compiled when the configuration loads, or
//! from a registry, fetched when the pipeline starts or reloads (`schemas.rs`). The
//! record path only reads an entry's compiled schema ([`SchemaSlot`]); it never calls
//! the registry.

mod avro;
mod json_schema;
mod mismatch;
mod protobuf;
mod registry;
mod schemas;
mod slot;

pub use mismatch::Mismatch;
pub use schemas::{EntrySchemas, Schemas};
pub use slot::SchemaSlot;

use crate::config::SchemaFormat;
use avro::AvroEncoder;
use json_schema::JsonSchemaEncoder;
use protobuf::ProtobufEncoder;

/// The byte every framed record starts with.
const MAGIC: u8 = 0;

/// A compiled schema and the id its records carry.
pub struct Encoder {
    id: u32,
    codec: Codec,
}

enum Codec {
    Avro(AvroEncoder),
    Json(JsonSchemaEncoder),
    Protobuf(ProtobufEncoder),
}

impl Encoder {
    /// Compiles the schema's text as `format` (`message`: Protobuf's type); the error
    /// says what is wrong with the schema.
    pub fn compile(
        format: SchemaFormat,
        text: &str,
        message: Option<&str>,
        id: u32,
    ) -> Result<Encoder, String> {
        let codec = match format {
            SchemaFormat::Avro => Codec::Avro(AvroEncoder::new(text)?),
            SchemaFormat::Json => Codec::Json(JsonSchemaEncoder::new(text)?),
            SchemaFormat::Protobuf => {
                Codec::Protobuf(ProtobufEncoder::new(text, message.unwrap_or_default())?)
            }
        };
        Ok(Encoder { id, codec })
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// Appends the framed encoding of the JSON value `json` to `out`. A schema that is a
    /// plain string also takes text that is not JSON (`sensor-1`) as the string itself,
    /// as a key rendered from a template usually is.
    pub fn encode(&self, json: &[u8], out: &mut Vec<u8>) -> Result<(), Mismatch> {
        out.push(MAGIC);
        out.extend_from_slice(&self.id.to_be_bytes());
        match &self.codec {
            Codec::Avro(c) if c.is_string() && !starts_as_string(json) => {
                c.encode_text(text(json)?, out)
            }
            Codec::Json(c) if c.is_string() && !starts_as_string(json) => {
                c.encode_text(text(json)?, out)
            }
            Codec::Avro(c) => c.encode(json, out),
            Codec::Json(c) => c.encode(json, out),
            Codec::Protobuf(c) => c.encode(json, out),
        }
    }
}

/// Bytes taken as text for a plain-string schema.
fn text(bytes: &[u8]) -> Result<&str, Mismatch> {
    std::str::from_utf8(bytes)
        .map_err(|_| mismatch::At::ROOT.mismatch("expected text, got bytes that are not UTF-8"))
}

/// A zig-zag varint, 7 bits a byte, lowest first: Avro's `int` and `long`, and the
/// numbers of Confluent's Protobuf message indexes.
fn zigzag(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push(z as u8 | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Whether `json` starts as a JSON string does (after whitespace).
fn starts_as_string(json: &[u8]) -> bool {
    json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_framed_with_the_magic_byte_and_the_id() {
        let e = Encoder::compile(SchemaFormat::Avro, r#""long""#, None, 0x0102_0304).unwrap();
        let mut out = Vec::new();
        e.encode(b"-1", &mut out).unwrap();
        assert_eq!(out, [0, 1, 2, 3, 4, 1]);
    }

    #[test]
    fn a_string_schema_takes_plain_text_and_json_strings() {
        for format in [SchemaFormat::Avro, SchemaFormat::Json] {
            let schema = match format {
                SchemaFormat::Avro => r#""string""#,
                _ => r#"{"type": "string"}"#,
            };
            let e = Encoder::compile(format, schema, None, 7).unwrap();
            let (mut plain, mut json) = (Vec::new(), Vec::new());
            e.encode(b"sensor-1", &mut plain).unwrap();
            e.encode(br#""sensor-1""#, &mut json).unwrap();
            assert_eq!(plain, json, "{}", format.as_str());
            assert!(e.encode(&[0xff, 0xfe], &mut Vec::new()).is_err());
        }
    }
}
