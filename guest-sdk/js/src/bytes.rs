//! Reading the bytes of a `Uint8Array` or an `ArrayBuffer`.

use rquickjs::{ArrayBuffer, TypedArray, Value};

/// `read(bytes)` for a `Uint8Array` or an `ArrayBuffer` (a detached one is empty);
/// `None` for any other value.
pub(crate) fn with_bytes<R>(value: &Value<'_>, read: impl FnOnce(&[u8]) -> R) -> Option<R> {
    let obj = value.as_object()?;
    if let Ok(array) = TypedArray::<u8>::from_object(obj.clone()) {
        // SAFETY: the engine owns the slice, and script code could change or free it; `read`
        // is plain Rust that cannot call back into the engine, and the slice ends with it.
        return Some(read(unsafe { array.as_bytes() }.unwrap_or_default()));
    }
    let buffer = ArrayBuffer::from_object(obj.clone())?;
    // SAFETY: as above.
    Some(read(unsafe { buffer.as_bytes() }.unwrap_or_default()))
}
