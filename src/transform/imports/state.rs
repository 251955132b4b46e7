//! The `rmqtt.state_*` imports: the entry's state store, one wrapper per host call.
//! Pointers outside linear memory trap the call; everything else is an answer the
//! module handles (docs/abi.md, "State").

use wasmtime::{Caller, Linker, Result};

use super::{memory, range};
use crate::transform::failure::Stopped;
use crate::transform::state::HostState;

pub(super) fn define(linker: &mut Linker<HostState>) -> Result<()> {
    linker.func_wrap(abi::IMPORT_MODULE, abi::state::IMPORT_GET, get)?;
    linker.func_wrap(abi::IMPORT_MODULE, abi::state::IMPORT_PUT, put)?;
    linker.func_wrap(abi::IMPORT_MODULE, abi::state::IMPORT_DELETE, delete)?;
    Ok(())
}

/// `state_get(key_ptr, key_len, buf_ptr, buf_len) -> len | ABSENT`: the value is copied
/// into the buffer only when it fits; its length comes back either way.
fn get(
    mut caller: Caller<'_, HostState>,
    key_ptr: i32,
    key_len: i32,
    buf_ptr: i32,
    buf_len: i32,
) -> Result<i32> {
    let (mem, state) = memory(&mut caller).ok_or(Stopped::OutOfBounds("memory"))?;
    let key = guest_range(key_ptr, key_len, mem.len(), "key")?;
    let buf = guest_range(buf_ptr, buf_len, mem.len(), "buffer")?;
    // The key is read from a copy of its bytes only when it overlaps the buffer (a
    // module may pass the same memory): in place otherwise.
    let found = if key.end <= buf.start || buf.end <= key.start {
        let (key, buf) = split_two(mem, key, buf);
        state.store.get(key, buf)
    } else {
        let key = mem[key].to_vec();
        state.store.get(&key, &mut mem[buf])
    };
    Ok(found.map_or(abi::state::ABSENT, |len| len as i32))
}

/// `state_put(key_ptr, key_len, value_ptr, value_len, ttl_ms) -> PutStatus`.
fn put(
    mut caller: Caller<'_, HostState>,
    key_ptr: i32,
    key_len: i32,
    value_ptr: i32,
    value_len: i32,
    ttl_ms: i64,
) -> Result<i32> {
    let (mem, state) = memory(&mut caller).ok_or(Stopped::OutOfBounds("memory"))?;
    let key = &mem[guest_range(key_ptr, key_len, mem.len(), "key")?];
    let value = &mem[guest_range(value_ptr, value_len, mem.len(), "value")?];
    Ok(state.store.put(key, value, ttl_ms) as i32)
}

/// `state_delete(key_ptr, key_len) -> 1 | 0`.
fn delete(mut caller: Caller<'_, HostState>, key_ptr: i32, key_len: i32) -> Result<i32> {
    let (mem, state) = memory(&mut caller).ok_or(Stopped::OutOfBounds("memory"))?;
    let key = &mem[guest_range(key_ptr, key_len, mem.len(), "key")?];
    Ok(i32::from(state.store.delete(key)))
}

/// `ptr..ptr+len` in a memory of `mem_len` bytes, or a trap naming the argument.
fn guest_range(
    ptr: i32,
    len: i32,
    mem_len: usize,
    what: &'static str,
) -> Result<std::ops::Range<usize>, Stopped> {
    range(ptr, len as u32 as usize, mem_len).ok_or(Stopped::OutOfBounds(what))
}

/// The key to read and the buffer to write, two disjoint ranges of `mem`.
fn split_two(
    mem: &mut [u8],
    key: std::ops::Range<usize>,
    buf: std::ops::Range<usize>,
) -> (&[u8], &mut [u8]) {
    if key.end <= buf.start {
        let (head, tail) = mem.split_at_mut(buf.start);
        (&head[key], &mut tail[..buf.len()])
    } else {
        let (head, tail) = mem.split_at_mut(key.start);
        (&tail[..key.len()], &mut head[buf])
    }
}
