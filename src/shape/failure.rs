//! Why a template has no value for a message, said once for logs, dead-letter headers
//! and `/metrics`.

use std::fmt;

/// The cause of a template failure; its `as_str` is the `reason` label in `/metrics` and
/// the `error_cause` header of a dead-letter record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `${payload.PATH}`: the JSON payload has no value at the path.
    MemberAbsent,
    /// `${payload.PATH}`: the payload is not JSON.
    NotJson,
    /// `${topic.N}`: the topic has fewer levels.
    NoLevel,
    /// `${property.NAME}`: the publish has no user property of that name.
    NoProperty,
    /// `remote.topic` rendered a name Kafka does not allow.
    InvalidTopic,
    /// `remote.timestamp` rendered neither a number of ms nor an RFC 3339 time.
    InvalidTimestamp,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::MemberAbsent,
        Reason::NotJson,
        Reason::NoLevel,
        Reason::NoProperty,
        Reason::InvalidTopic,
        Reason::InvalidTimestamp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MemberAbsent => "member_absent",
            Reason::NotJson => "not_json",
            Reason::NoLevel => "no_level",
            Reason::NoProperty => "no_property",
            Reason::InvalidTopic => "invalid_topic",
            Reason::InvalidTimestamp => "invalid_timestamp",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Reason::MemberAbsent => "the payload has no such member",
            Reason::NotJson => "the payload is not JSON",
            Reason::NoLevel => "the topic has no such level",
            Reason::NoProperty => "the publish has no such user property",
            Reason::InvalidTopic => "not a valid Kafka topic name",
            Reason::InvalidTimestamp => {
                "neither a number of ms since the epoch nor an RFC 3339 time"
            }
        }
    }
}

/// The configuration field a template is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    Topic,
    Key,
    Header(&'a str),
    Timestamp,
    Payload,
}

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Topic => f.write_str("remote.topic"),
            Field::Key => f.write_str("remote.key"),
            Field::Header(name) => write!(f, "remote.headers.{name}"),
            Field::Timestamp => f.write_str("remote.timestamp"),
            Field::Payload => f.write_str("remote.payload"),
        }
    }
}

/// A template that has no value for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure<'a> {
    pub field: Field<'a>,
    /// The template as written.
    pub template: &'a str,
    pub reason: Reason,
    /// The placeholder that had no value, or the rendered text that was refused.
    pub what: Box<str>,
}

impl fmt::Display for Failure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (field, template, what) = (self.field, self.template, &self.what);
        write!(
            f,
            "{field} = \"{template}\": {what}: {}",
            self.reason.describe()
        )
    }
}
