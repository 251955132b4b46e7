//! Why a transform call failed. Each cause is counted separately in `attrs()`.

use std::fmt;

/// The cause of a failed call; see docs/abi.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Ran past `transform.timeout`.
    Timeout,
    /// Tried to grow memory past `transform.max_memory`.
    Memory,
    /// Called `rmqtt.abort` (a Rust panic through the SDK).
    Panic,
    /// Any other trap: `unreachable`, out-of-bounds access, stack overflow, `proc_exit`.
    Trap,
    /// The output document, or a pointer or record in it, is invalid.
    BadOutput,
    /// The module returned status ERROR.
    GuestError,
}

impl Cause {
    pub const ALL: [Cause; 6] = [
        Cause::Timeout,
        Cause::Memory,
        Cause::Panic,
        Cause::Trap,
        Cause::BadOutput,
        Cause::GuestError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Timeout => "timeout",
            Cause::Memory => "memory",
            Cause::Panic => "panic",
            Cause::Trap => "trap",
            Cause::BadOutput => "bad_output",
            Cause::GuestError => "guest_error",
        }
    }
}

/// A failed transform call.
#[derive(Debug, Clone)]
pub struct Failure {
    pub cause: Cause,
    pub message: String,
}

impl Failure {
    pub fn new(cause: Cause, message: impl Into<String>) -> Self {
        Failure {
            cause,
            message: message.into(),
        }
    }

    /// Whether the instance must be discarded: everything but a clean, reported error
    /// may have left it in an inconsistent state.
    pub fn poisons_instance(&self) -> bool {
        self.cause != Cause::GuestError
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.cause.as_str(), self.message)
    }
}

/// Raised by the epoch callback when a call passes its deadline.
#[derive(Debug)]
pub(crate) struct DeadlineExceeded;

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// Raised by the `rmqtt.abort` import.
#[derive(Debug)]
pub(crate) struct GuestAbort(pub String);

impl fmt::Display for GuestAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GuestAbort {}

/// Raised by WASI `proc_exit`.
#[derive(Debug)]
pub(crate) struct GuestExit(pub i32);

impl fmt::Display for GuestExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the module called proc_exit({})", self.0)
    }
}

impl std::error::Error for GuestExit {}
