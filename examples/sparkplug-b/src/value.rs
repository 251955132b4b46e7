//! Sparkplug values as JSON: the datatypes, the typed reading of the protobuf value
//! fields, and [`Val`], a JSON tree that keeps a `Float` a 32-bit float.
//!
//! The rules, all from the spec's "Datatype Details":
//! - signed integers travel in the unsigned `int_value`/`long_value` fields; they are
//!   read back to the datatype's width (two's complement), accepting both the encoders
//!   that sign-extend (Tahu: Int8 −100 as `int_value` 4294967196) and those that do not
//!   (0x9C). A value that fits neither is an error, not a silently truncated number.
//! - an integer datatype is read from `int_value` or `long_value`, whichever is there:
//!   the spec puts UInt32 in `int_value`, Tahu's Java and JavaScript encoders in
//!   `long_value`.
//! - Float stays an `f32` until it is written, so 3.14 is written `3.14`, the shortest
//!   text that reads back as the same `f32`, not `3.140000104904175`.
//! - Bytes and File become base64 (RFC 4648, with padding); DateTime stays milliseconds.
//! - arrays are unpacked from `bytes_value`: little-endian elements; BooleanArray a
//!   4-byte count and the bits, first element in the most significant bit; StringArray
//!   NUL-terminated UTF-8.

use std::borrow::Cow;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::proto::{
    DataSet, MetaData, MetricValue, ParameterValue, PropertySet, PropertySetList, PropertyValue,
    PropertyValueValue, ScalarValue, Template,
};

/// A datatype of the spec's `DataType` enum (0–34).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataType(u8);

/// The spec's names, indexed by number.
const NAMES: [&str; 35] = [
    "Unknown",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "UInt8",
    "UInt16",
    "UInt32",
    "UInt64",
    "Float",
    "Double",
    "Boolean",
    "String",
    "DateTime",
    "Text",
    "UUID",
    "DataSet",
    "Bytes",
    "File",
    "Template",
    "PropertySet",
    "PropertySetList",
    "Int8Array",
    "Int16Array",
    "Int32Array",
    "Int64Array",
    "UInt8Array",
    "UInt16Array",
    "UInt32Array",
    "UInt64Array",
    "FloatArray",
    "DoubleArray",
    "BooleanArray",
    "StringArray",
    "DateTimeArray",
];

#[allow(missing_docs)]
impl DataType {
    pub const UNKNOWN: DataType = DataType(0);
    pub const INT8: DataType = DataType(1);
    pub const INT16: DataType = DataType(2);
    pub const INT32: DataType = DataType(3);
    pub const INT64: DataType = DataType(4);
    pub const UINT8: DataType = DataType(5);
    pub const UINT16: DataType = DataType(6);
    pub const UINT32: DataType = DataType(7);
    pub const UINT64: DataType = DataType(8);
    pub const FLOAT: DataType = DataType(9);
    pub const DOUBLE: DataType = DataType(10);
    pub const BOOLEAN: DataType = DataType(11);
    pub const STRING: DataType = DataType(12);
    pub const DATETIME: DataType = DataType(13);
    pub const TEXT: DataType = DataType(14);
    pub const UUID: DataType = DataType(15);
    pub const DATASET: DataType = DataType(16);
    pub const BYTES: DataType = DataType(17);
    pub const FILE: DataType = DataType(18);
    pub const TEMPLATE: DataType = DataType(19);
    pub const PROPERTY_SET: DataType = DataType(20);
    pub const PROPERTY_SET_LIST: DataType = DataType(21);
    pub const BOOLEAN_ARRAY: DataType = DataType(32);
    pub const STRING_ARRAY: DataType = DataType(33);
    pub const DATETIME_ARRAY: DataType = DataType(34);

    /// The datatype numbered `code`, or an error naming it: a number outside the enum
    /// is what a payload that is not Sparkplug B at all tends to have.
    pub fn from_code(code: u32) -> Result<DataType, String> {
        match u8::try_from(code) {
            Ok(n) if usize::from(n) < NAMES.len() => Ok(DataType(n)),
            _ => Err(format!("unknown datatype {code}")),
        }
    }

