//! Writing a JSON document in Avro's binary encoding while reading it once. A record's
//! members may come in any order: the first pass over its object notes where each
//! field's value is, then the fields are written in the schema's order, each read from
//! its place (a skipped value is not built, only stepped over).

use jiter::{Jiter, JiterError, NumberAny, NumberInt, Peek};
use smallvec::{smallvec, SmallVec};

use super::{logical, Branch, Node, Record};
use crate::schema::mismatch::{At, Mismatch};

/// The schema's nodes, as the encoder reads them.
pub(super) struct View<'n> {
    pub nodes: &'n [Node],
}

type Written = Result<(), Mismatch>;

impl View<'_> {
    /// The whole document `json` as node `node`: nothing but whitespace may follow.
    pub fn whole(&self, node: usize, json: &[u8], out: &mut Vec<u8>) -> Written {
        self.whole_at(node, json, &At::ROOT, out)
    }

    fn whole_at(&self, node: usize, json: &[u8], at: &At, out: &mut Vec<u8>) -> Written {
        let mut it = Jiter::new(json);
        self.value(node, &mut it, json, at, out)?;
        it.finish().map_err(|e| not_json(at, &e))
    }

    /// The value at `it`'s position in `data` as node `node`.
    fn value(
        &self,
        node: usize,
        it: &mut Jiter,
        data: &[u8],
        at: &At,
        out: &mut Vec<u8>,
    ) -> Written {
        let peek = it.peek().map_err(|e| not_json(at, &e))?;
        let n = &self.nodes[node];
        if !takes(n, peek) {
            return Err(expected(at, name_of(n), peek));
        }
        match n {
            Node::Array(item) => self.array(*item, it, data, at, out),
            Node::Map(value) => self.map(*value, it, data, at, out),
            Node::Record(r) => self.record(r, it, data, at, out),
            Node::Union(branches) => self.union(branches, it, peek, data, at, out),
            Node::Decimal {
                precision,
                scale,
                fixed,
            } => {
                let text = text_of(it, peek, at)?;
                let unscaled =
                    logical::decimal(&text, *precision, *scale).map_err(|why| at.mismatch(why))?;
                logical::write_decimal(unscaled, *fixed, out).map_err(|why| at.mismatch(why))
            }
            Node::Date | Node::TimeMillis | Node::TimeMicros | Node::Timestamp(_) => {
                self.time(node, it, peek, at, out)
            }
            Node::String | Node::Bytes | Node::Fixed(_) | Node::Enum(_) | Node::Uuid => {
                let s = it.known_str().map_err(|e| not_json(at, &e))?;
                text(n, s, at, out)
            }
            _ => scalar(n, it, peek, at, out),
        }
    }

    /// A date or time: a number of its units, or text (docs/schemas.md).
    fn time(&self, node: usize, it: &mut Jiter, peek: Peek, at: &At, out: &mut Vec<u8>) -> Written {
        let n = if peek.is_num() {
            integer(it, peek, at)?
        } else {
            let s = it.known_str().map_err(|e| not_json(at, &e))?;
            let parsed = match &self.nodes[node] {
                Node::Date => logical::date(s),
                Node::TimeMillis => logical::time_of_day(s, 1_000),
                Node::TimeMicros => logical::time_of_day(s, 1_000_000),
                Node::Timestamp(per_second) => logical::timestamp(s, *per_second),
                _ => None,
            };
            parsed.ok_or_else(|| {
                at.mismatch(format!("\"{s}\" is not a {}", name_of(&self.nodes[node])))
            })?
        };
        if matches!(self.nodes[node], Node::Date | Node::TimeMillis) && i32::try_from(n).is_err() {
            return Err(at.mismatch(format!("{n} is out of int's range")));
        }
        long(out, n);
        Ok(())
    }

    fn array(
        &self,
        item: usize,
        it: &mut Jiter,
        data: &[u8],
        at: &At,
        out: &mut Vec<u8>,
    ) -> Written {
        let start = out.len();
        let mut n = 0;
        let mut next = it.known_array().map_err(|e| not_json(at, &e))?;
        while next.is_some() {
            self.value(item, it, data, &at.index(n), out)?;
            n += 1;
            next = it.array_step().map_err(|e| not_json(at, &e))?;
        }
        block_count(out, start, n);
        Ok(())
    }

    fn map(
        &self,
        value: usize,
        it: &mut Jiter,
        data: &[u8],
        at: &At,
        out: &mut Vec<u8>,
    ) -> Written {
        let start = out.len();
        let mut n = 0;
        let mut key = it
            .known_object()
            .map_err(|e| not_json(at, &e))?
            .map(str::to_owned);
        while let Some(k) = key {
            bytes(out, k.as_bytes());
            self.value(value, it, data, &at.key(&k), out)?;
            n += 1;
            key = it
                .next_key()
                .map_err(|e| not_json(at, &e))?
                .map(str::to_owned);
        }
        block_count(out, start, n);
        Ok(())
    }

    fn record(
        &self,
        r: &Record,
        it: &mut Jiter,
        data: &[u8],
        at: &At,
        out: &mut Vec<u8>,
    ) -> Written {
        // Where each field's value is in `data`; (0, 0) where the object has none.
        let mut spans: SmallVec<[(usize, usize); 16]> = smallvec![(0, 0); r.fields.len()];
        let mut key = it.known_object().map_err(|e| not_json(at, &e))?;
        while let Some(k) = key {
            let field = r.by_name.get(k).copied();
            let start = it.current_index();
            it.next_skip().map_err(|e| not_json(at, &e))?;
            if let Some(i) = field {
                spans[i] = (start, it.current_index());
            }
            key = it.next_key().map_err(|e| not_json(at, &e))?;
        }
        for (f, &(start, end)) in r.fields.iter().zip(&spans) {
            let at = at.key(&f.name);
            if end > start {
                self.whole_at(f.node, &data[start..end], &at, out)?;
            } else if let Some(default) = &f.default {
                out.extend_from_slice(default);
            } else if let Some(null) = self.null_branch(f.node) {
                long(out, null as i64);
            } else {
                return Err(at.mismatch("missing, and the schema gives no default"));
            }
        }
        Ok(())
    }

    /// A union: `null`, a value wrapped in its branch's name as Avro's JSON encoding
    /// writes it (`{"double": 21.5}`), or a bare value, written as the first branch that
    /// takes it.
    fn union(
        &self,
        branches: &[Branch],
        it: &mut Jiter,
        peek: Peek,
        data: &[u8],
        at: &At,
        out: &mut Vec<u8>,
    ) -> Written {
        let start = it.current_index();
        it.known_skip(peek).map_err(|e| not_json(at, &e))?;
        let value = &data[start..it.current_index()];
        if peek == Peek::Object {
            if let Some((i, inner)) = wrapped(branches, value) {
                long(out, i as i64);
                return self.whole_at(branches[i].node, inner, at, out);
            }
        }
        let mut first_failure = None;
        for (i, b) in branches.iter().enumerate() {
            if !takes(&self.nodes[b.node], peek) {
                continue;
            }
            let mark = out.len();
            long(out, i as i64);
            match self.whole_at(b.node, value, at, out) {
                Ok(()) => return Ok(()),
                Err(m) => {
                    out.truncate(mark);
                    first_failure.get_or_insert(m);
                }
            }
        }
        Err(first_failure.unwrap_or_else(|| {
            let names: Vec<&str> = branches.iter().map(|b| &*b.name).collect();
            expected(at, &format!("one of {names:?}"), peek)
        }))
    }

    /// The index of the `null` branch of the union at `node`, if it is one.
    fn null_branch(&self, node: usize) -> Option<usize> {
        match &self.nodes[node] {
            Node::Union(branches) => branches
                .iter()
                .position(|b| matches!(self.nodes[b.node], Node::Null)),
            _ => None,
        }
    }
}

