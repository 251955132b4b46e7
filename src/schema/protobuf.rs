//! Protobuf: a JSON value read as the named message in protobuf's JSON mapping
//! (prost-reflect), then written in the binary encoding after the message-index array
//! of Confluent's framing. The `.proto` text is compiled in process by protox, with
//! Google's well-known types at hand; imports of other schemas are not resolved
//! (docs/schemas.md).

use prost_reflect::prost::Message;
use prost_reflect::{DescriptorPool, MessageDescriptor};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use super::mismatch::Mismatch;
use super::zigzag;

/// The name the schema's text is compiled under.
const SCHEMA_FILE: &str = "schema.proto";

pub struct ProtobufEncoder {
    message: MessageDescriptor,
    /// The message's place among the file's messages, as Confluent's framing writes it.
    indexes: Vec<u8>,
}

impl ProtobufEncoder {
    /// Compiles the `.proto` text and finds `message` (`package.Type`) in it.
    pub fn new(text: &str, message: &str) -> Result<ProtobufEncoder, String> {
        let pool = compile(text)?;
        let found = pool
            .get_message_by_name(message)
            .filter(|m| m.parent_file().name() == SCHEMA_FILE)
            .ok_or_else(|| {
                let names: Vec<String> = pool
                    .all_messages()
                    .filter(|m| m.parent_file().name() == SCHEMA_FILE)
                    .map(|m| m.full_name().to_owned())
                    .collect();
                format!("the schema has no message \"{message}\"; it has {names:?}")
            })?;
        let indexes = message_indexes(&found);
        Ok(ProtobufEncoder {
            message: found,
            indexes,
        })
    }

    /// Appends the message-index array and the encoding of `json` to `out`.
    pub fn encode(&self, json: &[u8], out: &mut Vec<u8>) -> Result<(), Mismatch> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let mut track = serde_path_to_error::Track::new();
        let tracked = serde_path_to_error::Deserializer::new(&mut de, &mut track);
        let message = serde::de::DeserializeSeed::deserialize(self.message.clone(), tracked)
            .map_err(|e| mismatch(&track.path(), e.to_string()))?;
        de.end()
            .map_err(|e| super::mismatch::At::ROOT.mismatch(format!("not JSON: {e}")))?;
        out.extend_from_slice(&self.indexes);
        message.encode(out).expect("a Vec grows to fit the message");
        Ok(())
    }
}

fn mismatch(path: &serde_path_to_error::Path, reason: String) -> Mismatch {
    let path = match path.to_string() {
        p if p == "." => "$".to_owned(),
        p if p.starts_with('[') => format!("${p}"),
        p => format!("$.{p}"),
    };
    Mismatch { path, reason }
}

/// The schema's text as a file, and Google's well-known types for its imports.
fn compile(text: &str) -> Result<DescriptorPool, String> {
    let mut files = ChainFileResolver::new();
    files.add(SchemaText(text.to_owned()));
    files.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(files);
    compiler.include_imports(true);
    compiler
        .open_file(SCHEMA_FILE)
        .map_err(|e| format!("not a protobuf schema: {e}"))?;
    Ok(compiler.descriptor_pool())
}

struct SchemaText(String);

impl FileResolver for SchemaText {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match name {
            SCHEMA_FILE => File::from_source(name, &self.0),
            _ => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// Confluent's message indexes of `message`: its position among the file's top-level
/// messages, then among each nesting message's. `[0]` is written as the single byte 0,
/// anything else as a count and the indexes, each a zig-zag varint.
fn message_indexes(message: &MessageDescriptor) -> Vec<u8> {
    let mut path = Vec::new();
    let mut m = message.clone();
    loop {
        let siblings: Vec<MessageDescriptor> = match m.parent_message() {
            Some(parent) => parent.child_messages().collect(),
            None => m.parent_file().messages().collect(),
        };
        path.push(siblings.iter().position(|s| s == &m).unwrap_or(0));
        match m.parent_message() {
            Some(parent) => m = parent,
            None => break,
        }
    }
    path.reverse();
    if path == [0] {
        return vec![0];
    }
    let mut out = Vec::new();
    zigzag(&mut out, path.len() as i64);
    for i in path {
        zigzag(&mut out, i as i64);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::DynamicMessage;

    const PROTO: &str = r#"
        syntax = "proto3";
        package telemetry;
        import "google/protobuf/timestamp.proto";
        message Other { string x = 1; }
        message Reading {
            string device = 1;
            double temperature = 2;
            repeated string tags = 3;
            google.protobuf.Timestamp at = 4;
            message Inner { int64 n = 1; }
            Inner inner = 5;
        }
    "#;

    #[test]
    fn a_value_is_encoded_after_its_message_indexes() {
        let e = ProtobufEncoder::new(PROTO, "telemetry.Reading").unwrap();
        let mut out = Vec::new();
        let json = br#"{"device": "d1", "temperature": 21.5, "tags": ["a"], "at": "2024-12-05T12:00:00Z", "inner": {"n": "7"}}"#;
        e.encode(json, &mut out).unwrap();
        // Reading is the second top-level message: count 1, index 1, zig-zag.
        assert_eq!(&out[..2], &[2, 2]);
        let back = DynamicMessage::decode(e.message.clone(), &out[2..]).unwrap();
        assert_eq!(
            back.get_field_by_name("device").unwrap().as_str(),
            Some("d1")
        );
        assert_eq!(
            back.get_field_by_name("temperature").unwrap().as_f64(),
            Some(21.5)
        );
    }

    #[test]
    fn message_indexes_follow_confluents_framing() {
        let first = ProtobufEncoder::new(PROTO, "telemetry.Other").unwrap();
        assert_eq!(first.indexes, [0]);
        let inner = ProtobufEncoder::new(PROTO, "telemetry.Reading.Inner").unwrap();
        assert_eq!(inner.indexes, [4, 2, 0]);
    }

    #[test]
    fn a_mismatch_names_its_path() {
        let e = ProtobufEncoder::new(PROTO, "telemetry.Reading").unwrap();
        let mut out = Vec::new();
        let m = e
            .encode(br#"{"temperature": "hot"}"#, &mut out)
            .unwrap_err();
        assert_eq!(m.path, "$.temperature");
        let m = e
            .encode(br#"{"inner": {"n": true}}"#, &mut out)
            .unwrap_err();
        assert_eq!(m.path, "$.inner.n");
        let m = e
            .encode(br#"{"device": "d1"} trailing"#, &mut out)
            .unwrap_err();
        assert!(m.reason.starts_with("not JSON"), "{m}");
        assert!(out.is_empty());
    }

    #[test]
    fn schemas_and_names_that_do_not_resolve_are_refused() {
        let e = ProtobufEncoder::new("message {", "x").err().unwrap();
        assert!(e.contains("not a protobuf schema"), "{e}");
        let e = ProtobufEncoder::new(PROTO, "telemetry.Nope").err().unwrap();
        assert!(e.contains("telemetry.Reading"), "{e}");
        let e = ProtobufEncoder::new(PROTO, "google.protobuf.Timestamp")
            .err()
            .unwrap();
        assert!(e.contains("no message"), "{e}");
    }
}
