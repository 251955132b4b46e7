//! The transform ABI, version 1: export names, status codes, the byte layouts that
//! cross the boundary between the bridge (host) and a transform module (guest), and the
//! [`rules`] a returned record must follow.
//!
//! `docs/abi.md` is the normative description for authors in any language. This crate is
//! its executable form; the host and the Rust guest SDK both use it, so the two sides
//! cannot drift apart.
//!
//! All integers are little-endian. A length field equal to [`ABSENT`] marks an absent
//! optional value.
#![no_std]

pub mod config;
pub mod input;
pub mod output;
pub mod rules;
pub mod sample;
pub mod script;
pub mod state;
mod wire;

pub use wire::WireError;

/// The ABI version this crate describes.
pub const VERSION: u32 = 1;

/// Empty function a module exports to declare that it targets ABI v1. It is never called.
pub const EXPORT_ABI_MARKER: &str = "rmqtt_transform_abi_v1";
/// Prefix shared by the marker exports of every ABI version (`..._v1`, `..._v2`, ...).
pub const ABI_MARKER_PREFIX: &str = "rmqtt_transform_abi_v";
/// The module's linear memory.
pub const EXPORT_MEMORY: &str = "memory";
/// `(len: i32) -> i32`: a guest buffer of at least `len` bytes for the host to write into.
pub const EXPORT_RESERVE: &str = "rmqtt_transform_reserve";
/// `(ptr: i32, len: i32) -> i64`: transform one input document; returns a packed output pointer.
pub const EXPORT_TRANSFORM: &str = "rmqtt_transform";
/// Optional `(ptr: i32, len: i32) -> i64`: receive the config document once per instance.
pub const EXPORT_INIT: &str = "rmqtt_transform_init";

/// Import module of the optional host functions.
pub const IMPORT_MODULE: &str = "rmqtt";
/// `(level: i32, ptr: i32, len: i32)`: log a UTF-8 message at a [`LogLevel`].
pub const IMPORT_LOG: &str = "log";
/// `(ptr: i32, len: i32)`: abort the current call with a UTF-8 message (used for panics).
pub const IMPORT_ABORT: &str = "abort";

/// Length value that marks an absent optional field.
pub const ABSENT: u32 = u32::MAX;

/// Most records one call may return: the ceiling of the host's `transform.max_records`
/// (default [`DEFAULT_MAX_RECORDS`]), which an entry may set lower.
pub const MAX_RECORDS: u32 = 65_536;
/// `transform.max_records` when the entry does not set it.
pub const DEFAULT_MAX_RECORDS: u32 = 1024;
/// Most headers one record may carry.
pub const MAX_HEADERS: u32 = 1024;

/// First word of every output document.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Records follow (zero records means the message is filtered out).
    Ok = 0,
    /// A UTF-8 error message follows; the host applies the entry's `on_error` policy.
    Error = 1,
    /// As ERROR, but the module found its own output invalid: a runtime for another
    /// language refusing what its script returned. Counted `bad_output`.
    Invalid = 2,
}

impl Status {
    pub fn from_u32(v: u32) -> Option<Status> {
        match v {
            0 => Some(Status::Ok),
            1 => Some(Status::Error),
            2 => Some(Status::Invalid),
            _ => None,
        }
    }
}

/// Levels accepted by the `rmqtt.log` import; the numbering follows the `log` crate.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl LogLevel {
    pub fn from_u32(v: u32) -> Option<LogLevel> {
        match v {
            1 => Some(LogLevel::Error),
            2 => Some(LogLevel::Warn),
            3 => Some(LogLevel::Info),
            4 => Some(LogLevel::Debug),
            5 => Some(LogLevel::Trace),
            _ => None,
        }
    }
}

/// Packs a guest pointer and length into the `i64` that `rmqtt_transform` returns.
#[inline]
pub fn pack(ptr: u32, len: u32) -> u64 {
    (u64::from(ptr) << 32) | u64::from(len)
}

/// Splits a packed return value into `(ptr, len)`.
#[inline]
pub fn unpack(packed: u64) -> (u32, u32) {
    ((packed >> 32) as u32, packed as u32)
}
