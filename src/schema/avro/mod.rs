//! Avro: a JSON value written in Avro's binary encoding, driven by the schema. apache-avro
//! parses the schema (names, namespaces, defaults, logical types); the schema is then
//! flattened into [`Node`]s that the encoder walks while it reads the JSON once with
//! jiter. apache-avro's own JSON path builds a value tree first, costs several times as
//! much per record, reads decimals through floats and names no path in its errors.
//!
//! JSON is mapped as Confluent's JSON-to-Avro conversion maps it, and more leniently
//! where that is unambiguous; docs/schemas.md lists the rules and what is not supported.

mod encode;
mod logical;

use std::collections::HashMap;

use apache_avro::schema::{InnerDecimalSchema, Name, RecordSchema, Schema, UuidSchema};

use super::mismatch::{At, Mismatch};

/// A schema, ready to encode JSON values.
pub struct AvroEncoder {
    nodes: Vec<Node>,
}

/// One type of the schema. Named types are one node each, however often they are
/// referred to, so a recursive schema is a cycle of indexes.
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(usize),
    Map(usize),
    Union(Box<[Branch]>),
    Record(Box<Record>),
    Enum(Box<[Box<str>]>),
    Fixed(usize),
    /// The digits right of the point, the most digits, and a `fixed` size (else bytes).
    Decimal {
        precision: usize,
        scale: usize,
        fixed: Option<usize>,
    },
    Uuid,
    Date,
    TimeMillis,
    TimeMicros,
    /// Units per second of a `timestamp-*` or `local-timestamp-*`.
    Timestamp(i64),
    /// A node being compiled: the place of a named type that refers to itself.
    Pending,
}

/// A union's branch: the name Avro's JSON encoding wraps a value in (`{"string": "x"}`).
struct Branch {
    name: Box<str>,
    node: usize,
}

struct Record {
    fields: Box<[Field]>,
    by_name: HashMap<Box<str>, usize, ahash::RandomState>,
}

struct Field {
    name: Box<str>,
    node: usize,
    /// The field's default, already encoded.
    default: Option<Box<[u8]>>,
}

impl AvroEncoder {
    /// Parses and compiles the schema's text; the error says what is wrong with it.
    pub fn new(text: &str) -> Result<AvroEncoder, String> {
        let schema = Schema::parse_str(text).map_err(|e| format!("not an Avro schema: {e}"))?;
        let mut c = Compiler::default();
        c.node(&schema, None)?;
        Ok(AvroEncoder { nodes: c.nodes })
    }

    /// Appends the Avro encoding of the JSON value `json` to `out`.
    pub fn encode(&self, json: &[u8], out: &mut Vec<u8>) -> Result<(), Mismatch> {
        encode::View { nodes: &self.nodes }.whole(0, json, out)
    }

    /// Whether the schema is a plain string: a key such as `sensor-1` is then taken as
    /// the text itself (a JSON string is read as JSON).
    pub fn is_string(&self) -> bool {
        matches!(self.nodes[0], Node::String | Node::Uuid)
    }

    /// Appends the encoding of `text` as the plain-string schema ([`Self::is_string`]).
    pub fn encode_text(&self, text: &str, out: &mut Vec<u8>) -> Result<(), Mismatch> {
        encode::text(&self.nodes[0], text, &At::ROOT, out)
    }
}

/// Flattens a parsed schema into nodes, the root first.
#[derive(Default)]
struct Compiler {
    nodes: Vec<Node>,
    named: HashMap<String, usize>,
}

impl Compiler {
    /// The node of `schema`, in `namespace` (a record's, for its fields' short names).
    fn node(&mut self, schema: &Schema, namespace: Option<&str>) -> Result<usize, String> {
        let simple = match schema {
            Schema::Null => Node::Null,
            Schema::Boolean => Node::Boolean,
            Schema::Int => Node::Int,
            Schema::Long => Node::Long,
            Schema::Float => Node::Float,
            Schema::Double => Node::Double,
            Schema::Bytes => Node::Bytes,
            Schema::String => Node::String,
            Schema::Uuid(UuidSchema::String) => Node::Uuid,
            Schema::Date => Node::Date,
            Schema::TimeMillis => Node::TimeMillis,
            Schema::TimeMicros => Node::TimeMicros,
            Schema::TimestampMillis | Schema::LocalTimestampMillis => Node::Timestamp(1_000),
            Schema::TimestampMicros | Schema::LocalTimestampMicros => Node::Timestamp(1_000_000),
            Schema::TimestampNanos | Schema::LocalTimestampNanos => Node::Timestamp(1_000_000_000),
            Schema::Decimal(d) if d.precision > logical::MAX_PRECISION => {
                return Err(format!(
                    "decimals of more than {} digits are not supported",
                    logical::MAX_PRECISION
                ))
            }
            Schema::Decimal(d) => Node::Decimal {
                precision: d.precision,
                scale: d.scale,
                fixed: match &d.inner {
                    InnerDecimalSchema::Bytes => None,
                    InnerDecimalSchema::Fixed(f) => Some(f.size),
                },
            },
            Schema::Ref { name } => return self.named(name, namespace),
            Schema::Array(a) => {
                let at = self.reserve();
                self.nodes[at] = Node::Array(self.node(&a.items, namespace)?);
                return Ok(at);
            }
            Schema::Map(m) => {
                let at = self.reserve();
                self.nodes[at] = Node::Map(self.node(&m.types, namespace)?);
                return Ok(at);
            }
            Schema::Union(u) => return self.union(u.variants(), namespace),
            Schema::Record(r) => return self.record(r),
            Schema::Enum(e) => {
                let at = self.name(&e.name, namespace);
                self.nodes[at] = Node::Enum(e.symbols.iter().map(|s| s.as_str().into()).collect());
                return Ok(at);
            }
            Schema::Fixed(f) => {
                let at = self.name(&f.name, namespace);
                self.nodes[at] = Node::Fixed(f.size);
                return Ok(at);
            }
            Schema::BigDecimal | Schema::Duration(_) | Schema::Uuid(_) => {
                return Err(format!("{} is not supported", type_name(schema)))
            }
        };
        let at = self.reserve();
        self.nodes[at] = simple;
        Ok(at)
    }

