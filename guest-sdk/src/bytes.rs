//! The bytes a record holds: borrowed, owned, or shared between records.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::rc::Rc;

/// The payload, key or a header value of a [`Record`](crate::Record): borrowed from the
/// message or the config, owned by the record, or shared with other records. Made by
/// [`IntoBytes`]; read it as `&[u8]`.
#[derive(Clone, PartialEq, Eq)]
pub struct RecordBytes<'a>(Repr<'a>);

#[derive(Clone)]
enum Repr<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
    Shared(Rc<[u8]>),
}

impl PartialEq for Repr<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Repr<'_> {}

impl Repr<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Repr::Borrowed(b) => b,
            Repr::Owned(v) => v,
            Repr::Shared(rc) => rc,
        }
    }
}

impl RecordBytes<'_> {
    /// `true` when the bytes live outside the record (in the message, the config or the
    /// state), so the module made no copy of them.
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Repr::Borrowed(_))
    }

    /// `true` when the bytes are an `Rc` that other records may share.
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Repr::Shared(_))
    }

    /// The buffer the SDK must keep alive until the host has read it: `None` when the
    /// bytes are borrowed. Moving a buffer does not move its heap allocation, so an address
    /// taken before stays valid; every record sharing an `Rc` has the same address, so the
    /// host reads the one buffer for each.
    pub(crate) fn into_buffer(self) -> Option<RecordBytes<'static>> {
        match self.0 {
            Repr::Borrowed(_) => None,
            Repr::Owned(vec) => Some(RecordBytes(Repr::Owned(vec))),
            Repr::Shared(rc) => Some(RecordBytes(Repr::Shared(rc))),
        }
    }
}

impl Deref for RecordBytes<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.bytes()
    }
}

impl fmt::Debug for RecordBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.bytes(), f)
    }
}

/// Byte-like values a [`Record`](crate::Record) accepts for its payload, key and header
/// values:
/// - borrowed: `&[u8]`, `&[u8; N]`, `&str`, `&Vec<u8>`, `&String`, and borrowed `Cow`s.
///   Bytes borrowed from the [`Message`](crate::Message), the config or the init state
///   are handed to the host in place, without a copy.
/// - owned: `Vec<u8>`, `String`, and owned `Cow`s. The SDK keeps them alive until the
///   host has read them.
/// - shared: `Rc<[u8]>` and `Rc<str>`. For a fan-out of bytes the module made, such as a
///   reshaped payload sent to several topics: each record takes a clone of the `Rc` (a
///   reference count, not a copy), and the host reads the one buffer for all of them.
///
/// ```
/// use std::rc::Rc;
/// use rmqtt_kafka_transform::{Outcome, Record};
///
/// let body: Rc<[u8]> = Vec::from(&b"{\"alarm\":true}"[..]).into();
/// let out = Outcome::Records(vec![
///     Record::new(body.clone()).topic("alarms"),
///     Record::new(body.clone()).topic("audit"),
/// ]);
/// assert_eq!(Rc::strong_count(&body), 3); // one buffer, three owners
/// assert!(out.records().iter().all(Record::payload_is_shared));
/// ```
pub trait IntoBytes<'a> {
    /// The bytes, borrowed, owned or shared.
    fn into_bytes(self) -> RecordBytes<'a>;
}

impl<'a> IntoBytes<'a> for &'a [u8] {
    fn into_bytes(self) -> RecordBytes<'a> {
        RecordBytes(Repr::Borrowed(self))
    }
}

impl<'a, const N: usize> IntoBytes<'a> for &'a [u8; N] {
    fn into_bytes(self) -> RecordBytes<'a> {
        RecordBytes(Repr::Borrowed(self))
    }
}

impl<'a> IntoBytes<'a> for &'a str {
    fn into_bytes(self) -> RecordBytes<'a> {
        RecordBytes(Repr::Borrowed(self.as_bytes()))
    }
}

impl<'a> IntoBytes<'a> for &'a Vec<u8> {
    fn into_bytes(self) -> RecordBytes<'a> {
        RecordBytes(Repr::Borrowed(self))
    }
}

impl<'a> IntoBytes<'a> for &'a String {
    fn into_bytes(self) -> RecordBytes<'a> {
        RecordBytes(Repr::Borrowed(self.as_bytes()))
    }
}

impl<'a> IntoBytes<'a> for Vec<u8> {
    fn into_bytes(self) -> RecordBytes<'a> {
        RecordBytes(Repr::Owned(self))
    }
}

impl<'a> IntoBytes<'a> for String {
    fn into_bytes(self) -> RecordBytes<'a> {
        RecordBytes(Repr::Owned(String::into_bytes(self)))
    }
}

impl<'a> IntoBytes<'a> for Cow<'a, [u8]> {
    fn into_bytes(self) -> RecordBytes<'a> {
        match self {
            Cow::Borrowed(b) => b.into_bytes(),
            Cow::Owned(v) => v.into_bytes(),
        }
    }
}

impl<'a> IntoBytes<'a> for Cow<'a, str> {
    fn into_bytes(self) -> RecordBytes<'a> {
        match self {
            Cow::Borrowed(s) => IntoBytes::into_bytes(s),
            Cow::Owned(s) => IntoBytes::into_bytes(s),
        }
    }
}

impl<'a> IntoBytes<'a> for Rc<[u8]> {
    fn into_bytes(self) -> RecordBytes<'a> {
        RecordBytes(Repr::Shared(self))
    }
}

impl<'a> IntoBytes<'a> for Rc<str> {
    fn into_bytes(self) -> RecordBytes<'a> {
        RecordBytes(Repr::Shared(self.into()))
    }
}

impl<'a> IntoBytes<'a> for RecordBytes<'a> {
    fn into_bytes(self) -> RecordBytes<'a> {
        self
    }
}
