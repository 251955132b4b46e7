//! Functions a module may import: `rmqtt.log` and `rmqtt.abort` (`rmqtt.rs`), the
//! state store's `rmqtt.state_get`, `state_put` and `state_delete` (`state.rs`), and a
//! deny-by-default subset of WASI preview 1 so that modules built for `wasm32-wasip1`
//! load (`wasi.rs`). Each host call is one named function; this file holds what they
//! share: bounds-checked access to guest memory.

mod rmqtt;
mod state;
mod wasi;

use wasmtime::{Caller, Linker, Result};

use super::state::HostState;

/// Defines every import this host provides.
pub(crate) fn define(linker: &mut Linker<HostState>) -> Result<()> {
    rmqtt::define(linker)?;
    state::define(linker)?;
    wasi::define(linker)
}

/// The guest's memory and the host state, borrowed together.
fn memory<'a>(caller: &'a mut Caller<'_, HostState>) -> Option<(&'a mut [u8], &'a mut HostState)> {
    let mem = caller.data().memory?;
    Some(mem.data_and_store_mut(caller))
}

/// `ptr..ptr+len` if it lies inside a memory of `mem_len` bytes.
fn range(ptr: i32, len: usize, mem_len: usize) -> Option<std::ops::Range<usize>> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len)?;
    (end <= mem_len).then_some(start..end)
}

/// Most bytes of one guest log line that reach the host log.
const MAX_LOG_LINE: usize = 4096;

/// A guest string for the log, cut at [`MAX_LOG_LINE`].
fn guest_text(mem: &[u8], ptr: i32, len: i32) -> String {
    let len = (len as u32 as usize).min(MAX_LOG_LINE);
    match range(ptr, len, mem.len()) {
        Some(r) => String::from_utf8_lossy(&mem[r]).into_owned(),
        None => "<message outside linear memory>".into(),
    }
}
