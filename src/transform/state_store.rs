//! An entry's state store: the keys and values its module keeps across messages
//! (`rmqtt.state_*`), shared by every instance of the entry's pool and bounded by
//! `transform.state_max_keys` and `transform.state_max_bytes`.
//!
//! Sharded maps under short locks: a get copies the value straight into guest memory
//! while holding its shard, so a hit allocates nothing. The bounds are counters
//! reserved before an insert and given back when a key goes, so they hold exactly even
//! while instances race.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use abi::state::{PutStatus, MAX_KEY_LEN};

/// Shards: enough that a pool's instances (at most 256) rarely meet on one lock.
const SHARDS: usize = 32;

/// A key's value and its expiry, in ms since the store's start (0: none).
struct Value {
    bytes: Box<[u8]>,
    expires_ms: u64,
}

type Shard = HashMap<Box<[u8]>, Value>;

pub struct StateStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    started: Instant,
    keys: AtomicUsize,
    /// Bytes of keys and values.
    bytes: AtomicUsize,
    max_keys: AtomicUsize,
    max_bytes: AtomicUsize,
    /// Refused puts by [`PutStatus`].
    refused: [AtomicU64; PutStatus::ALL.len()],
}

impl StateStore {
    pub fn new(max_keys: usize, max_bytes: usize) -> StateStore {
        StateStore {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            started: Instant::now(),
            keys: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max_keys: AtomicUsize::new(max_keys),
            max_bytes: AtomicUsize::new(max_bytes),
            refused: Default::default(),
        }
    }

    /// New bounds, for a store a reload carries over. Keys already over them stay; puts
    /// that need room fail until enough are gone.
    pub fn set_limits(&self, max_keys: usize, max_bytes: usize) {
        self.max_keys.store(max_keys, Ordering::Relaxed);
        self.max_bytes.store(max_bytes, Ordering::Relaxed);
    }

    /// Copies `key`'s value into `out` if it fits, and returns its length; `None` if
    /// the key is not there or has expired.
    pub fn get(&self, key: &[u8], out: &mut [u8]) -> Option<usize> {
        let mut shard = self.shard(key);
        let value = shard.get(key)?;
        if self.expired(value) {
            let (key, value) = shard.remove_entry(key)?;
            drop(shard);
            self.released(&key, &value);
            return None;
        }
        let len = value.bytes.len();
        if let Some(out) = out.get_mut(..len) {
            out.copy_from_slice(&value.bytes);
        }
        Some(len)
    }

    /// Stores `value` under `key`, for `ttl_ms` (0: no expiry), if the bounds allow;
    /// expired keys are swept once to make room before a put is refused.
    pub fn put(&self, key: &[u8], value: &[u8], ttl_ms: i64) -> PutStatus {
        let status = match u64::try_from(ttl_ms) {
            Err(_) => PutStatus::BadTtl,
            Ok(_) if key.len() > MAX_KEY_LEN as usize => PutStatus::KeyTooLong,
            Ok(ttl) => match self.try_put(key, value, ttl) {
                PutStatus::TooManyKeys | PutStatus::TooManyBytes if self.sweep() > 0 => {
                    self.try_put(key, value, ttl)
                }
                status => status,
            },
        };
        if status != PutStatus::Ok {
            self.refused[status as usize].fetch_add(1, Ordering::Relaxed);
        }
        status
    }

    /// Removes `key`; whether a live key was there.
    pub fn delete(&self, key: &[u8]) -> bool {
        let Some((key, value)) = self.shard(key).remove_entry(key) else {
            return false;
        };
        self.released(&key, &value);
        !self.expired(&value)
    }

    fn try_put(&self, key: &[u8], value: &[u8], ttl_ms: u64) -> PutStatus {
        let expires_ms = match ttl_ms {
            0 => 0,
            ttl => self.now_ms().saturating_add(ttl),
        };
        let new = Value {
            bytes: value.into(),
            expires_ms,
        };
        let mut shard = self.shard(key);
        match shard.get_mut(key) {
            Some(old) => {
                let (old_len, new_len) = (old.bytes.len(), new.bytes.len());
                if !self.reserve_bytes(new_len.saturating_sub(old_len)) {
                    return PutStatus::TooManyBytes;
                }
                self.bytes
                    .fetch_sub(old_len.saturating_sub(new_len), Ordering::Relaxed);
                *old = new;
            }
            None => {
                if !reserve(&self.keys, 1, self.max_keys.load(Ordering::Relaxed)) {
                    return PutStatus::TooManyKeys;
                }
                if !self.reserve_bytes(key.len() + new.bytes.len()) {
                    self.keys.fetch_sub(1, Ordering::Relaxed);
                    return PutStatus::TooManyBytes;
                }
                shard.insert(key.into(), new);
            }
        }
        PutStatus::Ok
    }

    fn reserve_bytes(&self, n: usize) -> bool {
        reserve(&self.bytes, n, self.max_bytes.load(Ordering::Relaxed))
    }

    /// Removes every expired key; how many went.
    fn sweep(&self) -> usize {
        let now = self.now_ms();
        let mut swept = 0;
        for shard in &*self.shards {
            let mut shard = lock(shard);
            shard.retain(|key, value| {
                let keep = value.expires_ms == 0 || now < value.expires_ms;
                if !keep {
                    self.released(key, value);
                    swept += 1;
                }
                keep
            });
        }
        swept
    }

    fn released(&self, key: &[u8], value: &Value) {
        self.keys.fetch_sub(1, Ordering::Relaxed);
        self.bytes
            .fetch_sub(key.len() + value.bytes.len(), Ordering::Relaxed);
    }

