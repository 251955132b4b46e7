//! The global `state`: the entry's state store (docs/abi.md, "State") for scripts.
//!
//! ```js
//! state.put("last/" + msg.topic, String(value));      // or a Uint8Array
//! state.put("seen/" + id, "", 60000);                  // expires in 60 s
//! const last = state.getText("last/" + msg.topic);     // undefined if absent
//! const raw = state.get(key);                          // a Uint8Array, or undefined
//! state.delete(key);                                   // true if it was there
//! ```
//!
//! Keys and values are strings (stored as UTF-8) or bytes (`Uint8Array`, `ArrayBuffer`).
//! A put the store refuses (full, or a key over 1024 bytes) throws an `Error` whose
//! message says why; the script may catch it.

use std::time::Duration;

use rmqtt_kafka_transform::state;
use rquickjs::{Ctx, Exception, Function, Object, Result, String as JsString, TypedArray, Value};

use crate::bytes::{text, with_bytes};

/// Defines the frozen global `state`.
pub(crate) fn define(ctx: &Ctx<'_>) -> Result<()> {
    let object = Object::new(ctx.clone())?;
    object.set("get", Function::new(ctx.clone(), get)?.with_name("get")?)?;
    object.set(
        "getText",
        Function::new(ctx.clone(), get_text)?.with_name("getText")?,
    )?;
    object.set("put", Function::new(ctx.clone(), put)?.with_name("put")?)?;
    object.set(
        "delete",
        Function::new(ctx.clone(), delete)?.with_name("delete")?,
    )?;
    let freeze: Function = ctx.globals().get::<_, Object>("Object")?.get("freeze")?;
    let object: Object = freeze.call((object,))?;
    ctx.globals().set("state", object)
}

/// `state.get(key)`: the value as a new `Uint8Array`, or `undefined`.
fn get<'js>(ctx: Ctx<'js>, key: Value<'js>) -> Result<Option<TypedArray<'js, u8>>> {
    match as_bytes(&ctx, &key, "key", |k| state::get(k))? {
        Some(value) => TypedArray::new(ctx, value).map(Some),
        None => Ok(None),
    }
}

/// `state.getText(key)`: the value as text (invalid UTF-8 becomes U+FFFD), or `undefined`.
fn get_text<'js>(ctx: Ctx<'js>, key: Value<'js>) -> Result<Option<JsString<'js>>> {
    match as_bytes(&ctx, &key, "key", |k| state::get(k))? {
        Some(value) => text(&ctx, &value, false).map(Some),
        None => Ok(None),
    }
}

/// `state.put(key, value, ttlMs?)`: throws when the store refuses it.
fn put<'js>(
    ctx: Ctx<'js>,
    key: Value<'js>,
    value: Value<'js>,
    ttl_ms: rquickjs::function::Opt<f64>,
) -> Result<()> {
    let ttl = match ttl_ms.0 {
        None => None,
        Some(ms) if ms.is_finite() && ms > 0.0 => Some(Duration::from_secs_f64(ms / 1000.0)),
        Some(ms) => {
            let why = format!("state.put: the TTL must be a positive number of ms, not {ms}");
            return Err(Exception::throw_range(&ctx, &why));
        }
    };
    let stored = as_bytes(&ctx, &key, "key", |key| {
        as_bytes(&ctx, &value, "value", |value| match ttl {
            Some(ttl) => state::put_for(key, value, ttl),
            None => state::put(key, value),
        })
    })??;
    stored.map_err(|e| Exception::throw_message(&ctx, &format!("state.put: {e}")))
}

/// `state.delete(key)`: whether a live key was there.
fn delete<'js>(ctx: Ctx<'js>, key: Value<'js>) -> Result<bool> {
    as_bytes(&ctx, &key, "key", |k| state::delete(k))
}

/// `read(bytes)` of a string's UTF-8 or a byte array's contents; a `TypeError` for
/// anything else.
fn as_bytes<R>(
    ctx: &Ctx<'_>,
    value: &Value<'_>,
    what: &str,
    read: impl FnOnce(&[u8]) -> R,
) -> Result<R> {
    if let Some(s) = value.as_string() {
        return Ok(read(s.to_string()?.as_bytes()));
    }
    with_bytes(value, read).ok_or_else(|| {
        let why = format!("state: the {what} must be a string, a Uint8Array or an ArrayBuffer");
        Exception::throw_type(ctx, &why)
    })
}
