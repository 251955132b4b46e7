//! How the configuration reloads went: counted by result, and the last one kept with its
//! time and, when refused, why. A refused reload leaves the old configuration running,
//! so nothing else shows it; an operator alerts on these.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{json, Value};

/// A reload's result, as the `result` label and `/status` name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadResult {
    Applied,
    Refused,
}

impl ReloadResult {
    pub const ALL: [ReloadResult; 2] = [ReloadResult::Applied, ReloadResult::Refused];

    pub fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Applied => "applied",
            ReloadResult::Refused => "refused",
        }
    }
}

/// The plugin's reloads since it was created (they outlive each pipeline).
#[derive(Default)]
pub struct Reloads {
    /// Indexed by `ReloadResult as usize`.
    counts: [AtomicU64; 2],
    last: Mutex<Option<LastReload>>,
}

/// The most recent reload.
#[derive(Clone, Debug)]
pub struct LastReload {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Why it was refused; `None` when it was applied.
    pub error: Option<String>,
}

impl LastReload {
    pub fn result(&self) -> ReloadResult {
        match self.error {
            None => ReloadResult::Applied,
            Some(_) => ReloadResult::Refused,
        }
    }
}

impl Reloads {
    /// Counts a reload's outcome and keeps it as the last one.
    pub fn record<T>(&self, outcome: &Result<T, String>) {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let last = LastReload {
            at_ms,
            error: outcome.as_ref().err().cloned(),
        };
        self.counts[last.result() as usize].fetch_add(1, Ordering::Relaxed);
        *self.last.lock() = Some(last);
    }

    pub fn count(&self, result: ReloadResult) -> u64 {
        self.counts[result as usize].load(Ordering::Relaxed)
    }

    pub fn last(&self) -> Option<LastReload> {
        self.last.lock().clone()
    }

    /// `/status`'s `reloads`: the counts, and the last reload (null before any).
    pub fn to_json(&self) -> Value {
        let last = self.last().map(|l| {
            json!({
                "at_ms": l.at_ms,
                "result": l.result().as_str(),
                "error": l.error,
            })
        });
        json!({
            "applied": self.count(ReloadResult::Applied),
            "refused": self.count(ReloadResult::Refused),
            "last": last,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_result_and_keeps_the_last() {
        let reloads = Reloads::default();
        assert_eq!(reloads.to_json()["last"], Value::Null);
        reloads.record::<()>(&Ok(()));
        reloads.record::<()>(&Err("bridges[0].entries[0].remote.topic: missing".into()));
        reloads.record::<()>(&Err("again".into()));
        assert_eq!(reloads.count(ReloadResult::Applied), 1);
        assert_eq!(reloads.count(ReloadResult::Refused), 2);
        let doc = reloads.to_json();
        assert_eq!(doc["applied"], 1);
        assert_eq!(doc["refused"], 2);
        assert_eq!(doc["last"]["result"], "refused");
        assert_eq!(doc["last"]["error"], "again");
        assert!(doc["last"]["at_ms"].as_u64().unwrap() > 1_700_000_000_000);
    }

    #[test]
    fn an_applied_reload_has_no_error() {
        let reloads = Reloads::default();
        reloads.record::<()>(&Err("bad".into()));
        reloads.record::<()>(&Ok(()));
        let last = reloads.last().unwrap();
        assert_eq!(last.result(), ReloadResult::Applied);
        assert_eq!(last.error, None);
    }
}
