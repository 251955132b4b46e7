//! The only `unsafe` in the SDK: declaring and calling the host's imports.
//!
//! Why this is sound:
//! - Calling a foreign function is `unsafe` because Rust cannot check its signature. The
//!   signatures below are the ones `docs/abi.md` fixes for the `rmqtt` import module, and
//!   the host checks them when it links the module (a mismatch fails instantiation, it
//!   cannot be called with the wrong types).
//! - Both imports only *read* `len` bytes at `ptr` from linear memory. We pass the address
//!   and length of a live `&str`, which stays borrowed for the whole call, so the host reads
//!   initialized, valid UTF-8 memory. Neither import writes to guest memory or re-enters
//!   the module.
//! - On wasm32 a pointer is 32 bits, so `ptr as usize as i32` keeps every bit; `len` fits
//!   too, since a slice in a 32-bit address space is shorter than 4 GiB (`as i32` reinterprets
//!   the bits, and the host reads the value as unsigned).

use abi::LogLevel;

#[link(wasm_import_module = "rmqtt")]
unsafe extern "C" {
    /// `rmqtt.log(level, ptr, len)`.
    #[link_name = "log"]
    fn rmqtt_log(level: i32, ptr: i32, len: i32);

    /// `rmqtt.abort(ptr, len)`: never returns (the host traps the call).
    #[link_name = "abort"]
    fn rmqtt_abort(ptr: i32, len: i32);
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
