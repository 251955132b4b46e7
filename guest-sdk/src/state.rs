//! The entry's state store: keys and values that outlive a message, shared by every
//! instance of the entry's pool. Sparkplug B aliases, last values for deadbands and
//! deduplication windows live here.
//!
//! ```
//! use std::time::Duration;
//! use rmqtt_kafka_transform::state;
//!
//! state::put("alias/7", "temperature").unwrap();
//! assert_eq!(state::get("alias/7").as_deref(), Some(&b"temperature"[..]));
//! state::put_for("seen/abc", "", Duration::from_secs(60)).unwrap();
//! assert!(state::delete("alias/7"));
//! assert_eq!(state::get("alias/7"), None);
//! ```
//!
//! What the host promises (docs/abi.md, "State"): each key is atomic and the last
//! writer wins; there are no transactions, so a get and a later put may interleave with
//! another instance's. A put is visible to every instance of the entry once it returns.
//! The store is bounded by `transform.state_max_keys` and `transform.state_max_bytes`:
//! a put past them returns a [`StateError`] and the module decides what to do.
//!
//! In native tests the store is a map of the test's thread, unbounded except for the
//! key length, so a test can feed a BIRTH and then the DATA that needs it.

use std::fmt;
use std::time::Duration;

use abi::state::{PutStatus, MAX_KEY_LEN};

/// The value of `key`, if it is there and has not expired.
pub fn get(key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
    let mut value = Vec::with_capacity(FIRST_GUESS);
    get_into(key, &mut value).then_some(value)
}

/// Bytes `get` makes room for before it knows a value's length: most values fit, so most
/// gets take one host call.
const FIRST_GUESS: usize = 128;

/// Puts the value of `key` in `buf` (replacing what was there) and returns `true`, or
/// returns `false` if there is no such key. Reusing `buf` saves an allocation per call.
pub fn get_into(key: impl AsRef<[u8]>, buf: &mut Vec<u8>) -> bool {
    store::get_into(key.as_ref(), buf)
}

/// Copies the value of `key` into `buf` if it fits, and returns its length (which,
/// when it is over `buf.len()`, says how much room it needs); `None` if there is no such
/// key. The cheapest read: nothing is allocated.
///
/// ```
/// use rmqtt_kafka_transform::state;
///
/// state::put("last", 21.5f64.to_le_bytes()).unwrap();
/// let mut bytes = [0; 8];
/// assert_eq!(state::read("last", &mut bytes), Some(8));
/// assert_eq!(f64::from_le_bytes(bytes), 21.5);
/// ```
pub fn read(key: impl AsRef<[u8]>, buf: &mut [u8]) -> Option<usize> {
    store::read(key.as_ref(), buf)
}

/// Sets `key` to `value`, with no expiry.
pub fn put(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), StateError> {
    put_checked(key.as_ref(), value.as_ref(), 0)
}

/// Sets `key` to `value` for `ttl` (whole milliseconds, rounded up); after that the key
/// reads as absent.
pub fn put_for(
    key: impl AsRef<[u8]>,
    value: impl AsRef<[u8]>,
    ttl: Duration,
) -> Result<(), StateError> {
    let ms = ttl.as_nanos().div_ceil(1_000_000).max(1);
    put_checked(
        key.as_ref(),
        value.as_ref(),
        i64::try_from(ms).unwrap_or(i64::MAX),
    )
}

/// Removes `key`; `true` if it was there.
pub fn delete(key: impl AsRef<[u8]>) -> bool {
    store::delete(key.as_ref())
}

fn put_checked(key: &[u8], value: &[u8], ttl_ms: i64) -> Result<(), StateError> {
    if key.len() > MAX_KEY_LEN as usize {
        return Err(StateError::KeyTooLong { len: key.len() });
    }
    match store::put(key, value, ttl_ms) {
        PutStatus::Ok => Ok(()),
        PutStatus::TooManyKeys => Err(StateError::TooManyKeys),
        PutStatus::TooManyBytes => Err(StateError::TooManyBytes),
        PutStatus::KeyTooLong => Err(StateError::KeyTooLong { len: key.len() }),
        // The SDK never sends a negative TTL.
        PutStatus::BadTtl => unreachable!("negative TTL"),
    }
}

