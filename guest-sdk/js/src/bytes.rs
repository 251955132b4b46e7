//! Reading the bytes of a `Uint8Array` or an `ArrayBuffer`, and bytes as JavaScript text.

use rquickjs::{ArrayBuffer, Ctx, Exception, Result, String as JsString, TypedArray, Value};

/// `read(bytes)` for a `Uint8Array` or an `ArrayBuffer` (a detached one is empty);
/// `None` for any other value.
pub(crate) fn with_bytes<R>(value: &Value<'_>, read: impl FnOnce(&[u8]) -> R) -> Option<R> {
    let obj = value.as_object()?;
    if let Ok(array) = TypedArray::<u8>::from_object(obj.clone()) {
        // SAFETY: the engine owns the slice, and script code could change or free it; `read`
        // runs no script code (it may allocate in the engine, which neither moves nor frees
        // a buffer we hold a reference to), and the slice ends with it.
        return Some(read(unsafe { array.as_bytes() }.unwrap_or_default()));
    }
    let buffer = ArrayBuffer::from_object(obj.clone())?;
    // SAFETY: as above.
    Some(read(unsafe { buffer.as_bytes() }.unwrap_or_default()))
}

/// `bytes` as a JavaScript string; invalid UTF-8 becomes U+FFFD, or with `fatal` a
/// `TypeError`.
pub(crate) fn text<'js>(ctx: &Ctx<'js>, bytes: &[u8], fatal: bool) -> Result<JsString<'js>> {
    match std::str::from_utf8(bytes) {
        Ok(s) => JsString::from_str(ctx.clone(), s),
        Err(e) if fatal => Err(Exception::throw_type(
            ctx,
            &format!("the bytes are not UTF-8: {e}"),
        )),
        Err(_) => JsString::from_str(ctx.clone(), &String::from_utf8_lossy(bytes)),
    }
}
