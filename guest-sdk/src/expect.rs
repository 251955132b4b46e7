//! One-line expectations on a transform's records, for native tests:
//!
//! ```
//! use rmqtt_kafka_transform::prelude::*;
//! use rmqtt_kafka_transform::{assert_records, Expect};
//!
//! let out: Outcome = Record::new("21.5").key("d1").header("site", "berlin").into();
//! assert_records!(out, [Expect::record().key("d1").header("site", "berlin").payload("21.5")]);
//! ```

use crate::{Outcome, Record};

/// What a test expects of one record. Only what is set is compared; headers are
/// looked up by name (each expected one must be there with that value).
#[derive(Debug, Clone, Default)]
pub struct Expect {
    topic: Option<String>,
    key: Option<Option<String>>,
    payload: Option<Option<String>>,
    headers: Vec<(String, Option<String>)>,
    partition: Option<i32>,
    timestamp: Option<i64>,
}

impl Expect {
    /// A record, nothing expected of it yet.
    pub fn record() -> Expect {
        Expect::default()
    }

    /// Its topic override.
    pub fn topic(mut self, topic: &str) -> Expect {
        self.topic = Some(topic.into());
        self
    }

    /// Its key, as UTF-8 text.
    pub fn key(mut self, key: &str) -> Expect {
        self.key = Some(Some(key.into()));
        self
    }

    /// No key set (the entry's `remote.key` applies).
    pub fn no_key(mut self) -> Expect {
        self.key = Some(None);
        self
    }

    /// Its payload, as UTF-8 text.
    pub fn payload(mut self, payload: &str) -> Expect {
        self.payload = Some(Some(payload.into()));
        self
    }

    /// A null payload.
    pub fn null_payload(mut self) -> Expect {
        self.payload = Some(None);
        self
    }

    /// A header `name` with this UTF-8 value.
    pub fn header(mut self, name: &str, value: &str) -> Expect {
        self.headers.push((name.into(), Some(value.into())));
        self
    }

    /// A header `name` with a null value.
    pub fn null_header(mut self, name: &str) -> Expect {
        self.headers.push((name.into(), None));
        self
    }

    /// Its partition.
    pub fn partition(mut self, partition: i32) -> Expect {
        self.partition = Some(partition);
        self
    }

    /// Its timestamp (ms since the epoch).
    pub fn timestamp(mut self, timestamp_ms: i64) -> Expect {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// How `r` differs from this expectation, one item per field.
    fn mismatches(&self, r: &Record<'_>) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |what: &str, want: String, got: String| {
            if want != got {
                out.push(format!("{what}: expected {want}, got {got}"));
            }
        };
        if let Some(t) = &self.topic {
            check(
                "topic",
                format!("{:?}", Some(t)),
                format!("{:?}", r.get_topic()),
            );
        }
        if let Some(k) = &self.key {
            check("key", format!("{k:?}"), text(r.get_key()));
        }
        if let Some(p) = &self.payload {
            check("payload", format!("{p:?}"), text(r.payload()));
        }
        for (name, value) in &self.headers {
            let want = value.as_deref().map(Some);
            if !r.headers().any(|(n, v)| n == name && v.map(utf8) == want) {
                check("header", format!("{name:?} = {value:?}"), "missing".into());
            }
        }
        if let Some(p) = self.partition {
            check(
                "partition",
                format!("{:?}", Some(p)),
                format!("{:?}", r.get_partition()),
            );
        }
        if let Some(t) = self.timestamp {
            check(
                "timestamp",
                format!("{:?}", Some(t)),
                format!("{:?}", r.get_timestamp()),
            );
        }
        out
    }
}

fn utf8(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b).ok()
}

/// Bytes as `Some("text")` when they are UTF-8, else as their debug form.
fn text(b: Option<&[u8]>) -> String {
    match b {
        None => "None".into(),
        Some(b) => match utf8(b) {
            Some(s) => format!("{:?}", Some(s)),
            None => format!("Some({b:?})"),
        },
    }
}

/// One line describing a record, with UTF-8 shown as text.
fn describe(r: &Record<'_>) -> String {
    let headers: Vec<String> = r
        .headers()
        .map(|(n, v)| format!("{n}={}", v.map_or("null".into(), |v| text(Some(v)))))
        .collect();
    format!(
        "topic {:?}, key {}, headers [{}], partition {:?}, timestamp {:?}, payload {}",
        r.get_topic(),
        text(r.get_key()),
        headers.join(", "),
        r.get_partition(),
        r.get_timestamp(),
        text(r.payload())
    )
}

impl Outcome<'_> {
    /// Checks that the records are those `expected`, in order (none for a drop), and
    /// panics describing every record and what differs.
    #[track_caller]
    pub fn assert_records(&self, expected: &[Expect]) {
        let records = self.records();
        let mut problems = Vec::new();
        if records.len() != expected.len() {
            problems.push(format!(
                "{} records, expected {}",
                records.len(),
                expected.len()
            ));
        }
        for (i, (r, e)) in records.iter().zip(expected).enumerate() {
            problems.extend(
                e.mismatches(r)
                    .into_iter()
                    .map(|m| format!("record {i}: {m}")),
            );
        }
        if !problems.is_empty() {
            let all: Vec<String> = records.iter().map(describe).collect();
            panic!(
                "{}\nthe records:\n  {}",
                problems.join("\n"),
                all.join("\n  ")
            );
        }
    }
}

/// `assert_records!(outcome, [Expect::record().key("d1"), …])`: the outcome's records
/// are those expected, in order ([`Outcome::assert_records`]).
#[macro_export]
macro_rules! assert_records {
    ($outcome:expr, [$($expect:expr),* $(,)?]) => {
        $outcome.assert_records(&[$($expect),*])
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fan_out() -> Outcome<'static> {
        Outcome::Records(vec![
            Record::new("p1")
                .key("d1")
                .header("site", "berlin")
                .topic("a"),
            Record::new(vec![0xff, 0]).null_header("n").partition(2),
        ])
    }

    #[test]
    fn matching_records_pass() {
        assert_records!(
            fan_out(),
            [
                Expect::record()
                    .topic("a")
                    .key("d1")
                    .header("site", "berlin")
                    .payload("p1"),
                Expect::record().no_key().null_header("n").partition(2),
            ]
        );
        assert_records!(Outcome::Drop, []);
    }

    #[test]
    fn a_difference_names_the_record_and_the_field() {
        let e = std::panic::catch_unwind(|| {
            fan_out().assert_records(&[
                Expect::record().key("d2"),
                Expect::record().header("site", "x").payload("p2"),
            ]);
        })
        .unwrap_err();
        let msg = e.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("record 0: key: expected Some(\"d2\"), got Some(\"d1\")"),
            "{msg}"
        );
        assert!(
            msg.contains("record 1: header: expected \"site\" = Some(\"x\"), got missing"),
            "{msg}"
        );
        assert!(
            msg.contains("record 1: payload: expected Some(\"p2\"), got Some([255, 0])"),
            "{msg}"
        );
        assert!(msg.contains("headers [site=Some(\"berlin\")]"), "{msg}");
    }
}
