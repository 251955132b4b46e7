//! The JavaScript runtime behind `transform.script`: a transform module (guest-sdk/js,
//! QuickJS-ng) that this crate's build compiles for wasm32-wasip1 and embeds (build.rs).
//! Every script entry instantiates it with its script; see docs/javascript.md.

use parking_lot::Mutex;
use wasmtime::{Engine, Module};

use super::code_cache;
use super::engine::TransformEngine;

/// The runtime module, as the build made it.
const RUNTIME: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/js-runtime.wasm"));

/// The runtime's compiled code, once this process has it: each configuration load makes
/// a new engine, and compiling the runtime takes far longer than loading compiled code.
static COMPILED: Mutex<Option<Vec<u8>>> = Mutex::new(None);

/// The runtime, compiled for `engine`: from this process's copy, else from the
/// compiled-code cache on disk, else compiled (and kept in both). The lock is held while
/// compiling, so that entries starting together compile it once.
pub(crate) fn runtime(engine: &TransformEngine) -> Result<Module, String> {
    let engine = engine.engine();
    let mut compiled = COMPILED.lock();
    if let Some(module) = compiled.as_deref().and_then(|b| load(engine, b)) {
        return Ok(module);
    }
    let cached = code_cache::file_for(engine, "js-runtime", RUNTIME);
    if let Some(bytes) = cached.as_deref().and_then(code_cache::read) {
        if let Some(module) = load(engine, &bytes) {
            *compiled = Some(bytes);
            return Ok(module);
        }
    }
    let module = Module::new(engine, RUNTIME).map_err(|e| format!("{e:#}"))?;
    if let Ok(bytes) = module.serialize() {
        if let Some(file) = &cached {
            code_cache::write(file, &bytes);
        }
        *compiled = Some(bytes);
    }
    Ok(module)
}

/// Compiled code loaded into `engine`; `None` when it does not suit the engine.
#[allow(unsafe_code)]
fn load(engine: &Engine, bytes: &[u8]) -> Option<Module> {
    // SAFETY: the bytes are what `Module::serialize` returned, in this process or in an
    // earlier one of this user's (the cache's directory is private to the user, see
    // code_cache.rs), so they are code this build compiled; `deserialize` checks that
    // they suit the engine's configuration and wasmtime version, and refuses them if not.
    unsafe { Module::deserialize(engine, bytes) }.ok()
}
