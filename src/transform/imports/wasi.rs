//! A deny-by-default subset of WASI preview 1: no files, no environment, no arguments and
//! no network; stdout and stderr go to the log. It is a sandbox policy, not a WASI
//! implementation: a full one (wasmtime-wasi) would pull the component model into the
//! build to grant capabilities that a transform must not have.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Linker, Result};

use super::{memory, range, MAX_LOG_LINE};
use crate::log_limited;
use crate::transform::failure::Stopped;
use crate::transform::state::HostState;

const WASI: &str = "wasi_snapshot_preview1";

const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;

pub(super) fn define(linker: &mut Linker<HostState>) -> Result<()> {
    linker.func_wrap(WASI, "fd_write", fd_write)?;
    linker.func_wrap(WASI, "environ_sizes_get", zero_sizes)?;
    linker.func_wrap(WASI, "args_sizes_get", zero_sizes)?;
    linker.func_wrap(WASI, "environ_get", nothing_to_get)?;
    linker.func_wrap(WASI, "args_get", nothing_to_get)?;
    linker.func_wrap(WASI, "clock_time_get", clock_time_get)?;
    linker.func_wrap(WASI, "random_get", random_get)?;
    linker.func_wrap(WASI, "sched_yield", || ERRNO_SUCCESS)?;
    linker.func_wrap(WASI, "proc_exit", proc_exit)?;
    linker.func_wrap(WASI, "fd_close", |_: i32| ERRNO_BADF)?;
    linker.func_wrap(WASI, "fd_fdstat_get", |_: i32, _: i32| ERRNO_BADF)?;
    linker.func_wrap(WASI, "fd_prestat_get", |_: i32, _: i32| ERRNO_BADF)?;
    linker.func_wrap(WASI, "fd_prestat_dir_name", |_: i32, _: i32, _: i32| {
        ERRNO_BADF
    })?;
    linker.func_wrap(WASI, "fd_seek", |_: i32, _: i64, _: i32, _: i32| ERRNO_BADF)?;
    Ok(())
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

/// `fd_write` to stdout or stderr: the text goes to the debug log; other fds are refused.
fn fd_write(
    mut caller: Caller<'_, HostState>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nwritten: i32,
) -> i32 {
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
        let (Some(buf), Some(len)) = (read_u32(mem, at), read_u32(mem, at.wrapping_add(4))) else {
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
}

/// `environ_sizes_get` / `args_sizes_get`: there are none.
fn zero_sizes(mut caller: Caller<'_, HostState>, count: i32, size: i32) -> i32 {
    let Some((mem, _)) = memory(&mut caller) else {
        return ERRNO_FAULT;
    };
    match write_bytes(mem, count, &0u32.to_le_bytes()) {
        ERRNO_SUCCESS => write_bytes(mem, size, &0u32.to_le_bytes()),
        e => e,
    }
}

/// `environ_get` / `args_get`: nothing to write.
fn nothing_to_get(_: i32, _: i32) -> i32 {
    ERRNO_SUCCESS
}

/// `clock_time_get`: the real-time clock, or a monotonic one for the other clock ids.
fn clock_time_get(mut caller: Caller<'_, HostState>, id: i32, _precision: i64, out: i32) -> i32 {
    let ns: u64 = match id {
        0 => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        1..=3 => {
            static START: OnceLock<Instant> = OnceLock::new();
            START.get_or_init(Instant::now).elapsed().as_nanos() as u64
        }
        _ => return ERRNO_INVAL,
    };
    let Some((mem, _)) = memory(&mut caller) else {
        return ERRNO_FAULT;
    };
    write_bytes(mem, out, &ns.to_le_bytes())
}

/// `random_get`: bytes from the operating system.
fn random_get(mut caller: Caller<'_, HostState>, buf: i32, len: i32) -> i32 {
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
}

/// `proc_exit`: ends the call as a trap.
fn proc_exit(code: i32) -> Result<()> {
    Err(Stopped::Exit(code).into())
}
