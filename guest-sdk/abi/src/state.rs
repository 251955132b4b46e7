//! The state store's host calls: a key–value store per entry, shared by all instances
//! of the entry's pool. They are optional imports of the `rmqtt` module; a module that
//! does not import them is unaffected (docs/abi.md, "State").
//!
//! ```text
//! state_get(key_ptr, key_len, buf_ptr, buf_len) -> i32
//!     the value's length, copied to buf only when it fits; ABSENT (-1) if no live key
//! state_put(key_ptr, key_len, value_ptr, value_len, ttl_ms: i64) -> i32
//!     a PutStatus; ttl_ms 0 keeps the key until it is deleted or replaced
//! state_delete(key_ptr, key_len) -> i32
//!     1 if a live key was removed, 0 if there was none
//! ```
//!
//! A call whose pointers lie outside linear memory traps (cause `trap`).

/// `state_get(key_ptr, key_len, buf_ptr, buf_len) -> i32`.
pub const IMPORT_GET: &str = "state_get";
/// `state_put(key_ptr, key_len, value_ptr, value_len, ttl_ms) -> i32`.
pub const IMPORT_PUT: &str = "state_put";
/// `state_delete(key_ptr, key_len) -> i32`.
pub const IMPORT_DELETE: &str = "state_delete";

/// `state_get`'s answer when the key is not there (or has expired).
pub const ABSENT: i32 = -1;
/// Longest key, in bytes.
pub const MAX_KEY_LEN: u32 = 1024;

/// `state_put`'s answer.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutStatus {
    /// Stored.
    Ok = 0,
    /// A new key would pass `transform.state_max_keys`.
    TooManyKeys = 1,
    /// The key and value would pass `transform.state_max_bytes`.
    TooManyBytes = 2,
    /// The key is longer than [`MAX_KEY_LEN`].
    KeyTooLong = 3,
    /// The TTL is negative.
    BadTtl = 4,
}

impl PutStatus {
    pub const ALL: [PutStatus; 5] = [
        PutStatus::Ok,
        PutStatus::TooManyKeys,
        PutStatus::TooManyBytes,
        PutStatus::KeyTooLong,
        PutStatus::BadTtl,
    ];

    pub fn from_i32(v: i32) -> Option<PutStatus> {
        PutStatus::ALL.into_iter().find(|s| *s as i32 == v)
    }

    /// A name for metrics and errors: `too_many_keys`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            PutStatus::Ok => "ok",
            PutStatus::TooManyKeys => "too_many_keys",
            PutStatus::TooManyBytes => "too_many_bytes",
            PutStatus::KeyTooLong => "key_too_long",
            PutStatus::BadTtl => "bad_ttl",
        }
    }
}
