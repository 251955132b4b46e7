//! The `rmqtt` import module: logging and aborting with a message.

use wasmtime::{Caller, Linker, Result};

use super::{guest_text, memory};
use crate::log_limited;
use crate::transform::failure::Stopped;
use crate::transform::state::HostState;

pub(super) fn define(linker: &mut Linker<HostState>) -> Result<()> {
    linker.func_wrap(abi::IMPORT_MODULE, abi::IMPORT_LOG, log)?;
    linker.func_wrap(abi::IMPORT_MODULE, abi::IMPORT_ABORT, abort)?;
    Ok(())
}

/// `rmqtt.log(level, ptr, len)`: a line in the broker's log, rate-limited per module.
fn log(mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32) {
    let Some((mem, state)) = memory(&mut caller) else {
        return;
    };
    let level = log_level(level);
    if log::log_enabled!(level) {
        let text = guest_text(mem, ptr, len);
        log_limited!(
            state.guest_log,
            level,
            "{}: module says: {text}",
            state.label
        );
    }
}

/// `rmqtt.abort(ptr, len)`: ends the call as a `panic` with the guest's message.
fn abort(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> Result<()> {
    let text = memory(&mut caller).map_or_else(String::new, |(mem, _)| guest_text(mem, ptr, len));
    Err(Stopped::Abort(text).into())
}

fn log_level(level: i32) -> log::Level {
    match abi::LogLevel::from_u32(level as u32) {
        Some(abi::LogLevel::Error) => log::Level::Error,
        Some(abi::LogLevel::Warn) => log::Level::Warn,
        Some(abi::LogLevel::Info) | None => log::Level::Info,
        Some(abi::LogLevel::Debug) => log::Level::Debug,
        Some(abi::LogLevel::Trace) => log::Level::Trace,
    }
}
