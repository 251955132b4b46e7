//! The rules a record must follow beyond the wire format.
//!
//! The host checks every record a guest returns with [`check_record`] and rejects the whole
//! output if one fails. The Rust SDK checks the same rules before it hands a record over,
//! so an author gets the error from the transform itself. Both call this module, so the
//! two cannot disagree about what is valid.

use core::fmt;
use core::str;

use crate::output::Record;
use crate::WireError;

/// Longest Kafka topic name, in characters (Kafka's own limit).
pub const MAX_TOPIC_LEN: usize = 249;

/// Why a name is not a valid Kafka topic name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError<'a> {
    /// The name is empty.
    Empty,
    /// The name has more than [`MAX_TOPIC_LEN`] characters. It is not quoted in the
    /// message, which would only repeat it at length.
    TooLong { len: usize },
    /// The name is `.` or `..`, which Kafka refuses.
    Reserved { name: &'a str },
    /// The name contains `ch`, which is not one of `a-z A-Z 0-9 . _ -`.
    InvalidChar { name: &'a str, ch: char },
}

impl fmt::Display for TopicError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::Empty => f.write_str("an empty name is not a valid Kafka topic name"),
            TopicError::TooLong { len } => write!(
                f,
                "a name of {len} characters is not a valid Kafka topic name (at most {MAX_TOPIC_LEN})"
            ),
            TopicError::Reserved { name } => write!(
                f,
                "\"{name}\" is not a valid Kafka topic name (Kafka reserves \".\" and \"..\")"
            ),
            TopicError::InvalidChar { name, ch } => write!(
                f,
                "\"{name}\" is not a valid Kafka topic name: '{ch}' is not allowed (only a-z A-Z 0-9 . _ -)"
            ),
        }
    }
}

impl core::error::Error for TopicError<'_> {}

/// The levels of an MQTT topic, split on `/` and counted from 0: `a//b` has an empty
/// middle level, as in MQTT. The SDK's `topic_level` and the host's `${topic.N}` both
/// count with this.
pub fn topic_levels(topic: &str) -> impl Iterator<Item = &str> + '_ {
    // A byte loop: `str::split` runs `memchr` per level, which costs more than it saves
    // on levels this short. `/` is one byte that is never part of another character, so
    // every level starts and ends on a character boundary.
    let mut start = 0;
    topic.as_bytes().split(|&b| b == b'/').map(move |level| {
        let end = start + level.len();
        let level = &topic[start..end];
        start = end + 1;
        level
    })
}

/// `true` for the characters Kafka allows in a topic name: `a-z A-Z 0-9 . _ -`.
pub fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Checks Kafka's topic naming rules: 1 to [`MAX_TOPIC_LEN`] characters of
/// `a-z A-Z 0-9 . _ -`, and neither `.` nor `..`.
///
/// The length is checked before the characters, so an error never quotes a name longer
/// than [`MAX_TOPIC_LEN`] characters.
pub fn check_topic(name: &str) -> Result<(), TopicError<'_>> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    let len = name.chars().count();
    if len > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { len });
    }
    if name == "." || name == ".." {
        return Err(TopicError::Reserved { name });
    }
    match name.chars().find(|&c| !is_topic_char(c)) {
        Some(ch) => Err(TopicError::InvalidChar { name, ch }),
        None => Ok(()),
    }
}

/// A partition number below 0; Kafka numbers partitions from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegativePartition {
    pub partition: i32,
}

impl fmt::Display for NegativePartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "partition {} is negative", self.partition)
    }
}

impl core::error::Error for NegativePartition {}

/// Checks that an explicit partition is not negative.
pub fn check_partition(partition: i32) -> Result<(), NegativePartition> {
    if partition < 0 {
        return Err(NegativePartition { partition });
    }
    Ok(())
}

/// Why a record is not acceptable to the host. Borrows from the record's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError<'a> {
    /// The topic is not UTF-8.
    TopicNotUtf8,
    /// The topic is not a valid Kafka topic name.
    Topic(TopicError<'a>),
    /// The partition is negative.
    Partition(NegativePartition),
    /// A header descriptor could not be read.
    Wire(WireError),
    /// The name of the header at `index` (counting from 0) is not UTF-8.
    HeaderNameNotUtf8 { index: usize },
}

