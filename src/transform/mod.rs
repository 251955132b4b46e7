//! The WebAssembly host: modules compiled once, pooled instances reused across messages,
//! and every way a guest can fail contained and classified. The ABI is in docs/abi.md.

mod engine;
mod failure;
mod imports;
mod instance;
mod module;
mod pool;

pub use engine::{EngineLimits, TransformEngine, EPOCH_TICK, MAX_WASM_STACK};
pub use failure::{Cause, Failure};
pub use module::{ModuleSpec, TransformModule};
pub use pool::{Checkout, TransformPool};
