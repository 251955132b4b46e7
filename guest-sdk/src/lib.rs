//! Write MQTT→Kafka transforms for `rmqtt-bridge-egress-kafka` in safe Rust.
//!
//! A transform is a WebAssembly module that turns one MQTT publish into zero or more Kafka
//! records. With this SDK it is one function:
//!
//! ```
//! use rmqtt_kafka_transform::prelude::*;
//!
//! /// Forwards messages from v5 clients, keyed by client id; drops the rest.
//! #[transform]
//! fn only_v5(msg: &Message) -> Outcome {
//!     if !msg.is_v5() {
//!         return Outcome::Drop;
//!     }
//!     Record::new(msg.payload()).key(msg.client_id()).into()
//! }
//!
//! # fn main() {
//! // A plain function in native tests:
//! let t = rmqtt_kafka_transform::TestMessage::new("a/b", "hi").client_id("c1").v5();
//! let out = only_v5(&t.message());
//! assert_eq!(out.records()[0].get_key(), Some(&b"c1"[..]));
//! # }
//! ```
//!
//! Built for `wasm32-unknown-unknown` (or `wasm32-wasip1`) as a `cdylib`, the
//! [`#[transform]`](macro@transform) attribute adds the exports of ABI v1 (`docs/abi.md`);
//! natively it leaves the function alone, so unit tests call it directly with a
//! [`TestMessage`]. `docs/writing-transforms.md` walks through a whole project.
//!
//! The function takes `&Message` and optionally `&Config` (the entry's `transform.config`)
//! and returns [`Outcome`] or `Result<Outcome, E>` for any printable `E` (usually
//! [`Error`]). An error becomes an ERROR document for the host, which counts it and
//! applies the entry's `transform.on_error` policy; a panic reaches the host with its
//! message and location through the `rmqtt.abort` import.
//!
//! Payloads, keys and headers borrowed from the message are handed back to the host in
//! place: forwarding `msg.payload()` copies nothing inside the module.
//!
//! # Features
//! - `json`: [`Message::json`], [`Message::json_value`] and [`Record::json`] (serde_json).
#![deny(unsafe_code)]
#![warn(missing_docs)]

// Lets `#[transform]` (which names `::rmqtt_kafka_transform`) work in this crate's own tests.
extern crate self as rmqtt_kafka_transform;

mod bytes;
mod config;
mod error;
mod expect;
#[cfg(feature = "json")]
mod json;
pub mod log;
mod message;
mod record;
mod runtime;
pub mod state;
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod sys;
mod testing;

pub use abi;
pub use bytes::{IntoBytes, RecordBytes};
pub use config::Config;
pub use error::Error;
pub use expect::Expect;
pub use message::Message;
pub use record::{Outcome, Record};
/// The `serde_json` the `json` feature uses, for [`serde_json::Value`] and friends.
#[cfg(feature = "json")]
pub use serde_json;
pub use testing::TestMessage;

/// Turns a function into the transform of a module.
///
/// ```text
/// #[transform]                     fn name(msg: &Message) -> Outcome
/// #[transform]                     fn name(msg: &Message, cfg: &Config) -> Result<Outcome, Error>
/// #[transform(init = check)]       ... plus fn check(cfg: &Config) -> Result<(), Error>
/// #[transform(init = parse)]       fn name(msg: &Message, s: &S) -> ...
///                                  plus fn parse(cfg: &Config) -> Result<S, Error>
/// ```
///
/// The return type is `Outcome` or `Result<Outcome, E>` where `E: Display`. The function
/// stays a normal function (the macro only gives the lifetimes its signature elides one
/// name, `'call`, so the returned records may borrow from the message, the config and
/// the state; `'static` borrows are refused with the form to write instead). On `wasm32` targets
/// the macro also generates the module's exports: `rmqtt_transform_abi_v1`,
/// `rmqtt_transform_reserve`, `rmqtt_transform_init` and `rmqtt_transform`. A crate has at
/// most one `#[transform]`.
///
/// With `init = path`, `path(&Config)` runs once per instance when the host passes the
/// config, before any message; an error there refuses the plugin start with the message,
/// so a bad `transform.config` is caught at startup instead of on every message. When it
/// returns `Result<S, E>` and the function's second argument is `&S` (any `'static`
/// type but `Config`), what it returns is kept by the instance and handed to every call:
/// the configuration is parsed once, typed. Records may borrow from it.
pub use macros::transform;

/// `use rmqtt_kafka_transform::prelude::*;` brings in everything a transform needs.
pub mod prelude {
    pub use crate::{transform, Config, Error, Message, Outcome, Record};
}

/// Support code for the `#[transform]` expansion. Not a public API.
#[doc(hidden)]
pub mod __private {
    #[cfg(target_arch = "wasm32")]
    pub use crate::runtime::wasm::{init, reserve, transform};
    pub use crate::runtime::{
        keep_state, InitFn, InitResult, IntoInitResult, IntoResult, TransformFn,
    };
}