    /// Its number, for the alias store.
    pub fn code(self) -> u8 {
        self.0
    }

    /// The spec's name: `"Int32"`, `"DateTimeArray"`.
    pub fn name(self) -> &'static str {
        NAMES[usize::from(self.0)]
    }
}

/// A JSON value. Objects keep their members in order; `F32` is written as the
/// shortest decimal that reads back as the same `f32`; non-finite floats become `null`
/// (JSON has no NaN or infinity).
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    Str(String),
    Arr(Vec<Val>),
    Obj(Vec<(Cow<'static, str>, Val)>),
}

impl Serialize for Val {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Null => s.serialize_unit(),
            Val::Bool(b) => s.serialize_bool(*b),
            Val::I64(n) => s.serialize_i64(*n),
            Val::U64(n) => s.serialize_u64(*n),
            Val::F32(f) => s.serialize_f32(*f),
            Val::F64(f) => s.serialize_f64(*f),
            Val::Str(text) => s.serialize_str(text),
            Val::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                items.iter().try_for_each(|v| seq.serialize_element(v))?;
                seq.end()
            }
            Val::Obj(members) => {
                let mut map = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Builds a [`Val::Obj`] from `(&'static str, Val)` pairs.
pub fn obj(members: impl IntoIterator<Item = (&'static str, Val)>) -> Val {
    Val::Obj(
        members
            .into_iter()
            .map(|(k, v)| (Cow::Borrowed(k), v))
            .collect(),
    )
}

/// `Some(s)` as a string, `None` as null.
pub fn opt_str(s: Option<String>) -> Val {
    s.map_or(Val::Null, Val::Str)
}

/// Any of the spec's value oneofs, owned: metric, property, DataSet cell and template
/// parameter values all go through one reading.
#[derive(Debug)]
pub enum Carrier {
    Int(u32),
    Long(u64),
    Float(f32),
    Double(f64),
    Boolean(bool),
    String(String),
    Bytes(Vec<u8>),
    DataSet(DataSet),
    Template(Template),
    PropertySet(PropertySet),
    PropertySetList(PropertySetList),
    Extension,
}

impl Carrier {
    /// The protobuf field it came in, for errors.
    fn field(&self) -> &'static str {
        match self {
            Carrier::Int(_) => "int_value",
            Carrier::Long(_) => "long_value",
            Carrier::Float(_) => "float_value",
            Carrier::Double(_) => "double_value",
            Carrier::Boolean(_) => "boolean_value",
            Carrier::String(_) => "string_value",
            Carrier::Bytes(_) => "bytes_value",
            Carrier::DataSet(_) => "dataset_value",
            Carrier::Template(_) => "template_value",
            Carrier::PropertySet(_) => "propertyset_value",
            Carrier::PropertySetList(_) => "propertysets_value",
            Carrier::Extension => "extension_value",
        }
    }

    /// An integer field's value, widened.
    fn integer(&self) -> Option<u64> {
        match *self {
            Carrier::Int(n) => Some(u64::from(n)),
            Carrier::Long(n) => Some(n),
            _ => None,
        }
    }
}

impl From<MetricValue> for Carrier {
    fn from(v: MetricValue) -> Carrier {
        match v {
            MetricValue::Int(n) => Carrier::Int(n),
            MetricValue::Long(n) => Carrier::Long(n),
            MetricValue::Float(f) => Carrier::Float(f),
            MetricValue::Double(f) => Carrier::Double(f),
            MetricValue::Boolean(b) => Carrier::Boolean(b),
            MetricValue::String(s) => Carrier::String(s),
            MetricValue::Bytes(b) => Carrier::Bytes(b),
            MetricValue::DataSet(d) => Carrier::DataSet(d),
            MetricValue::Template(t) => Carrier::Template(t),
            MetricValue::Extension(_) => Carrier::Extension,
        }
    }
}

impl From<PropertyValueValue> for Carrier {
    fn from(v: PropertyValueValue) -> Carrier {
        match v {
            PropertyValueValue::Int(n) => Carrier::Int(n),
            PropertyValueValue::Long(n) => Carrier::Long(n),
            PropertyValueValue::Float(f) => Carrier::Float(f),
            PropertyValueValue::Double(f) => Carrier::Double(f),
            PropertyValueValue::Boolean(b) => Carrier::Boolean(b),
            PropertyValueValue::String(s) => Carrier::String(s),
            PropertyValueValue::PropertySet(p) => Carrier::PropertySet(p),
            PropertyValueValue::PropertySetList(l) => Carrier::PropertySetList(l),
            PropertyValueValue::Extension(_) => Carrier::Extension,
        }
    }
}

impl From<ScalarValue> for Carrier {
    fn from(v: ScalarValue) -> Carrier {
        match v {
            ScalarValue::Int(n) => Carrier::Int(n),
            ScalarValue::Long(n) => Carrier::Long(n),
            ScalarValue::Float(f) => Carrier::Float(f),
            ScalarValue::Double(f) => Carrier::Double(f),
            ScalarValue::Boolean(b) => Carrier::Boolean(b),
            ScalarValue::String(s) => Carrier::String(s),
            ScalarValue::Extension(_) => Carrier::Extension,
        }
    }
}

impl From<ParameterValue> for Carrier {
    fn from(v: ParameterValue) -> Carrier {
        match v {
            ParameterValue::Int(n) => Carrier::Int(n),
            ParameterValue::Long(n) => Carrier::Long(n),
            ParameterValue::Float(f) => Carrier::Float(f),
            ParameterValue::Double(f) => Carrier::Double(f),
            ParameterValue::Boolean(b) => Carrier::Boolean(b),
            ParameterValue::String(s) => Carrier::String(s),
            ParameterValue::Extension(_) => Carrier::Extension,
        }
    }
}

/// A value whose datatype is not known (an alias no BIRTH named, in a DATA that left the
/// datatype out, as the spec recommends): the field as it came, integers unsigned,
/// bytes as base64.
pub fn untyped(c: Carrier) -> Result<Val, String> {
    Ok(match c {
        Carrier::Int(n) => Val::U64(u64::from(n)),
        Carrier::Long(n) => Val::U64(n),
        Carrier::Float(f) => Val::F32(f),
        Carrier::Double(f) => Val::F64(f),
        Carrier::Boolean(b) => Val::Bool(b),
        Carrier::String(s) => Val::Str(s),
        Carrier::Bytes(b) => Val::Str(base64(&b)),
        Carrier::DataSet(d) => dataset(d)?,
        Carrier::Template(t) => crate::template::template(t)?,
        Carrier::PropertySet(p) => properties(p)?,
        Carrier::PropertySetList(l) => property_sets(l)?,
        Carrier::Extension => Val::Null,
    })
}

/// Reads `c` as datatype `t`; an error says which datatype met which field.
pub fn typed(t: DataType, c: Carrier) -> Result<Val, String> {
    let mismatch = |c: &Carrier| format!("datatype {} but the value is in {}", t.name(), c.field());
    let int = |c: &Carrier| c.integer().ok_or_else(|| mismatch(c));
    Ok(match (t, c) {
        (_, Carrier::Extension) => Val::Null,
        (DataType::UNKNOWN, c) => untyped(c)?,
        (DataType(n @ 1..=4), c) => Val::I64(signed(int(&c)?, 8 << (n - 1), t)?),
        (DataType(n @ 5..=8), c) => Val::U64(unsigned(int(&c)?, 8 << (n - 5), t)?),
        (DataType::DATETIME, c) => Val::U64(int(&c)?),
        (DataType::FLOAT, Carrier::Float(f)) => Val::F32(f),
        (DataType::DOUBLE, Carrier::Double(f)) => Val::F64(f),
        (DataType::BOOLEAN, Carrier::Boolean(b)) => Val::Bool(b),
        (DataType::STRING | DataType::TEXT | DataType::UUID, Carrier::String(s)) => Val::Str(s),
        (DataType::BYTES | DataType::FILE, Carrier::Bytes(b)) => Val::Str(base64(&b)),
        (DataType::DATASET, Carrier::DataSet(d)) => dataset(d)?,
        (DataType::TEMPLATE, Carrier::Template(tpl)) => crate::template::template(tpl)?,
        (DataType::PROPERTY_SET, Carrier::PropertySet(p)) => properties(p)?,
        (DataType::PROPERTY_SET_LIST, Carrier::PropertySetList(l)) => property_sets(l)?,
        (DataType(22..=34), Carrier::Bytes(b)) => crate::arrays::unpack(t, &b)?,
        (_, c) => return Err(mismatch(&c)),
    })
}

/// `n`'s low `bits` bits as a signed number, if `n` is one of that number's encodings:
/// zero-extended, or sign-extended to 32 or 64 bits.
fn signed(n: u64, bits: u32, t: DataType) -> Result<i64, String> {
    let shift = 64 - bits;
    let v = ((n << shift) as i64) >> shift;
    let sign_extended = v as u64 == n || (bits <= 32 && u64::from(v as i32 as u32) == n);
    let zero_extended = bits == 64 || n >> bits == 0;
    if sign_extended || zero_extended {
        Ok(v)
    } else {
        Err(format!("{n} is out of range for {}", t.name()))
    }
}

/// `n` if it fits in `bits` bits.
fn unsigned(n: u64, bits: u32, t: DataType) -> Result<u64, String> {
    if bits == 64 || n >> bits == 0 {
        Ok(n)
    } else {
        Err(format!("{n} is out of range for {}", t.name()))
    }
}

/// `{"columns": [..], "types": [..], "rows": [[..], ..]}`, each cell read as its
/// column's type. Column, type and cell counts must agree.
fn dataset(d: DataSet) -> Result<Val, String> {
    let width = d.columns.len();
    if d.types.len() != width || d.num_of_columns.is_some_and(|n| n != width as u64) {
        return Err(format!(
            "DataSet with {width} columns, {} types and num_of_columns {:?}",
            d.types.len(),
            d.num_of_columns
        ));
    }
    let types = d
        .types
        .iter()
        .map(|&code| DataType::from_code(code))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = Vec::with_capacity(d.rows.len());
    for (i, row) in d.rows.into_iter().enumerate() {
        if row.elements.len() != width {
            return Err(format!(
                "DataSet row {i} has {} of {width} cells",
                row.elements.len()
            ));
        }
        let cells = row
            .elements
            .into_iter()
            .zip(&types)
            .map(|(cell, &t)| cell.value.map_or(Ok(Val::Null), |v| typed(t, v.into())));
        rows.push(Val::Arr(cells.collect::<Result<_, _>>()?));
    }
    let columns = d.columns.into_iter().map(Val::Str).collect();
    let type_names = types.iter().map(|t| Val::Str(t.name().into())).collect();
    Ok(obj([
        ("columns", Val::Arr(columns)),
        ("types", Val::Arr(type_names)),
        ("rows", Val::Arr(rows)),
    ]))
}

/// A PropertySet as `{key: value, ..}`, each value read as its own type (a nested
/// PropertySet an object, a PropertySetList an array of objects). The types are not
/// repeated: JSON's own types carry what a consumer needs.
pub fn properties(p: PropertySet) -> Result<Val, String> {
    if p.keys.len() != p.values.len() {
        let (k, v) = (p.keys.len(), p.values.len());
        return Err(format!("PropertySet with {k} keys and {v} values"));
    }
    let mut members = Vec::with_capacity(p.keys.len());
    for (key, value) in p.keys.into_iter().zip(p.values) {
        let v = property_value(value).map_err(|e| format!("property {key:?}: {e}"))?;
        members.push((Cow::Owned(key), v));
    }
    Ok(Val::Obj(members))
}

fn property_value(p: PropertyValue) -> Result<Val, String> {
    let Some(value) = p.value.filter(|_| p.is_null != Some(true)) else {
        return Ok(Val::Null);
    };
    match p.r#type {
        Some(code) => typed(DataType::from_code(code)?, value.into()),
        None => untyped(value.into()),
    }
}

/// The value of a metric: null when `is_null` says so or no value field is set (a
/// Template definition's members have none); otherwise read as `datatype`, or as it came
/// when the datatype is unknown.
pub fn metric_value(
    datatype: Option<DataType>,
    is_null: bool,
    value: Option<MetricValue>,
) -> Result<Val, String> {
    match (value, datatype) {
        (Some(_), _) if is_null => Ok(Val::Null),
        (None, _) => Ok(Val::Null),
        (Some(v), Some(t)) => typed(t, v.into()),
        (Some(v), None) => untyped(v.into()),
    }
}

/// The set fields of a MetaData, by their spec names.
pub fn metadata(m: MetaData) -> Val {
    let text = |key, v: Option<String>| v.map(|s| (key, Val::Str(s)));
    let members = [
        m.is_multi_part.map(|b| ("is_multi_part", Val::Bool(b))),
        text("content_type", m.content_type),
        m.size.map(|n| ("size", Val::U64(n))),
        m.seq.map(|n| ("seq", Val::U64(n))),
        text("file_name", m.file_name),
        text("file_type", m.file_type),
        text("md5", m.md5),
        text("description", m.description),
    ];
    obj(members.into_iter().flatten())
}

fn property_sets(l: PropertySetList) -> Result<Val, String> {
    let sets = l.propertyset.into_iter().map(properties);
    Ok(Val::Arr(sets.collect::<Result<_, _>>()?))
}

/// Standard base64 with padding (RFC 4648 §4), as Bytes and File values are written.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn signed_integers_accept_both_encodings_and_nothing_else() {
        let i8t = DataType::INT8;
        assert_eq!(signed(0xFFFF_FF9C, 8, i8t), Ok(-100)); // Tahu: sign-extended to 32
        assert_eq!(signed(0x9C, 8, i8t), Ok(-100)); // zero-extended
        assert_eq!(signed(u64::MAX - 99, 8, i8t), Ok(-100)); // sign-extended to 64
        assert_eq!(signed(127, 8, i8t), Ok(127));
        assert!(signed(0x1_9C, 8, i8t).is_err());
        assert!(
            signed(0xFFFF_FF7F, 8, i8t).is_err(),
            "0x7F sign-extended is not 0xFFFFFF7F"
        );
        assert_eq!(
            signed(0x8000_0000, 32, DataType::INT32),
            Ok(i64::from(i32::MIN))
        );
        assert_eq!(signed(u64::MAX, 64, DataType::INT64), Ok(-1));
        assert_eq!(unsigned(255, 8, DataType::UINT8), Ok(255));
        let err = unsigned(256, 8, DataType::UINT8).unwrap_err();
        assert_eq!(err, "256 is out of range for UInt8");
    }

    #[test]
    fn a_value_in_the_wrong_field_is_an_error() {
        let err = typed(DataType::INT32, Carrier::String("1".into())).unwrap_err();
        assert_eq!(err, "datatype Int32 but the value is in string_value");
        assert!(typed(DataType::FLOAT, Carrier::Double(1.0)).is_err());
        assert!(DataType::from_code(35).is_err());
        assert_eq!(
            DataType::from_code(34).map(DataType::name),
            Ok("DateTimeArray")
        );
    }

    #[test]
    fn floats_are_written_shortest_and_non_finite_as_null() {
        let v = Val::Arr(vec![
            Val::F32(1.1),
            Val::F32(f32::NAN),
            Val::F64(f64::INFINITY),
        ]);
        assert_eq!(serde_json::to_string(&v).unwrap(), "[1.1,null,null]");
    }
}