/// `null`, a boolean or a number as `node`, which takes it.
fn scalar(node: &Node, it: &mut Jiter, peek: Peek, at: &At, out: &mut Vec<u8>) -> Written {
    match node {
        Node::Null => it.known_null().map_err(|e| not_json(at, &e)),
        Node::Boolean => {
            let b = it.known_bool(peek).map_err(|e| not_json(at, &e))?;
            out.push(u8::from(b));
            Ok(())
        }
        Node::Int => {
            let n = integer(it, peek, at)?;
            let n =
                i32::try_from(n).map_err(|_| at.mismatch(format!("{n} is out of int's range")))?;
            long(out, n.into());
            Ok(())
        }
        Node::Long => {
            long(out, integer(it, peek, at)?);
            Ok(())
        }
        Node::Float => {
            let f = it.known_float(peek).map_err(|e| not_json(at, &e))?;
            if f.is_finite() && (f as f32).is_infinite() {
                return Err(at.mismatch(format!("{f} is out of float's range")));
            }
            out.extend_from_slice(&(f as f32).to_le_bytes());
            Ok(())
        }
        Node::Double => {
            let f = it.known_float(peek).map_err(|e| not_json(at, &e))?;
            out.extend_from_slice(&f.to_le_bytes());
            Ok(())
        }
        other => Err(expected(at, name_of(other), peek)),
    }
}

/// The string `s` as `node`: a string, bytes, fixed, an enum's symbol or a UUID.
pub(super) fn text(node: &Node, s: &str, at: &At, out: &mut Vec<u8>) -> Written {
    match node {
        Node::Bytes => {
            long(out, s.chars().count() as i64);
            latin1(s, at, out)
        }
        Node::Fixed(size) => match s.chars().count() {
            n if n == *size => latin1(s, at, out),
            n => Err(at.mismatch(format!("expected {size} bytes, got {n}"))),
        },
        Node::Enum(symbols) => {
            let i = symbols.iter().position(|sym| **sym == *s).ok_or_else(|| {
                at.mismatch(format!(
                    "\"{s}\" is not one of the enum's symbols {symbols:?}"
                ))
            })?;
            long(out, i as i64);
            Ok(())
        }
        Node::Uuid if !logical::is_uuid(s) => Err(at.mismatch(format!("\"{s}\" is not a UUID"))),
        _ => {
            bytes(out, s.as_bytes());
            Ok(())
        }
    }
}

