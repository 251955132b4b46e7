//! Reading one member of a JSON object payload without building the rest.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::Error;

/// The member `name` of the JSON object in `payload` (the last one, if repeated).
pub(crate) fn field<'a, T: Deserialize<'a>>(
    payload: &'a [u8],
    name: &str,
) -> Result<Option<T>, Error> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let found = Field {
        name,
        value: PhantomData,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    found.map_err(|e| {
        let first = payload.iter().find(|b| !b.is_ascii_whitespace());
        if e.classify() == serde_json::error::Category::Data && first != Some(&b'{') {
            Error::msg("payload is not a JSON object")
        } else {
            payload_error(e)
        }
    })
}

/// The error for a payload that did not deserialize. Valid JSON whose string holds an
/// escape (`\"`, `\u002d`) cannot be borrowed as `&str`: that is said as such, with the
/// fix, rather than as invalid JSON.
pub(crate) fn payload_error(e: serde_json::Error) -> Error {
    let borrow = e.classify() == serde_json::error::Category::Data
        && e.to_string().contains("expected a borrowed string");
    if borrow {
        return Error::msg(format_args!(
            "a JSON string at line {} column {} has an escape, so it cannot be borrowed as `&str`: deserialize it into `Cow<'a, str>` with `#[serde(borrow)]`, or into `String`",
            e.line(),
            e.column()
        ));
    }
    Error::msg(format_args!("invalid JSON payload: {e}"))
}

/// Walks the object's members: the one named is deserialized, the others are skipped
/// with `IgnoredAny` and keys are compared in place, so nothing else is allocated.
struct Field<'n, T> {
    name: &'n str,
    value: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Field<'_, T> {
    type Value = Option<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Field<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let mut found = None;
        while let Some(is_it) = map.next_key_seed(KeyIs(self.name))? {
            if is_it {
                found = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Deserializes a key into "is it `name`?". The key is compared as bytes (escapes
/// expanded): checking that every key is UTF-8 first would cost more than the
/// comparison, and the skipped values are not checked either.
struct KeyIs<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_bytes(self)
    }
}

impl Visitor<'_> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_bytes<E>(self, key: &[u8]) -> Result<bool, E> {
        Ok(key == self.0.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn reads_one_member_and_skips_the_rest() {
        let p = br#"{"pad":"xxxxxxxx","nested":{"device_id":"inner"},"device_id":"d-1","n":[1,2,{"a":null}]}"#;
        assert_eq!(field::<&str>(p, "device_id").unwrap(), Some("d-1"));
        assert_eq!(
            field::<Value>(p, "n").unwrap(),
            Some(json!([1, 2, {"a": null}]))
        );
        assert_eq!(field::<Value>(p, "absent").unwrap(), None);
        assert_eq!(
            field::<u32>(br#"{"k":1,"k":2}"#, "k").unwrap(),
            Some(2),
            "the last of repeats, as serde_json::Value"
        );
        assert_eq!(
            field::<String>(br#"{"k\u0041":"x"}"#, "kA")
                .unwrap()
                .as_deref(),
            Some("x"),
            "escaped keys compare unescaped"
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            field::<Value>(b"42", "k").unwrap_err().to_string(),
            "payload is not a JSON object"
        );
        assert_eq!(
            field::<Value>(b" [1]", "k").unwrap_err().to_string(),
            "payload is not a JSON object"
        );
        assert!(field::<Value>(b"not json", "k")
            .unwrap_err()
            .to_string()
            .starts_with("invalid JSON payload"));
        assert!(field::<Value>(b"{\"k\":1} trailing", "k")
            .unwrap_err()
            .to_string()
            .starts_with("invalid JSON payload"));
    }

    #[test]
    fn an_escaped_string_is_a_borrow_failure_not_invalid_json() {
        let p = br#"{"device_id":"d\u002d17"}"#;
        let err = field::<&str>(p, "device_id").unwrap_err().to_string();
        assert!(
            err.starts_with("a JSON string at line 1 column 24 has an escape")
                && err.contains("Cow<'a, str>"),
            "{err}"
        );
        let cow = field::<std::borrow::Cow<'_, str>>(p, "device_id").unwrap();
        assert_eq!(cow.as_deref(), Some("d-17"));
    }
}
