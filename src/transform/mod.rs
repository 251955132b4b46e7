//! The WebAssembly host: modules compiled once, pooled instances reused across messages,
//! and every way a guest can fail contained and classified. The ABI is in docs/abi.md.
//!
//! Dependencies run one way: `modules` → `pool` → `instance` → `module` → `javascript` → `code_cache`, `engine` →
//! `imports` → `state` → `state_store`, `ticker`, `failure`.

mod code_cache;
mod engine;
mod failure;
mod imports;
mod instance;
mod javascript;
mod module;
mod modules;
mod pool;
mod slots;
mod state;
mod state_store;
mod ticker;

pub use engine::{TransformEngine, MAX_WASM_STACK};
pub use failure::{Cause, Failure};
pub use module::TransformModule;
pub use modules::Modules;
pub use pool::{TransformPool, Transformed, QUICK_CALLS_TO_RETURN};
pub use state_store::StateStore;
pub use ticker::EPOCH_TICK;