/// `{"name": value}` with `name` one of the union's non-null branches: that branch's
/// index and the value's text.
fn wrapped<'d>(branches: &[Branch], object: &'d [u8]) -> Option<(usize, &'d [u8])> {
    let mut it = Jiter::new(object);
    let key = it.next_object().ok()??;
    let i = branches
        .iter()
        .position(|b| *b.name == *key && &*b.name != "null")?;
    let start = it.current_index();
    it.next_skip().ok()?;
    let end = it.current_index();
    it.next_key()
        .ok()?
        .is_none()
        .then_some((i, &object[start..end]))
}

/// Whether a value that starts as `peek` may be written as `node`.
fn takes(node: &Node, peek: Peek) -> bool {
    match node {
        Node::Null => peek == Peek::Null,
        Node::Boolean => matches!(peek, Peek::True | Peek::False),
        Node::Int | Node::Long | Node::Float | Node::Double => peek.is_num(),
        Node::String | Node::Bytes | Node::Fixed(_) | Node::Enum(_) | Node::Uuid => {
            peek == Peek::String
        }
        Node::Decimal { .. }
        | Node::Date
        | Node::TimeMillis
        | Node::TimeMicros
        | Node::Timestamp(_) => peek.is_num() || peek == Peek::String,
        Node::Array(_) => peek == Peek::Array,
        Node::Map(_) | Node::Record(_) => peek == Peek::Object,
        Node::Union(_) => true,
        Node::Pending => false,
    }
}

/// An integer, or a number with no fraction (`3.0`).
fn integer(it: &mut Jiter, peek: Peek, at: &At) -> Result<i64, Mismatch> {
    match it.known_number(peek) {
        Ok(NumberAny::Int(NumberInt::Int(n))) => Ok(n),
        Ok(NumberAny::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        Ok(NumberAny::Float(f)) => Err(at.mismatch(format!("expected an integer, got {f}"))),
        Err(e) => Err(at.mismatch(format!("not an integer of 64 bits: {e}"))),
    }
}

/// A number's own text (no float in between), or a string's.
fn text_of(it: &mut Jiter, peek: Peek, at: &At) -> Result<String, Mismatch> {
    let text = match peek {
        Peek::String => it.known_str().map(str::to_owned),
        _ => it
            .known_number_bytes(peek)
            .map(|b| String::from_utf8_lossy(b).into_owned()),
    };
    text.map_err(|e| not_json(at, &e))
}

/// The characters of `s`, each a byte (Avro's JSON encoding of bytes: U+0000–U+00FF).
fn latin1(s: &str, at: &At, out: &mut Vec<u8>) -> Written {
    for c in s.chars() {
        let b = u8::try_from(u32::from(c)).map_err(|_| {
            at.mismatch(format!(
                "'{c}' is not a byte (bytes are written as characters U+0000 to U+00FF)"
            ))
        })?;
        out.push(b);
    }
    Ok(())
}

/// An `int` or `long`.
pub(super) fn long(out: &mut Vec<u8>, n: i64) {
    crate::schema::zigzag(out, n);
}

/// `bytes` or `string`: the length, then the bytes.
fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    long(out, b.len() as i64);
    out.extend_from_slice(b);
}

/// Closes an array or map written from `start`: its `n` items become one block (the
/// count goes in front of them), then the empty block that ends it.
fn block_count(out: &mut Vec<u8>, start: usize, n: usize) {
    if n > 0 {
        let mut count = Vec::with_capacity(10);
        long(&mut count, n as i64);
        out.splice(start..start, count);
    }
    out.push(0);
}

fn not_json(at: &At, e: &JiterError) -> Mismatch {
    at.mismatch(format!("not JSON: {e}"))
}

fn expected(at: &At, what: &str, peek: Peek) -> Mismatch {
    at.mismatch(format!("expected {what}, got {}", kind(peek)))
}

/// What a JSON value is, as a mismatch names it.
fn kind(peek: Peek) -> &'static str {
    match peek {
        Peek::Null => "null",
        Peek::True | Peek::False => "boolean",
        Peek::String => "string",
        Peek::Array => "array",
        Peek::Object => "object",
        _ => "number",
    }
}

/// What a node expects, as a mismatch names it.
fn name_of(node: &Node) -> &'static str {
    match node {
        Node::Null => "null",
        Node::Boolean => "boolean",
        Node::Int => "int",
        Node::Long => "long",
        Node::Float => "float",
        Node::Double => "double",
        Node::Bytes => "bytes",
        Node::String => "string",
        Node::Array(_) => "array",
        Node::Map(_) => "map",
        Node::Union(_) => "union",
        Node::Record(_) => "record",
        Node::Enum(_) => "enum symbol",
        Node::Fixed(_) => "fixed",
        Node::Decimal { .. } => "decimal",
        Node::Uuid => "uuid",
        Node::Date => "date",
        Node::TimeMillis | Node::TimeMicros => "time of day",
        Node::Timestamp(_) => "timestamp",
        Node::Pending => "type",
    }
}
