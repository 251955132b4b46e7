//! The transform module behind `transform.script`: it runs a JavaScript transform in
//! QuickJS-ng, inside the same pooled, limited WebAssembly instances as every other
//! transform (docs/javascript.md).
//!
//! The host hands the script's source and file name to `rmqtt_transform_init` beside the
//! entry's `transform.config` (under the keys in [`abi::script`]); init runs the script's
//! top-level code once, and every message then calls its `transform(msg, config)`.
//! Natively this crate is a plain library, so its tests run the engine without a host.

mod bytes;
mod exception;
mod json;
mod payload;
mod records;
mod script;
mod state;

pub use script::Script;

use rmqtt_kafka_transform::prelude::*;

/// Calls the script's `transform` for one message.
#[transform(init = Script::start)]
fn run<'m>(msg: &'m Message<'m>, script: &Script) -> Result<Outcome<'m>, Error> {
    script.transform(msg)
}
