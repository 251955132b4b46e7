//! The only `unsafe` in the SDK: declaring and calling the host's imports.
//!
//! Why this is sound:
//! - Calling a foreign function is `unsafe` because Rust cannot check its signature. The
//!   signatures below are the ones `docs/abi.md` fixes for the `rmqtt` import module, and
//!   the host checks them when it links the module (a mismatch fails instantiation, it
//!   cannot be called with the wrong types).
//! - The imports *read* `len` bytes at each `ptr` from linear memory. We pass the address
//!   and length of a live `&str` or `&[u8]`, which stays borrowed for the whole call, so the
//!   host reads initialized memory. Only `state_get` writes: at most `buf_len` bytes at
//!   `buf_ptr`, which we point at a `Vec`'s spare capacity (see [`state_get`]). No import
//!   re-enters the module.
//! - On wasm32 a pointer is 32 bits, so `ptr as usize as i32` keeps every bit; `len` fits
//!   too, since a slice in a 32-bit address space is shorter than 4 GiB (`as i32` reinterprets
//!   the bits, and the host reads the value as unsigned).

use abi::state::PutStatus;
use abi::LogLevel;

#[link(wasm_import_module = "rmqtt")]
unsafe extern "C" {
    /// `rmqtt.log(level, ptr, len)`.
    #[link_name = "log"]
    fn rmqtt_log(level: i32, ptr: i32, len: i32);

    /// `rmqtt.abort(ptr, len)`: never returns (the host traps the call).
    #[link_name = "abort"]
    fn rmqtt_abort(ptr: i32, len: i32);

    /// `rmqtt.state_get(key_ptr, key_len, buf_ptr, buf_len) -> len | -1`.
    #[link_name = "state_get"]
    fn rmqtt_state_get(key_ptr: i32, key_len: i32, buf_ptr: i32, buf_len: i32) -> i32;

    /// `rmqtt.state_put(key_ptr, key_len, value_ptr, value_len, ttl_ms) -> status`.
    #[link_name = "state_put"]
    fn rmqtt_state_put(
        key_ptr: i32,
        key_len: i32,
        value_ptr: i32,
        value_len: i32,
        ttl_ms: i64,
    ) -> i32;

    /// `rmqtt.state_delete(key_ptr, key_len) -> 0 | 1`.
    #[link_name = "state_delete"]
    fn rmqtt_state_delete(key_ptr: i32, key_len: i32) -> i32;
}

/// A slice's address and length as the ABI's two `i32`s.
fn raw(bytes: &[u8]) -> (i32, i32) {
    (bytes.as_ptr() as usize as i32, bytes.len() as i32)
}

/// Sends a log line to the host.
pub(crate) fn log(level: LogLevel, text: &str) {
    // SAFETY: see the module documentation; `text` is live for the call.
    unsafe {
        rmqtt_log(
            level as i32,
            text.as_ptr() as usize as i32,
            text.len() as i32,
        )
    }
}

/// Ends the current call with `message` (cause `panic` on the host).
pub(crate) fn abort(message: &str) -> ! {
    // SAFETY: see the module documentation; `message` is live for the call.
    unsafe { rmqtt_abort(message.as_ptr() as usize as i32, message.len() as i32) }
    // The host never returns from `abort`; should one do so anyway, trap.
    std::process::abort()
}

/// Reads `key`'s value into `buf`; `false` if there is none. A value longer than `buf`'s
/// spare capacity is not copied; its length comes back, and we grow `buf` and ask again
/// (another instance may have replaced it meanwhile, hence the loop).
pub(crate) fn state_get(key: &[u8], buf: &mut Vec<u8>) -> bool {
    let (key_ptr, key_len) = raw(key);
    buf.clear();
    loop {
        let spare = buf.spare_capacity_mut();
        let (buf_ptr, buf_len) = (spare.as_mut_ptr() as usize as i32, spare.len() as i32);
        // SAFETY: see the module documentation; the host writes at most `buf_len` bytes
        // at `buf_ptr`, inside `buf`'s spare capacity.
        let len = unsafe { rmqtt_state_get(key_ptr, key_len, buf_ptr, buf_len) };
        if len < 0 {
            return false;
        }
        let len = len as usize;
        if len <= buf.capacity() {
            // SAFETY: the value fit, so the host wrote all `len` bytes of it into the
            // spare capacity, which starts at index 0 of the cleared `buf`.
            unsafe { buf.set_len(len) };
            return true;
        }
        buf.reserve(len);
    }
}

/// Copies `key`'s value into `buf` if it fits; its length, or `None` if there is none.
pub(crate) fn state_read(key: &[u8], buf: &mut [u8]) -> Option<usize> {
    let ((key_ptr, key_len), (buf_ptr, buf_len)) = (raw(key), raw(buf));
    // SAFETY: see the module documentation; the host writes at most `buf_len` bytes at
    // `buf_ptr`, inside `buf`, which we borrow mutably for the call.
    let len = unsafe { rmqtt_state_get(key_ptr, key_len, buf_ptr, buf_len) };
    usize::try_from(len).ok()
}

/// Stores `value` under `key` for `ttl_ms` (0: no expiry).
pub(crate) fn state_put(key: &[u8], value: &[u8], ttl_ms: i64) -> PutStatus {
    let ((key_ptr, key_len), (value_ptr, value_len)) = (raw(key), raw(value));
    // SAFETY: see the module documentation; both slices are live for the call.
    let status = unsafe { rmqtt_state_put(key_ptr, key_len, value_ptr, value_len, ttl_ms) };
    PutStatus::from_i32(status)
        .unwrap_or_else(|| abort(&format!("the host answered state_put with {status}")))
}

/// Removes `key`; `true` if a live key was there.
pub(crate) fn state_delete(key: &[u8]) -> bool {
    let (key_ptr, key_len) = raw(key);
    // SAFETY: see the module documentation; `key` is live for the call.
    unsafe { rmqtt_state_delete(key_ptr, key_len) == 1 }
}
