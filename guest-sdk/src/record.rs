use std::borrow::Cow;
use std::fmt;

use crate::{Error, IntoBytes, RecordBytes};

/// A header name and its value (`None`: a null value).
pub(crate) type Header<'a> = (Cow<'a, str>, Option<RecordBytes<'a>>);

/// One Kafka record to produce.
///
/// Everything not set falls back to the entry's configuration: no topic means
/// `remote.topic`, no key means `remote.key`, no partition means `remote.partition` (or the
/// partitioner), no timestamp means the publish time. The host's standard MQTT headers
/// come first, then the headers added here, in order.
///
/// ```
/// use rmqtt_kafka_transform::Record;
///
/// let record = Record::new("payload").key("device-1").header("site", "berlin").topic("alarms");
/// assert_eq!(record.payload(), Some(&b"payload"[..]));
/// assert_eq!(record.get_header("site"), Some(&b"berlin"[..]));
/// assert_eq!(record.get_topic(), Some("alarms"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Record<'a> {
    pub(crate) payload: Option<RecordBytes<'a>>,
    pub(crate) key: Option<RecordBytes<'a>>,
    pub(crate) topic: Option<Cow<'a, str>>,
    pub(crate) partition: Option<i32>,
    pub(crate) timestamp: Option<i64>,
    pub(crate) headers: Vec<Header<'a>>,
}

impl<'a> Record<'a> {
    /// A record with this payload. Pass `msg.payload()` to forward the payload unchanged
    /// without copying it, or an `Rc<[u8]>` to share one buffer between records.
    pub fn new(payload: impl IntoBytes<'a>) -> Record<'a> {
        Record {
            payload: Some(payload.into_bytes()),
            ..Record::default()
        }
    }

    /// A record with a null payload (a Kafka tombstone on compacted topics).
    pub fn null_payload() -> Record<'a> {
        Record::default()
    }

    /// A record whose payload is `value` serialized as JSON.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Record<'static>, Error> {
        let payload = serde_json::to_vec(value)
            .map_err(|e| Error::msg(format_args!("cannot serialize JSON: {e}")))?;
        Ok(Record::new(payload))
    }

    /// The record key (default: the entry's `remote.key`, if any).
    pub fn key(mut self, key: impl IntoBytes<'a>) -> Record<'a> {
        self.key = Some(key.into_bytes());
        self
    }

    /// Appends a header. Names may repeat; Kafka keeps them all, in order.
    pub fn header(
        mut self,
        name: impl Into<Cow<'a, str>>,
        value: impl IntoBytes<'a>,
    ) -> Record<'a> {
        self.headers.push((name.into(), Some(value.into_bytes())));
        self
    }

    /// Appends a header with a null value.
    pub fn null_header(mut self, name: impl Into<Cow<'a, str>>) -> Record<'a> {
        self.headers.push((name.into(), None));
        self
    }

    /// The Kafka topic (default: the entry's `remote.topic`). It must be a valid Kafka
    /// topic name: 1 to 249 characters of `a-z A-Z 0-9 . _ -`, other than `.` and `..`.
    pub fn topic(mut self, topic: impl Into<Cow<'a, str>>) -> Record<'a> {
        self.topic = Some(topic.into());
        self
    }

    /// The partition (must be ≥ 0; default: the entry's `remote.partition`, else the
    /// partitioner).
    pub fn partition(mut self, partition: i32) -> Record<'a> {
        self.partition = Some(partition);
        self
    }

    /// The record timestamp in ms since the Unix epoch (default: the publish time).
    pub fn timestamp(mut self, timestamp_ms: i64) -> Record<'a> {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// Checks what the host would reject: an invalid topic name, a negative partition, or
    /// more than 1024 headers. The SDK runs this before handing a record over, so a
    /// mistake surfaces as the transform's error with a clear message. The rules are the
    /// host's own ([`abi::rules`]).
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(topic) = &self.topic {
            abi::rules::check_topic(topic)?;
        }
        if let Some(partition) = self.partition {
            abi::rules::check_partition(partition)?;
        }
        if self.headers.len() > abi::MAX_HEADERS as usize {
            return Err(Error::msg(format_args!(
                "a record has {} headers, the limit is {}",
                self.headers.len(),
                abi::MAX_HEADERS
            )));
        }
        Ok(())
    }
}

