//! The one record type: what an entry hands on, what the spool stores, and what its pump
//! reads back. It borrows everything it carries (the publish, a transform's output, a
//! spool segment), so a record costs no allocation on its way to librdkafka.

use smallvec::SmallVec;

/// A Kafka header: its name and its value (`None`: a null value).
pub type Header<'a> = (&'a str, Option<&'a [u8]>);

/// A record's headers, in order. The standard set is 12 to 17 headers; a publish with a
/// few user properties, or a transform's few extra headers, stays inline.
pub type Headers<'a> = SmallVec<[Header<'a>; 24]>;

/// A record on its way to Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub partition: Option<i32>,
    /// The Kafka timestamp, in ms since the epoch.
    pub timestamp: i64,
    /// When the broker received the publish (ms since the epoch), for the latency.
    pub received_ms: i64,
    pub headers: Headers<'a>,
    /// Sent to a dead-letter topic: counted `dead_lettered` once delivered.
    pub dead_letter: bool,
}

impl Record<'_> {
    /// The room the record takes in its bridge's in-flight bound: key and payload bytes.
    /// The one formula, used when the room is taken and when it is given back.
    #[inline]
    pub fn size(&self) -> usize {
        size_of(self.key, self.payload)
    }
}

/// [`Record::size`] of a record with this key and payload.
#[inline]
pub fn size_of(key: Option<&[u8]>, payload: Option<&[u8]>) -> usize {
    key.map_or(0, <[u8]>::len) + payload.map_or(0, <[u8]>::len)
}