    fn reserve(&mut self) -> usize {
        self.nodes.push(Node::Pending);
        self.nodes.len() - 1
    }

    /// A new node for the named type `name`, registered before its parts are compiled
    /// so that they may refer to it.
    fn name(&mut self, name: &Name, namespace: Option<&str>) -> usize {
        let at = self.reserve();
        self.named.insert(name.fullname(namespace), at);
        at
    }

    fn named(&mut self, name: &Name, namespace: Option<&str>) -> Result<usize, String> {
        let full = name.fullname(namespace);
        self.named
            .get(&full)
            .or_else(|| self.named.get(name.name()))
            .copied()
            .ok_or_else(|| format!("refers to the unknown type {full}"))
    }

    fn union(&mut self, variants: &[Schema], namespace: Option<&str>) -> Result<usize, String> {
        let at = self.reserve();
        let mut branches = Vec::with_capacity(variants.len());
        for v in variants {
            let name = match v {
                Schema::Ref { name } => name.fullname(namespace),
                Schema::Record(RecordSchema { name, .. }) => name.fullname(namespace),
                Schema::Enum(e) => e.name.fullname(namespace),
                Schema::Fixed(f) => f.name.fullname(namespace),
                other => type_name(other).to_owned(),
            };
            let node = self.node(v, namespace)?;
            branches.push(Branch {
                name: name.into(),
                node,
            });
        }
        self.nodes[at] = Node::Union(branches.into());
        Ok(at)
    }

    fn record(&mut self, r: &RecordSchema) -> Result<usize, String> {
        let at = self.name(&r.name, None);
        let namespace = r.name.namespace().map(str::to_owned);
        let mut fields = Vec::with_capacity(r.fields.len());
        for f in &r.fields {
            let node = self.node(&f.schema, namespace.as_deref())?;
            fields.push(Field {
                name: f.name.as_str().into(),
                node,
                default: None,
            });
        }
        let by_name = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        self.nodes[at] = Node::Record(Box::new(Record {
            fields: fields.into(),
            by_name,
        }));
        // Defaults are encoded once every node of the record exists.
        for (i, f) in r.fields.iter().enumerate() {
            if let Some(default) = &f.default {
                let encoded = self
                    .encoded_default(at, i, default)
                    .map_err(|m| format!("the default of field {} does not fit: {m}", f.name))?;
                if let Node::Record(rec) = &mut self.nodes[at] {
                    rec.fields[i].default = Some(encoded);
                }
            }
        }
        Ok(at)
    }

    /// Field `i`'s default, encoded: for a union, as its first branch (Avro's rule).
    fn encoded_default(
        &self,
        record: usize,
        i: usize,
        value: &serde_json::Value,
    ) -> Result<Box<[u8]>, Mismatch> {
        let Node::Record(rec) = &self.nodes[record] else {
            unreachable!("a record's node")
        };
        let text = value.to_string();
        let mut out = Vec::new();
        let view = encode::View { nodes: &self.nodes };
        match &self.nodes[rec.fields[i].node] {
            Node::Union(branches) => {
                out.push(0);
                view.whole(branches[0].node, text.as_bytes(), &mut out)?;
            }
            _ => view.whole(rec.fields[i].node, text.as_bytes(), &mut out)?,
        }
        Ok(out.into())
    }
}

/// The name of an unnamed type, as Avro's JSON encoding names a union's branch.
fn type_name(schema: &Schema) -> &'static str {
    match schema {
        Schema::Null => "null",
        Schema::Boolean => "boolean",
        Schema::Int | Schema::Date | Schema::TimeMillis => "int",
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "long",
        Schema::Float => "float",
        Schema::Double => "double",
        Schema::Bytes | Schema::Decimal(_) => "bytes",
        Schema::String | Schema::Uuid(UuidSchema::String) => "string",
        Schema::Array(_) => "array",
        Schema::Map(_) => "map",
        Schema::BigDecimal => "the logical type big-decimal",
        Schema::Duration(_) => "the logical type duration",
        Schema::Uuid(_) => "a uuid that is not a string",
        Schema::Union(_) => "union",
        Schema::Record(_) | Schema::Enum(_) | Schema::Fixed(_) | Schema::Ref { .. } => "named",
    }
}

#[cfg(test)]
mod tests;
