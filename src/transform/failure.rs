//! Why a transform call failed: a typed cause, decided where the failure happens and
//! counted per entry and cause in `attrs()`.

use std::fmt;

/// The cause of a failed call; see docs/abi.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Ran past `transform.timeout`.
    Timeout,
    /// Tried to grow memory past `transform.max_memory`, or could not allocate the
    /// input buffer (`rmqtt_transform_reserve` returned 0).
    Memory,
    /// Called `rmqtt.abort` (a Rust panic through the SDK).
    Panic,
    /// Any other trap: `unreachable`, out-of-bounds access, stack overflow, `proc_exit`.
    Trap,
    /// The output document, a pointer in it, or a record in it is invalid.
    BadOutput,
    /// The module returned status ERROR.
    GuestError,
    /// The message's input document does not fit the 32-bit ABI (over 4 GiB).
    InputTooLarge,
    /// No instance could serve the call: the pool is closed, or a discarded instance
    /// could not be replaced.
    Unavailable,
}

impl Cause {
    pub const ALL: [Cause; 8] = [
        Cause::Timeout,
        Cause::Memory,
        Cause::Panic,
        Cause::Trap,
        Cause::BadOutput,
        Cause::GuestError,
        Cause::InputTooLarge,
        Cause::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Timeout => "timeout",
            Cause::Memory => "memory",
            Cause::Panic => "panic",
            Cause::Trap => "trap",
            Cause::BadOutput => "bad_output",
            Cause::GuestError => "guest_error",
            Cause::InputTooLarge => "input_too_large",
            Cause::Unavailable => "unavailable",
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

    /// Whether the instance must be discarded: a guest that trapped, ran out of time or
    /// memory, or wrote a bad output may be inconsistent. A reported error, or a failure
    /// that never reached the guest, leaves it as it was.
    pub fn poisons_instance(&self) -> bool {
        !matches!(
            self.cause,
            Cause::GuestError | Cause::InputTooLarge | Cause::Unavailable
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.cause.as_str(), self.message)
    }
}

impl std::error::Error for Failure {}

/// Raised by the epoch callback when a call passes its deadline.
#[derive(Debug)]
pub(crate) struct DeadlineExceeded;

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// Raised by the epoch callback when a call on the fast path (without a fiber) has run
/// for more than one tick: it cannot yield, so it is stopped and run again on a fiber.
#[derive(Debug)]
pub(crate) struct NeedsFiber;

impl fmt::Display for NeedsFiber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the call ran longer than the fast path allows")
    }
}

impl std::error::Error for NeedsFiber {}

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
