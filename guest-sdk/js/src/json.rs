//! `msg.json()`'s fast path: the payload parsed by serde_json straight into JavaScript
//! values, instead of being made a string first and handed to `JSON.parse`.
//!
//! The result must be what `JSON.parse(msg.text())` gives, so only what serde_json
//! reads exactly as JavaScript does is taken here: numbers correctly rounded
//! (`float_roundtrip`; `-0` stays `-0`), members defined as own properties in order (a
//! `"__proto__"` member included, a repeated member's last value kept at its first
//! place), strings as UTF-8. Whatever serde_json refuses (invalid UTF-8, a lone
//! surrogate escape, nesting deeper than 128, a syntax error) goes to `JSON.parse`,
//! whose value or `SyntaxError` is the contract.

use std::borrow::Cow;
use std::fmt;

use rquickjs::object::Property;
use rquickjs::{Array, Ctx, Object, String as JsString, Value};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// `json` as a JavaScript value, or `None` to leave it to `JSON.parse`.
pub(crate) fn parse<'js>(ctx: &Ctx<'js>, json: &[u8]) -> Option<Value<'js>> {
    let mut reader = serde_json::Deserializer::from_slice(json);
    let value = Js(ctx).deserialize(&mut reader).ok()?;
    reader.end().ok()?;
    Some(value)
}

/// Builds one JSON value, and its members, in the engine.
#[derive(Clone, Copy)]
struct Js<'a, 'js>(&'a Ctx<'js>);

impl<'de, 'js> DeserializeSeed<'de> for Js<'_, 'js> {
    type Value = Value<'js>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value<'js>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'js> Visitor<'de> for Js<'_, 'js> {
    type Value = Value<'js>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value<'js>, E> {
        Ok(Value::new_null(self.0.clone()))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value<'js>, E> {
        Ok(Value::new_bool(self.0.clone(), v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value<'js>, E> {
        Ok(number(self.0, v as f64))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value<'js>, E> {
        Ok(number(self.0, v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value<'js>, E> {
        Ok(number(self.0, v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value<'js>, E> {
        JsString::from_str(self.0.clone(), v)
            .map(JsString::into_value)
            .map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value<'js>, A::Error> {
        let array = Array::new(self.0.clone()).map_err(de::Error::custom)?;
        let mut i = 0;
        while let Some(item) = items.next_element_seed(self)? {
            array.set(i, item).map_err(de::Error::custom)?;
            i += 1;
        }
        Ok(array.into_value())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Value<'js>, A::Error> {
        let object = Object::new(self.0.clone()).map_err(de::Error::custom)?;
        while let Some(Name(name)) = members.next_key()? {
            let value = members.next_value_seed(self)?;
            // Defined, not set: a `"__proto__"` member is an own property, as in JSON.parse.
            let member = Property::from(value).writable().enumerable().configurable();
            object.prop(&*name, member).map_err(de::Error::custom)?;
        }
        Ok(object.into_value())
    }
}

/// A JavaScript number; a negative zero stays one (the engine's integers have none).
fn number<'js>(ctx: &Ctx<'js>, v: f64) -> Value<'js> {
    if v == 0.0 && v.is_sign_negative() {
        Value::new_float(ctx.clone(), v)
    } else {
        Value::new_number(ctx.clone(), v)
    }
}

/// A member's name, borrowed from the payload unless it had escapes.
struct Name<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Name<'de>, D::Error> {
        d.deserialize_str(NameVisitor)
    }
}

struct NameVisitor;

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Name<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'de>, E> {
        Ok(Name(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Name<'de>, E> {
        Ok(Name(Cow::Owned(v.to_owned())))
    }
}