/// Why a put was refused. Converts into [`crate::Error`] with `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// The key is new and the store holds `transform.state_max_keys` keys.
    TooManyKeys,
    /// Storing it would pass `transform.state_max_bytes` (keys and values).
    TooManyBytes,
    /// The key is longer than the ABI's 1024 bytes.
    KeyTooLong {
        /// The key's length.
        len: usize,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::TooManyKeys => {
                f.write_str("the state store is full: transform.state_max_keys reached")
            }
            StateError::TooManyBytes => {
                f.write_str("the state store is full: transform.state_max_bytes reached")
            }
            StateError::KeyTooLong { len } => {
                write!(f, "a state key of {len} bytes; the limit is {MAX_KEY_LEN}")
            }
        }
    }
}

impl std::error::Error for StateError {}

/// The host's store, through the `rmqtt.state_*` imports.
#[cfg(target_arch = "wasm32")]
mod store {
    pub(super) use crate::sys::{
        state_delete as delete, state_get as get_into, state_put as put, state_read as read,
    };
}

/// A map per thread, standing in for the host's store in native tests.
#[cfg(not(target_arch = "wasm32"))]
mod store {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use abi::state::PutStatus;

    type Map = HashMap<Vec<u8>, (Vec<u8>, Option<Instant>)>;

    thread_local! {
        static STORE: RefCell<Map> = RefCell::default();
    }

    fn live(entry: &(Vec<u8>, Option<Instant>)) -> bool {
        entry.1.is_none_or(|at| Instant::now() < at)
    }

    pub(super) fn get_into(key: &[u8], buf: &mut Vec<u8>) -> bool {
        STORE.with_borrow(|map| match map.get(key).filter(|e| live(e)) {
            Some((value, _)) => {
                buf.clear();
                buf.extend_from_slice(value);
                true
            }
            None => false,
        })
    }

    pub(super) fn read(key: &[u8], buf: &mut [u8]) -> Option<usize> {
        STORE.with_borrow(|map| {
            let (value, _) = map.get(key).filter(|e| live(e))?;
            if let Some(room) = buf.get_mut(..value.len()) {
                room.copy_from_slice(value);
            }
            Some(value.len())
        })
    }

    pub(super) fn put(key: &[u8], value: &[u8], ttl_ms: i64) -> PutStatus {
        let expires = (ttl_ms > 0).then(|| Instant::now() + Duration::from_millis(ttl_ms as u64));
        STORE.with_borrow_mut(|map| map.insert(key.to_vec(), (value.to_vec(), expires)));
        PutStatus::Ok
    }

    pub(super) fn delete(key: &[u8]) -> bool {
        STORE.with_borrow_mut(|map| map.remove(key).is_some_and(|e| live(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outlive_the_call_and_expire() {
        put("k", "v1").unwrap();
        put("k", "v2").unwrap();
        assert_eq!(get("k").as_deref(), Some(&b"v2"[..]));
        put_for("t", "x", Duration::from_millis(1)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(get("t"), None);
        assert!(!delete("t"), "an expired key is not there to delete");
        let mut buf = b"old".to_vec();
        assert!(get_into("k", &mut buf));
        assert_eq!(buf, b"v2");
        assert!(!get_into("nothing", &mut buf));
        let mut small = [0; 1];
        assert_eq!(
            read("k", &mut small),
            Some(2),
            "too long: its length, nothing copied"
        );
        assert_eq!(small, [0]);
        assert_eq!(read("nothing", &mut small), None);
    }

    #[test]
    fn a_long_key_is_refused_with_its_length() {
        let key = vec![b'k'; 1025];
        let err = put(&key, "v").unwrap_err();
        assert_eq!(err, StateError::KeyTooLong { len: 1025 });
        assert_eq!(
            err.to_string(),
            "a state key of 1025 bytes; the limit is 1024"
        );
        let e: crate::Error = err.into();
        assert!(e.to_string().contains("1024"));
    }
}