/// Getters, mostly for unit tests. Those whose plain name is taken by a builder method
/// carry a `get_` prefix: `get_key`, `get_topic`, `get_partition`, `get_timestamp`,
/// `get_header`.
impl<'a> Record<'a> {
    /// The payload; `None` for a null payload.
    pub fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }

    /// The payload as UTF-8 text, if it is set and valid UTF-8.
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(self.payload.as_deref()?).ok()
    }

    /// `true` when the payload borrows from the message or another long-lived buffer, so
    /// no copy is made inside the module.
    pub fn payload_is_borrowed(&self) -> bool {
        self.payload.as_ref().is_some_and(RecordBytes::is_borrowed)
    }

    /// `true` when the payload is an `Rc` buffer that other records may share (see
    /// [`IntoBytes`]).
    pub fn payload_is_shared(&self) -> bool {
        self.payload.as_ref().is_some_and(RecordBytes::is_shared)
    }

    /// The key, if set.
    pub fn get_key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The key as UTF-8 text, if it is set and valid UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(self.key.as_deref()?).ok()
    }

    /// The topic override, if set.
    pub fn get_topic(&self) -> Option<&str> {
        self.topic.as_deref()
    }

    /// The partition, if set.
    pub fn get_partition(&self) -> Option<i32> {
        self.partition
    }

    /// The timestamp, if set.
    pub fn get_timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// `(name, value)` of every header, in order; `None` is a null value.
    pub fn headers(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> + '_ {
        self.headers.iter().map(|(n, v)| (&**n, v.as_deref()))
    }

    /// The value of the first header called `name` (`None` if absent or null).
    pub fn get_header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v)
    }

    /// [`Record::get_header`] as UTF-8 text, if it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.get_header(name)?).ok()
    }
}

impl fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Bytes<'b>(Option<&'b [u8]>);
        impl fmt::Debug for Bytes<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    None => f.write_str("None"),
                    Some(b) => match std::str::from_utf8(b) {
                        Ok(s) => fmt::Debug::fmt(s, f),
                        Err(_) => fmt::Debug::fmt(b, f),
                    },
                }
            }
        }
        let headers: Vec<_> = self.headers().map(|(n, v)| (n, Bytes(v))).collect();
        f.debug_struct("Record")
            .field("topic", &self.topic)
            .field("key", &Bytes(self.key.as_deref()))
            .field("partition", &self.partition)
            .field("timestamp", &self.timestamp)
            .field("headers", &headers)
            .field("payload", &Bytes(self.payload.as_deref()))
            .finish()
    }
}

/// What a transform does with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// Filter the message out: nothing is produced (counted as `filtered`).
    Drop,
    /// Produce one record.
    Record(Record<'a>),
    /// Produce these records, in order (at most 1024; an empty list is the same as `Drop`).
    Records(Vec<Record<'a>>),
}

impl<'a> Outcome<'a> {
    /// The records to produce: empty for [`Outcome::Drop`].
    pub fn records(&self) -> &[Record<'a>] {
        match self {
            Outcome::Drop => &[],
            Outcome::Record(r) => std::slice::from_ref(r),
            Outcome::Records(rs) => rs,
        }
    }

    /// `true` when nothing is produced.
    pub fn is_drop(&self) -> bool {
        self.records().is_empty()
    }

    /// Checks every record (see [`Record::validate`]) and the ABI's ceiling on records
    /// per message. The host also applies the entry's `transform.max_records` (default
    /// 1024), which may be lower.
    pub fn validate(&self) -> Result<(), Error> {
        let records = self.records();
        if records.len() > abi::MAX_RECORDS as usize {
            return Err(Error::msg(format_args!(
                "the transform returned {} records, the ABI's ceiling is {}",
                records.len(),
                abi::MAX_RECORDS
            )));
        }
        records.iter().try_for_each(Record::validate)
    }
}

impl<'a> From<Record<'a>> for Outcome<'a> {
    fn from(record: Record<'a>) -> Outcome<'a> {
        Outcome::Record(record)
    }
}

impl<'a> From<Vec<Record<'a>>> for Outcome<'a> {
    fn from(records: Vec<Record<'a>>) -> Outcome<'a> {
        Outcome::Records(records)
    }
}

impl<'a> From<Option<Record<'a>>> for Outcome<'a> {
    /// `None` drops the message.
    fn from(record: Option<Record<'a>>) -> Outcome<'a> {
        record.map_or(Outcome::Drop, Outcome::Record)
    }
}

impl<'a> FromIterator<Record<'a>> for Outcome<'a> {
    fn from_iter<I: IntoIterator<Item = Record<'a>>>(iter: I) -> Outcome<'a> {
        Outcome::Records(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic_error(topic: &str) -> Option<String> {
        let record = Record::new("x").topic(topic);
        record.validate().err().map(|e| e.to_string())
    }

    #[test]
    fn topics_follow_the_host_rule() {
        for ok in [
            "a",
            "a.b",
            "..a",
            "a..",
            "...",
            "Plant_1-x",
            &"a".repeat(249),
        ] {
            assert_eq!(topic_error(ok), None, "{ok:?}");
        }
        assert_eq!(
            topic_error(".").as_deref(),
            Some(r#""." is not a valid Kafka topic name (Kafka reserves "." and "..")"#)
        );
        assert_eq!(
            topic_error("..").as_deref(),
            Some(r#"".." is not a valid Kafka topic name (Kafka reserves "." and "..")"#)
        );
        for bad in ["", "a/b", "a b", "ü", &"a".repeat(250)] {
            assert!(topic_error(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn partitions_are_not_negative() {
        assert!(Record::new("x").partition(0).validate().is_ok());
        assert_eq!(
            Record::new("x")
                .partition(-2)
                .validate()
                .unwrap_err()
                .to_string(),
            "partition -2 is negative"
        );
    }
}
