//! Functions a module may import: `rmqtt.log`, `rmqtt.abort`, and a deny-by-default
//! subset of WASI preview 1 so that modules built for `wasm32-wasip1` load. There are no
//! files, no environment, no arguments and no network; stdout and stderr go to the log.
//!
//! This is deliberately a sandbox policy, not a WASI implementation: a full one
//! (wasmtime-wasi) would pull the component model into the build to grant capabilities
//! that a transform must not have.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Linker, Result};

use super::failure::{GuestAbort, GuestExit};
use super::instance::HostState;
use crate::log_limited;

const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;

const WASI: &str = "wasi_snapshot_preview1";

/// Most bytes of one guest log line that reach the host log.
const MAX_LOG_LINE: usize = 4096;

/// The guest's memory and the host state, borrowed together.
fn memory<'a>(caller: &'a mut Caller<'_, HostState>) -> Option<(&'a mut [u8], &'a mut HostState)> {
    let mem = caller.data().memory?;
    Some(mem.data_and_store_mut(caller))
}

fn range(ptr: i32, len: usize, mem_len: usize) -> Option<std::ops::Range<usize>> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len)?;
    (end <= mem_len).then_some(start..end)
}

fn read_u32(mem: &[u8], ptr: i32) -> Option<u32> {
    let r = range(ptr, 4, mem.len())?;
    Some(u32::from_le_bytes(mem[r].try_into().ok()?))
}

fn write_bytes(mem: &mut [u8], ptr: i32, bytes: &[u8]) -> i32 {
    match range(ptr, bytes.len(), mem.len()) {
        Some(r) => {
            mem[r].copy_from_slice(bytes);
            ERRNO_SUCCESS
        }
        None => ERRNO_FAULT,
    }
}

fn guest_text(mem: &[u8], ptr: i32, len: i32) -> String {
    let len = (len as u32 as usize).min(MAX_LOG_LINE);
    match range(ptr, len, mem.len()) {
        Some(r) => String::from_utf8_lossy(&mem[r]).into_owned(),
        None => "<message outside linear memory>".into(),
    }
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

/// Defines every import this host provides.
pub(crate) fn define(linker: &mut Linker<HostState>) -> Result<()> {
    linker.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_LOG,
        |mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
            if let Some((mem, state)) = memory(&mut caller) {
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
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_ABORT,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> Result<()> {
            let text =
                memory(&mut caller).map_or_else(String::new, |(mem, _)| guest_text(mem, ptr, len));
            Err(GuestAbort(text).into())
        },
    )?;

    linker.func_wrap(
        WASI,
        "fd_write",
        |mut caller: Caller<'_, HostState>,
         fd: i32,
         iovs: i32,
         iovs_len: i32,
         nwritten: i32|
         -> i32 {
            if fd != 1 && fd != 2 {
                return ERRNO_BADF;
            }
            let Some((mem, state)) = memory(&mut caller) else {
                return ERRNO_FAULT;
            };
            let mut total: u32 = 0;
            let mut text = Vec::new();
            for i in 0..iovs_len.max(0) {
                let at = iovs.wrapping_add(i.wrapping_mul(8));
                let (Some(buf), Some(len)) = (read_u32(mem, at), read_u32(mem, at.wrapping_add(4)))
                else {
                    return ERRNO_FAULT;
                };
                let Some(r) = range(buf as i32, len as usize, mem.len()) else {
                    return ERRNO_FAULT;
                };
                let room = MAX_LOG_LINE.saturating_sub(text.len());
                text.extend_from_slice(&mem[r][..(len as usize).min(room)]);
                total = total.saturating_add(len);
            }
            if log::log_enabled!(log::Level::Debug) {
                let stream = if fd == 1 { "stdout" } else { "stderr" };
                let text = String::from_utf8_lossy(&text);
                log_limited!(
                    state.guest_log,
                    log::Level::Debug,
                    "{}: module {stream}: {}",
                    state.label,
                    text.trim_end()
                );
            }
            write_bytes(mem, nwritten, &total.to_le_bytes())
        },
    )?;
    for name in ["environ_sizes_get", "args_sizes_get"] {
        linker.func_wrap(
            WASI,
            name,
            |mut caller: Caller<'_, HostState>, count: i32, size: i32| -> i32 {
                let Some((mem, _)) = memory(&mut caller) else {
                    return ERRNO_FAULT;
                };
                match write_bytes(mem, count, &0u32.to_le_bytes()) {
                    ERRNO_SUCCESS => write_bytes(mem, size, &0u32.to_le_bytes()),
                    e => e,
                }
            },
        )?;
    }
    for name in ["environ_get", "args_get"] {
        linker.func_wrap(WASI, name, |_: i32, _: i32| -> i32 { ERRNO_SUCCESS })?;
    }
    linker.func_wrap(
        WASI,
        "clock_time_get",
        |mut caller: Caller<'_, HostState>, id: i32, _precision: i64, out: i32| -> i32 {
            let ns: u64 = match id {
                0 => SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
                1..=3 => {
                    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
                    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
                }
                _ => return ERRNO_INVAL,
            };
            let Some((mem, _)) = memory(&mut caller) else {
                return ERRNO_FAULT;
            };
            write_bytes(mem, out, &ns.to_le_bytes())
        },
    )?;
    linker.func_wrap(
        WASI,
        "random_get",
        |mut caller: Caller<'_, HostState>, buf: i32, len: i32| -> i32 {
            let Some((mem, _)) = memory(&mut caller) else {
                return ERRNO_FAULT;
            };
            let Some(r) = range(buf, len as u32 as usize, mem.len()) else {
                return ERRNO_FAULT;
            };
            match getrandom::fill(&mut mem[r]) {
                Ok(()) => ERRNO_SUCCESS,
                Err(_) => ERRNO_FAULT,
            }
        },
    )?;
    linker.func_wrap(WASI, "sched_yield", || -> i32 { ERRNO_SUCCESS })?;
    linker.func_wrap(WASI, "proc_exit", |code: i32| -> Result<()> {
        Err(GuestExit(code).into())
    })?;
    linker.func_wrap(WASI, "fd_close", |_: i32| -> i32 { ERRNO_BADF })?;
    linker.func_wrap(WASI, "fd_fdstat_get", |_: i32, _: i32| -> i32 {
        ERRNO_BADF
    })?;
    linker.func_wrap(WASI, "fd_prestat_get", |_: i32, _: i32| -> i32 {
        ERRNO_BADF
    })?;
    linker.func_wrap(
        WASI,
        "fd_prestat_dir_name",
        |_: i32, _: i32, _: i32| -> i32 { ERRNO_BADF },
    )?;
    linker.func_wrap(WASI, "fd_seek", |_: i32, _: i64, _: i32, _: i32| -> i32 {
        ERRNO_BADF
    })?;
    Ok(())
}