impl fmt::Display for RecordError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::TopicNotUtf8 => f.write_str("the record topic is not UTF-8"),
            RecordError::Topic(e) => write!(f, "{e}"),
            RecordError::Partition(e) => write!(f, "{e}"),
            RecordError::Wire(e) => write!(f, "{e}"),
            RecordError::HeaderNameNotUtf8 { index } => {
                write!(f, "the name of header {index} (from 0) is not UTF-8")
            }
        }
    }
}

impl core::error::Error for RecordError<'_> {}

impl<'a> From<TopicError<'a>> for RecordError<'a> {
    fn from(e: TopicError<'a>) -> Self {
        RecordError::Topic(e)
    }
}

impl From<NegativePartition> for RecordError<'_> {
    fn from(e: NegativePartition) -> Self {
        RecordError::Partition(e)
    }
}

impl From<WireError> for RecordError<'_> {
    fn from(e: WireError) -> Self {
        RecordError::Wire(e)
    }
}

/// Checks what the host relies on beyond the wire format: the topic (if set) is UTF-8 and
/// a valid Kafka topic name, the partition (if set) is not negative, and every header
/// decodes and has a UTF-8 name. After this, the host may treat topics and header names
/// as `str` without checking again.
pub fn check_record<'m>(record: &Record<'m>) -> Result<(), RecordError<'m>> {
    if let Some(topic) = record.topic {
        check_topic(str::from_utf8(topic).map_err(|_| RecordError::TopicNotUtf8)?)?;
    }
    if let Some(partition) = record.partition {
        check_partition(partition)?;
    }
    for (index, header) in record.headers.iter().enumerate() {
        let (name, _) = header?;
        str::from_utf8(name).map_err(|_| RecordError::HeaderNameNotUtf8 { index })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;
    use std::vec::Vec;

    use super::*;
    use crate::output::{
        ok_header, read_output, HeaderDescriptor, Output, RecordDescriptor, Region,
    };

    #[test]
    fn valid_topics() {
        let longest = "x".repeat(MAX_TOPIC_LEN);
        for name in [
            "a",
            "a.b",
            "..a",
            "a..",
            "...",
            "_",
            "-",
            "Telemetry.v1_x-y",
            &longest,
        ] {
            assert_eq!(check_topic(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn dot_and_dot_dot_are_reserved() {
        assert_eq!(check_topic("."), Err(TopicError::Reserved { name: "." }));
        assert_eq!(check_topic(".."), Err(TopicError::Reserved { name: ".." }));
        assert_eq!(
            check_topic("..").unwrap_err().to_string(),
            r#"".." is not a valid Kafka topic name (Kafka reserves "." and "..")"#
        );
    }

    #[test]
    fn empty_and_long_topics() {
        assert_eq!(check_topic(""), Err(TopicError::Empty));
        let long = "x".repeat(MAX_TOPIC_LEN + 1);
        assert_eq!(check_topic(&long), Err(TopicError::TooLong { len: 250 }));
        assert_eq!(
            check_topic(&long).unwrap_err().to_string(),
            "a name of 250 characters is not a valid Kafka topic name (at most 249)"
        );
        // Counted in characters, so a long non-ASCII name is too long, not quoted.
        let wide = "é".repeat(MAX_TOPIC_LEN + 1);
        assert_eq!(check_topic(&wide), Err(TopicError::TooLong { len: 250 }));
    }

    #[test]
    fn invalid_characters() {
        for (name, ch) in [
            ("a/b", '/'),
            ("a b", ' '),
            ("é", 'é'),
            ("a\nb", '\n'),
            ("a+", '+'),
        ] {
            assert_eq!(check_topic(name), Err(TopicError::InvalidChar { name, ch }));
        }
        assert_eq!(
            check_topic("a/b").unwrap_err().to_string(),
            r#""a/b" is not a valid Kafka topic name: '/' is not allowed (only a-z A-Z 0-9 . _ -)"#
        );
        assert!(is_topic_char('Z') && is_topic_char('0') && is_topic_char('.'));
        assert!(!is_topic_char('/') && !is_topic_char('\0') && !is_topic_char('ü'));
    }

    #[test]
    fn partitions() {
        assert_eq!(check_partition(0), Ok(()));
        assert_eq!(check_partition(i32::MAX), Ok(()));
        assert_eq!(
            check_partition(-1),
            Err(NegativePartition { partition: -1 })
        );
        assert_eq!(
            check_partition(i32::MIN).unwrap_err().to_string(),
            "partition -2147483648 is negative"
        );
    }

    /// A guest's linear memory, filled the way a guest writes its output.
    #[derive(Default)]
    struct Memory(Vec<u8>);

    impl Memory {
        fn put(&mut self, bytes: &[u8]) -> Region {
            let at = self.0.len() as u32;
            self.0.extend_from_slice(bytes);
            (at, bytes.len() as u32)
        }

        /// An OK document of one record with this topic, partition and header names.
        fn record(
            &mut self,
            topic: Option<&[u8]>,
            partition: Option<i32>,
            names: &[&[u8]],
        ) -> Region {
            let table: Vec<u8> = names
                .iter()
                .flat_map(|name| {
                    HeaderDescriptor {
                        name: self.put(name),
                        value: None,
                    }
                    .to_bytes()
                })
                .collect();
            let record = RecordDescriptor {
                partition,
                topic: topic.map(|t| self.put(t)),
                headers: (self.put(&table).0, names.len() as u32),
                ..RecordDescriptor::default()
            };
            self.put(&[&ok_header(1)[..], &record.to_bytes()].concat())
        }

        /// Decodes the document at `doc` like the host and checks its record.
        fn check(&self, doc: Region) -> Result<(), RecordError<'_>> {
            let Ok(Output::Records(records)) = read_output(&self.0, doc.0, doc.1) else {
                panic!("not an OK document")
            };
            let record = records.iter().next().expect("one record").expect("decodes");
            check_record(&record)
        }
    }

    #[test]
    fn records() {
        let mut mem = Memory::default();
        let fine = mem.record(Some(b"a.b"), Some(0), &[b"site", b""]);
        let unset = mem.record(None, None, &[]);
        let dot = mem.record(Some(b"."), None, &[]);
        let slash = mem.record(Some(b"a/b"), None, &[]);
        let latin1 = mem.record(Some(b"caf\xe9"), None, &[]);
        let negative = mem.record(None, Some(-3), &[]);
        let bad_name = mem.record(None, None, &[b"ok", b"\xff"]);
        assert_eq!(mem.check(fine), Ok(()));
        assert_eq!(mem.check(unset), Ok(()));
        assert_eq!(
            mem.check(dot),
            Err(RecordError::Topic(TopicError::Reserved { name: "." }))
        );
        assert_eq!(
            mem.check(slash).unwrap_err().to_string(),
            r#""a/b" is not a valid Kafka topic name: '/' is not allowed (only a-z A-Z 0-9 . _ -)"#
        );
        assert_eq!(mem.check(latin1), Err(RecordError::TopicNotUtf8));
        assert_eq!(
            mem.check(negative),
            Err(RecordError::Partition(NegativePartition { partition: -3 }))
        );
        assert_eq!(
            mem.check(bad_name),
            Err(RecordError::HeaderNameNotUtf8 { index: 1 })
        );
    }

    #[test]
    fn header_wire_errors_are_reported() {
        let mut mem = Memory::default();
        let name = (1 << 20, 4);
        let table = mem.put(&HeaderDescriptor { name, value: None }.to_bytes());
        let record = RecordDescriptor {
            headers: (table.0, 1),
            ..RecordDescriptor::default()
        };
        let doc = mem.put(&[&ok_header(1)[..], &record.to_bytes()].concat());
        let err = mem.check(doc).unwrap_err();
        assert!(
            matches!(
                err,
                RecordError::Wire(WireError::OutOfBounds {
                    field: "header name",
                    ..
                })
            ),
            "{err:?}"
        );
        assert!(err
            .to_string()
            .starts_with("`header name` points outside linear memory"));
    }
}
