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
    /// The output document, a pointer in it, or a record in it is invalid; or the module
    /// said its output was (status INVALID: a script returned something not records).
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
    /// The guest reported it itself (status ERROR or INVALID), so it is consistent.
    reported: bool,
}

impl Failure {
    pub fn new(cause: Cause, message: impl Into<String>) -> Self {
        Failure {
            cause,
            message: message.into(),
            reported: false,
        }
    }

    /// A failure the guest reported in its output document.
    pub(crate) fn reported(cause: Cause, message: &[u8]) -> Self {
        Failure {
            reported: true,
            ..Failure::new(cause, String::from_utf8_lossy(message))
        }
    }

    /// Whether the instance must be discarded: a guest that trapped, ran out of time or
    /// memory, or wrote a bad output may be inconsistent. A failure it reported itself,
    /// or one that never reached the guest, leaves it as it was.
    pub fn poisons_instance(&self) -> bool {
        !self.reported && !matches!(self.cause, Cause::InputTooLarge | Cause::Unavailable)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.cause.as_str(), self.message)
    }
}

impl std::error::Error for Failure {}

/// Why the host ended a guest call from one of its callbacks or imports: raised as the
/// call's error, and read back by the instance to classify the failure.
#[derive(Debug)]
pub(crate) enum Stopped {
    /// The epoch callback: the call passed its deadline.
    Deadline,
    /// The epoch callback: a call on the fast path (without a fiber) ran for more than
    /// one tick; it cannot yield, so it is stopped and run again on a fiber.
    NeedsFiber,
    /// The `rmqtt.abort` import, with the guest's message.
    Abort(String),
    /// WASI `proc_exit`, with its code.
    Exit(i32),
    /// A host call's argument (named) lies outside linear memory.
    OutOfBounds(&'static str),
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stopped::Deadline => f.write_str("deadline exceeded"),
            Stopped::NeedsFiber => f.write_str("the call ran longer than the fast path allows"),
            Stopped::Abort(message) => f.write_str(message),
            Stopped::Exit(code) => write!(f, "the module called proc_exit({code})"),
            Stopped::OutOfBounds(what) => {
                write!(f, "a host call's {what} lies outside linear memory")
            }
        }
    }
}

impl std::error::Error for Stopped {}