    fn expired(&self, value: &Value) -> bool {
        value.expires_ms != 0 && self.now_ms() >= value.expires_ms
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn shard(&self, key: &[u8]) -> std::sync::MutexGuard<'_, Shard> {
        let i = self.hasher.hash_one(key) as usize % SHARDS;
        lock(&self.shards[i])
    }

    /// Keys held, expired ones not yet swept included.
    pub fn keys(&self) -> usize {
        self.keys.load(Ordering::Relaxed)
    }

    /// Bytes of keys and values held.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// `(max_keys, max_bytes)`.
    pub fn limits(&self) -> (usize, usize) {
        let max_keys = self.max_keys.load(Ordering::Relaxed);
        (max_keys, self.max_bytes.load(Ordering::Relaxed))
    }

    /// Puts refused with `status`.
    pub fn refused(&self, status: PutStatus) -> u64 {
        self.refused[status as usize].load(Ordering::Relaxed)
    }

    /// Refused puts by reason, every reason that refuses listed (zeros too).
    pub fn refusals(&self) -> impl Iterator<Item = (PutStatus, u64)> + '_ {
        let refusing = PutStatus::ALL.into_iter().filter(|s| *s != PutStatus::Ok);
        refusing.map(|s| (s, self.refused(s)))
    }

    /// The store's part of the pool's `/status` document.
    pub fn to_json(&self) -> serde_json::Value {
        let (max_keys, max_bytes) = self.limits();
        let refused: serde_json::Map<_, _> = self
            .refusals()
            .map(|(s, n)| (s.as_str().to_owned(), n.into()))
            .collect();
        serde_json::json!({
            "keys": self.keys(),
            "bytes": self.bytes(),
            "max_keys": max_keys,
            "max_bytes": max_bytes,
            "puts_refused": refused,
        })
    }
}

/// Adds `n` to `counter` unless that would pass `max`.
fn reserve(counter: &AtomicUsize, n: usize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
            held.checked_add(n).filter(|&total| total <= max)
        })
        .is_ok()
}

/// A shard's map. A panic while one is held cannot leave it inconsistent (every
/// change is one map operation), so a poisoned lock is taken as it is.
fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(store: &StateStore, key: &str) -> Option<Vec<u8>> {
        let mut out = [0; 64];
        store
            .get(key.as_bytes(), &mut out)
            .map(|n| out[..n].to_vec())
    }

    #[test]
    fn puts_replace_and_deletes_give_back_room() {
        let store = StateStore::new(2, 100);
        assert_eq!(store.put(b"a", b"1", 0), PutStatus::Ok);
        assert_eq!(store.put(b"a", b"22", 0), PutStatus::Ok);
        assert_eq!(get(&store, "a").as_deref(), Some(&b"22"[..]));
        assert_eq!((store.keys(), store.bytes()), (1, 3));
        assert_eq!(store.put(b"b", b"", 0), PutStatus::Ok);
        assert_eq!(store.put(b"c", b"", 0), PutStatus::TooManyKeys);
        assert!(store.delete(b"b"));
        assert!(!store.delete(b"b"));
        assert_eq!(store.put(b"c", b"", 0), PutStatus::Ok);
        assert_eq!(store.refused(PutStatus::TooManyKeys), 1);
    }

    #[test]
    fn the_byte_bound_counts_keys_and_values() {
        let store = StateStore::new(10, 10);
        assert_eq!(store.put(b"k", &[0; 9], 0), PutStatus::Ok);
        assert_eq!(store.put(b"k", &[0; 10], 0), PutStatus::TooManyBytes);
        assert_eq!(
            store.put(b"k", &[0; 2], 0),
            PutStatus::Ok,
            "shrinking frees bytes"
        );
        assert_eq!(store.bytes(), 3);
        assert_eq!(store.keys(), 1, "a refused put leaves the counts alone");
    }

    #[test]
    fn a_value_too_long_for_the_buffer_reports_its_length() {
        let store = StateStore::new(10, 100);
        store.put(b"k", b"0123456789", 0);
        let mut small = [0; 4];
        assert_eq!(store.get(b"k", &mut small), Some(10));
        assert_eq!(small, [0; 4], "nothing copied");
        assert_eq!(store.get(b"nope", &mut small), None);
    }

    #[test]
    fn expired_keys_read_as_absent_and_make_room() {
        let store = StateStore::new(1, 100);
        assert_eq!(store.put(b"t", b"x", 1), PutStatus::Ok);
        std::thread::sleep(std::time::Duration::from_millis(3));
        assert_eq!(
            store.put(b"u", b"y", 0),
            PutStatus::Ok,
            "the sweep made room"
        );
        assert_eq!(get(&store, "t"), None);
        assert_eq!(store.put(b"v", b"z", 5_000), PutStatus::TooManyKeys);
        assert_eq!(store.keys(), 1);
    }

    #[test]
    fn bad_keys_and_ttls_are_refused() {
        let store = StateStore::new(10, 10_000);
        let long = vec![b'k'; MAX_KEY_LEN as usize + 1];
        assert_eq!(store.put(&long, b"", 0), PutStatus::KeyTooLong);
        assert_eq!(store.put(b"k", b"", -1), PutStatus::BadTtl);
        assert_eq!(store.keys(), 0);
    }

    #[test]
    fn racing_instances_never_pass_the_bounds() {
        let store = std::sync::Arc::new(StateStore::new(1000, 1_000_000));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .filter(|i| {
                            store.put(format!("{t}/{i}").as_bytes(), b"v", 0) == PutStatus::Ok
                        })
                        .count()
                })
            })
            .collect();
        let stored: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(stored, 1000);
        assert_eq!(store.keys(), 1000);
        assert_eq!(store.refused(PutStatus::TooManyKeys), 3000);
    }
}
