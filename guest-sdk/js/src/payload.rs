//! The payload of the message being transformed, kept on the Rust side: `msg.payload`
//! becomes a `Uint8Array`, and `msg.text()` a string, only when the script asks, so a
//! script that reads the JSON never pays for the array.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use rquickjs::{Ctx, Exception, Result, String as JsString, TypedArray, Value};

use crate::bytes::text;

/// The current call's payload, shared by the script and the native functions of `msg`.
#[derive(Clone, Default)]
pub(crate) struct CurrentPayload(Rc<Shared>);

#[derive(Default)]
struct Shared {
    bytes: RefCell<Vec<u8>>,
    /// The current call's number; 0 between calls.
    call: Cell<u32>,
    last: Cell<u32>,
}

impl CurrentPayload {
    /// Starts a call with `payload`; its number, which its `msg` carries.
    pub(crate) fn begin(&self, payload: &[u8]) -> u32 {
        let mut bytes = self.0.bytes.borrow_mut();
        bytes.clear();
        bytes.extend_from_slice(payload);
        let call = self.0.last.get().wrapping_add(1).max(1);
        self.0.last.set(call);
        self.0.call.set(call);
        call
    }

    /// Ends the call: a `msg` kept beyond it can no longer reach the payload.
    pub(crate) fn end(&self) {
        self.0.call.set(0);
    }

    fn read<'js, T>(
        &self,
        ctx: &Ctx<'js>,
        call: u32,
        f: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<T> {
        if call != self.0.call.get() {
            return Err(Exception::throw_type(
                ctx,
                "msg.payload was first read after its transform call returned; read it during the call",
            ));
        }
        f(&self.0.bytes.borrow())
    }

    /// `payloadBytes(call)`: a new `Uint8Array` of the payload.
    pub(crate) fn bytes<'js>(&self, ctx: Ctx<'js>, call: u32) -> Result<TypedArray<'js, u8>> {
        self.read(&ctx, call, |b| TypedArray::new_copy(ctx.clone(), b))
    }

    /// `payloadJson(call)`: the payload parsed as JSON, or `undefined` when the fast
    /// path leaves it to `JSON.parse` (`json.rs`).
    pub(crate) fn json<'js>(&self, ctx: Ctx<'js>, call: u32) -> Result<Value<'js>> {
        self.read(&ctx, call, |b| {
            Ok(crate::json::parse(&ctx, b).unwrap_or_else(|| Value::new_undefined(ctx.clone())))
        })
    }

    /// `payloadText(call)`: the payload as text, invalid UTF-8 as U+FFFD.
    pub(crate) fn text<'js>(&self, ctx: Ctx<'js>, call: u32) -> Result<JsString<'js>> {
        self.read(&ctx, call, |b| text(&ctx, b, false))
    }
}
