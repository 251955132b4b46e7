//! Logging through the host.
//!
//! In a module, these macros call the `rmqtt.log` import: the broker logs the message with
//! the bridge and entry names, rate-limited. In native tests they print to stderr.
//!
//! ```
//! use rmqtt_kafka_transform::log;
//!
//! let device = "d1";
//! log::warn!("device {device} sent an empty payload");
//! log::debug!("plain message");
//! ```
//!
//! Logging formats a string on every call; keep it off the hot path or at `debug` level
//! for occasional diagnostics.

use std::fmt;

/// Log levels, numbered as the `rmqtt.log` import expects.
pub use abi::LogLevel as Level;

#[doc(inline)]
pub use crate::{
    __rmqtt_log_debug as debug, __rmqtt_log_error as error, __rmqtt_log_info as info,
    __rmqtt_log_trace as trace, __rmqtt_log_warn as warn,
};

/// Logs a preformatted message at `level`. The macros are usually more convenient.
pub fn log(level: Level, args: fmt::Arguments<'_>) {
    match args.as_str() {
        Some(text) => write(level, text),
        None => write(level, &args.to_string()),
    }
}

#[cfg(target_arch = "wasm32")]
fn write(level: Level, text: &str) {
    crate::sys::log(level, text);
}

#[cfg(not(target_arch = "wasm32"))]
fn write(level: Level, text: &str) {
    let name = match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    };
    eprintln!("[transform {name}] {text}");
}

/// Logs at error level: `log::error!("format {}", args)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __rmqtt_log_error {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Error, ::core::format_args!($($arg)+)) };
}

/// Logs at warn level: `log::warn!("format {}", args)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __rmqtt_log_warn {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Warn, ::core::format_args!($($arg)+)) };
}

/// Logs at info level: `log::info!("format {}", args)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __rmqtt_log_info {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Info, ::core::format_args!($($arg)+)) };
}

/// Logs at debug level: `log::debug!("format {}", args)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __rmqtt_log_debug {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Debug, ::core::format_args!($($arg)+)) };
}

/// Logs at trace level: `log::trace!("format {}", args)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __rmqtt_log_trace {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Trace, ::core::format_args!($($arg)+)) };
}
