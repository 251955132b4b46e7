//! JSON Schema: the value is checked against the schema and sent as the JSON it is, as
//! Confluent's `JSONSerializer` sends it. The jsonschema crate validates; a schema
//! without `$schema` is read as draft 7, the registry's default.

use jsonschema::{Draft, Validator};
use serde_json::Value;

use super::mismatch::{path_of_pointer, At, Mismatch};

pub struct JsonSchemaEncoder {
    validator: Validator,
    /// The schema accepts only strings: a key such as `sensor-1` is taken as the text.
    is_string: bool,
}

impl JsonSchemaEncoder {
    /// Compiles the schema's text; the error says what is wrong with it. `$ref`s to
    /// other documents are not fetched (docs/schemas.md).
    pub fn new(text: &str) -> Result<JsonSchemaEncoder, String> {
        let schema: Value =
            serde_json::from_str(text).map_err(|e| format!("not a JSON Schema (not JSON: {e})"))?;
        let mut options = jsonschema::options();
        if schema.get("$schema").is_none() {
            options = options.with_draft(Draft::Draft7);
        }
        let validator = options
            .build(&schema)
            .map_err(|e| format!("not a JSON Schema: {e}"))?;
        let is_string = schema.get("type").and_then(Value::as_str) == Some("string");
        Ok(JsonSchemaEncoder {
            validator,
            is_string,
        })
    }

    /// Appends `json` to `out` when the schema accepts it.
    pub fn encode(&self, json: &[u8], out: &mut Vec<u8>) -> Result<(), Mismatch> {
        let value: Value = serde_json::from_slice(json)
            .map_err(|e| At::ROOT.mismatch(format!("not JSON: {e}")))?;
        self.check(&value)?;
        out.extend_from_slice(json);
        Ok(())
    }

    /// Appends `text` as a JSON string when the plain-string schema
    /// ([`Self::is_string`]) accepts it.
    pub fn encode_text(&self, text: &str, out: &mut Vec<u8>) -> Result<(), Mismatch> {
        let value = Value::String(text.to_owned());
        self.check(&value)?;
        serde_json::to_writer(out, &value).map_err(|e| At::ROOT.mismatch(e.to_string()))
    }

    fn check(&self, value: &Value) -> Result<(), Mismatch> {
        self.validator.validate(value).map_err(|e| Mismatch {
            path: path_of_pointer(e.instance_path().as_str()),
            reason: e.masked().to_string(),
        })
    }

    pub fn is_string(&self) -> bool {
        self.is_string
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type": "object", "properties": {
        "device": {"type": "string"},
        "temperature": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}}
    }, "required": ["device", "temperature"]}"#;

    #[test]
    fn a_matching_value_is_sent_as_it_is() {
        let e = JsonSchemaEncoder::new(SCHEMA).unwrap();
        let json = br#"{"device": "d1", "temperature": 21.5, "extra": true}"#;
        let mut out = vec![0];
        e.encode(json, &mut out).unwrap();
        assert_eq!(&out[1..], json);
    }

    #[test]
    fn a_mismatch_names_its_path() {
        let e = JsonSchemaEncoder::new(SCHEMA).unwrap();
        let mut out = Vec::new();
        let m = e
            .encode(br#"{"device": "d1", "temperature": "hot"}"#, &mut out)
            .unwrap_err();
        assert_eq!(m.path, "$.temperature");
        assert!(m.reason.contains("number"), "{m}");
        let m = e
            .encode(
                br#"{"device": "d1", "temperature": 1, "tags": ["a", 2]}"#,
                &mut out,
            )
            .unwrap_err();
        assert_eq!(m.path, "$.tags[1]");
        let m = e.encode(br#"{"device": "d1"}"#, &mut out).unwrap_err();
        assert_eq!(m.path, "$");
        assert!(m.reason.contains("temperature"), "{m}");
        let m = e.encode(b"{oops", &mut out).unwrap_err();
        assert!(m.to_string().starts_with("$: not JSON"), "{m}");
        assert!(out.is_empty());
    }

    #[test]
    fn a_schema_that_does_not_compile_is_refused() {
        assert!(JsonSchemaEncoder::new("{")
            .err()
            .unwrap()
            .contains("not JSON"));
        let e = JsonSchemaEncoder::new(r#"{"type": "no-such-type"}"#)
            .err()
            .unwrap();
        assert!(e.contains("not a JSON Schema"), "{e}");
    }
}
