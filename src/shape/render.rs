//! An entry's templates rendered for one message. A value taken whole from the message
//! (a topic level, a user property, a plain JSON string or number) is borrowed from it;
//! everything else is written into one buffer that stays inline for short values.

use std::collections::BTreeMap;

use bytestring::ByteString;
use smallvec::SmallVec;

use super::failure::{Failure, Field, Reason};
use super::member::{self, Found, Missing, Path};
use super::template::{Part, Placeholder, Template, TopicTemplate};
use super::timestamp;

/// What templates read of a publish.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    pub topic: &'a str,
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub payload: &'a [u8],
    pub qos: u8,
    pub retain: bool,
    /// When the broker received the publish, in ms since the epoch.
    pub timestamp_ms: i64,
    pub user_properties: &'a [(ByteString, ByteString)],
}

/// An entry's templates, as its configuration holds them.
#[derive(Clone, Copy)]
pub struct Templates<'a> {
    pub topic: &'a TopicTemplate,
    pub key: Option<&'a Template>,
    pub headers: &'a BTreeMap<String, Template>,
    pub timestamp: Option<&'a Template>,
    pub payload: Option<&'a Template>,
    /// `remote.skip_levels`, for `${local.topic}`.
    pub skip_levels: usize,
}

/// Where a rendered value's bytes are.
#[derive(Clone, Copy, Debug)]
enum Span<'a> {
    Message(&'a [u8]),
    Buffer(usize, usize),
}

/// A placeholder's value.
enum Value<'a> {
    Bytes(Span<'a>),
    Int(i64),
}

/// A rendered value, or why there is none (boxed: failures are rare, and a small
/// `Shaped` is cheap to keep in a publish's future).
type Rendered<'a> = Result<Span<'a>, Box<Failure<'a>>>;

/// One message's rendered templates. `remote.payload` is rendered only when asked for
/// ([`Shaped::render_payload`]): a transform's records carry their own.
pub struct Shaped<'a> {
    message: Message<'a>,
    templates: Templates<'a>,
    buf: SmallVec<[u8; 256]>,
    /// Members already looked up, so a member used twice is read once.
    members: SmallVec<[(&'a Path, Result<Span<'a>, Missing>); 2]>,
    topic: Rendered<'a>,
    key: Option<Rendered<'a>>,
    headers: SmallVec<[(&'a str, Rendered<'a>); 4]>,
    timestamp: Option<Result<i64, Box<Failure<'a>>>>,
    payload: Option<Rendered<'a>>,
}

impl<'a> Shaped<'a> {
    /// Renders the topic, key, headers and timestamp of `message`.
    pub fn new(templates: Templates<'a>, message: Message<'a>) -> Shaped<'a> {
        let mut s = Shaped {
            message,
            templates,
            buf: SmallVec::new(),
            members: SmallVec::new(),
            topic: Ok(Span::Message(b"")),
            key: None,
            headers: SmallVec::new(),
            timestamp: None,
            payload: None,
        };
        s.topic = s.render_topic();
        s.key = templates.key.map(|t| s.render(t, Field::Key, false));
        for (name, t) in templates.headers {
            let value = s.render(t, Field::Header(name), false);
            s.headers.push((name, value));
        }
        s.timestamp = templates.timestamp.map(|t| s.render_timestamp(t));
        s
    }

    /// Renders `remote.payload`, for a record sent without a transform's output.
    pub fn render_payload(&mut self) {
        self.payload = self
            .templates
            .payload
            .map(|t| self.render(t, Field::Payload, false));
    }

    pub fn topic(&self) -> Result<&str, &Failure<'a>> {
        match &self.topic {
            // Checked to be a valid Kafka name, so ASCII.
            Ok(span) => Ok(std::str::from_utf8(self.bytes(*span)).unwrap_or_default()),
            Err(f) => Err(f),
        }
    }

    pub fn key(&self) -> Option<Result<&[u8], &Failure<'a>>> {
        self.key.as_ref().map(|r| self.resolve(r))
    }

    pub fn headers(&self) -> impl Iterator<Item = (&'a str, Result<&[u8], &Failure<'a>>)> {
        self.headers.iter().map(|(n, r)| (*n, self.resolve(r)))
    }

    pub fn timestamp(&self) -> Option<Result<i64, &Failure<'a>>> {
        self.timestamp
            .as_ref()
            .map(|r| r.as_ref().copied().map_err(|f| &**f))
    }

    /// `remote.payload`, once [`Shaped::render_payload`] ran.
    pub fn payload(&self) -> Option<Result<&[u8], &Failure<'a>>> {
        self.payload.as_ref().map(|r| self.resolve(r))
    }

    fn resolve<'s>(&'s self, r: &'s Rendered<'a>) -> Result<&'s [u8], &'s Failure<'a>> {
        r.as_ref().map(|span| self.bytes(*span)).map_err(|f| &**f)
    }

    fn bytes(&self, span: Span<'a>) -> &[u8] {
        match span {
            Span::Message(b) => b,
            Span::Buffer(from, to) => &self.buf[from..to],
        }
    }

    fn render_topic(&mut self) -> Rendered<'a> {
        let template = self.templates.topic;
        if let Some(name) = template.constant() {
            return Ok(Span::Message(name.as_bytes()));
        }
        let span = self.render(template.template(), Field::Topic, true)?;
        let text = self.bytes(span);
        let checked = std::str::from_utf8(text)
            .map_err(|_| String::from_utf8_lossy(text).into_owned())
            .and_then(|name| abi::rules::check_topic(name).map_err(|e| e.to_string()));
        match checked {
            Ok(()) => Ok(span),
            Err(why) => Err(Box::new(Failure {
                field: Field::Topic,
                template: template.as_str(),
                reason: Reason::InvalidTopic,
                what: why.into(),
            })),
        }
    }

    fn render_timestamp(&mut self, template: &'a Template) -> Result<i64, Box<Failure<'a>>> {
        let span = self.render(template, Field::Timestamp, false)?;
        let text = self.bytes(span);
        timestamp::parse(text).ok_or_else(|| {
            Box::new(Failure {
                field: Field::Timestamp,
                template: template.as_str(),
                reason: Reason::InvalidTimestamp,
                what: format!("\"{}\"", String::from_utf8_lossy(text)).into(),
            })
        })
    }

    /// Renders `template`; in a topic (`topic_rules`), `${local.topic}` and `${topic}`
    /// have their `/` written as `-`.
    fn render(
        &mut self,
        template: &'a Template,
        field: Field<'a>,
        topic_rules: bool,
    ) -> Rendered<'a> {
        if let Some(text) = template.constant() {
            return Ok(Span::Message(text.as_bytes()));
        }
        // Members first: a decoded one lands in the buffer before this value starts.
        for p in template.placeholders() {
            if let Placeholder::Member(path) = p {
                let _ = self.member(path);
            }
        }
        let failed = |p: &Placeholder, span, reason| {
            Box::new(Failure {
                field,
                template: template.as_str(),
                reason: reason_of(p, reason),
                what: template.text(span).into(),
            })
        };
        if let [Part::Value(p, span)] = template.parts.as_slice() {
            if !(topic_rules && slashes_become_dashes(p)) {
                return match self.value(p) {
                    Ok(Value::Bytes(b)) => Ok(b),
                    Ok(Value::Int(n)) => Ok(self.push_int(n)),
                    Err(r) => Err(failed(p, span, r)),
                };
            }
        }
        let start = self.buf.len();
        for part in &template.parts {
            match part {
                Part::Literal(text) => self.buf.extend_from_slice(text.as_bytes()),
                Part::Value(p, span) => match self.value(p) {
                    Ok(v) => self.push(v, topic_rules && slashes_become_dashes(p)),
                    Err(r) => {
                        self.buf.truncate(start);
                        return Err(failed(p, span, r));
                    }
                },
            }
        }
        Ok(Span::Buffer(start, self.buf.len()))
    }

    fn value(&mut self, p: &'a Placeholder) -> Result<Value<'a>, Missing> {
        let m = self.message;
        let text = |s: &'a str| Ok(Value::Bytes(Span::Message(s.as_bytes())));
        match p {
            Placeholder::LocalTopic => text(local_topic(m.topic, self.templates.skip_levels)),
            Placeholder::ClientId => text(m.client_id),
            Placeholder::Username => text(m.username.unwrap_or_default()),
            Placeholder::Topic => text(m.topic),
            Placeholder::TopicLevel(n) => abi::rules::topic_levels(m.topic)
                .nth(*n)
                .map_or(Err(Missing::Absent), text),
            Placeholder::Payload => Ok(Value::Bytes(Span::Message(m.payload))),
            Placeholder::Member(path) => self.member(path).map(Value::Bytes),
            Placeholder::Qos => Ok(Value::Int(m.qos.into())),
            Placeholder::Retain => text(if m.retain { "true" } else { "false" }),
            Placeholder::Timestamp => Ok(Value::Int(m.timestamp_ms)),
            Placeholder::Property(name) => m
                .user_properties
                .iter()
                .find(|(k, _)| **k == **name)
                .map_or(Err(Missing::Absent), |(_, v)| text(v)),
        }
    }

    /// A payload member's value, looked up once per message.
    fn member(&mut self, path: &'a Path) -> Result<Span<'a>, Missing> {
        if let Some((_, found)) = self.members.iter().find(|(p, _)| *p == path) {
            return *found;
        }
        let buf = &mut self.buf;
        let found = member::find(self.message.payload, path, |found| match found {
            Found::Borrowed(b) => Span::Message(b),
            Found::Decoded(text) => {
                let start = buf.len();
                buf.extend_from_slice(text.as_bytes());
                Span::Buffer(start, buf.len())
            }
            Found::Spaced(json) => {
                let start = buf.len();
                member::compact(json, buf);
                Span::Buffer(start, buf.len())
            }
        });
        self.members.push((path, found));
        found
    }

    fn push(&mut self, value: Value<'a>, slashes_to_dashes: bool) {
        match value {
            Value::Int(n) => {
                self.buf
                    .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            }
            Value::Bytes(Span::Message(b)) if slashes_to_dashes => self
                .buf
                .extend(b.iter().map(|&c| if c == b'/' { b'-' } else { c })),
            Value::Bytes(Span::Message(b)) => self.buf.extend_from_slice(b),
            Value::Bytes(Span::Buffer(from, to)) => {
                for i in from..to {
                    let b = self.buf[i];
                    self.buf.push(b);
                }
            }
        }
    }

    fn push_int(&mut self, n: i64) -> Span<'a> {
        let start = self.buf.len();
        self.push(Value::Int(n), false);
        Span::Buffer(start, self.buf.len())
    }
}

/// Whether a placeholder's value is an MQTT topic, whose `/` a Kafka topic writes as `-`.
fn slashes_become_dashes(p: &Placeholder) -> bool {
    matches!(p, Placeholder::LocalTopic | Placeholder::Topic)
}

/// The failure reason of a placeholder without a value.
fn reason_of(p: &Placeholder, missing: Missing) -> Reason {
    match (p, missing) {
        (Placeholder::TopicLevel(_), _) => Reason::NoLevel,
        (Placeholder::Property(_), _) => Reason::NoProperty,
        (_, Missing::NotJson) => Reason::NotJson,
        (_, Missing::Absent) => Reason::MemberAbsent,
    }
}

/// Drops the first `n` levels of an MQTT topic (`remote.skip_levels`).
fn local_topic(topic: &str, n: usize) -> &str {
    if n == 0 {
        return topic;
    }
    match topic.match_indices('/').nth(n - 1) {
        Some((i, _)) => &topic[i + 1..],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &[u8] =
        br#"{"id":"d\u00e91","n":1.50,"o":{ "a": [1, 2] },"ts":"2024-12-05T12:00:00.123Z"}"#;

    fn message(user_properties: &[(ByteString, ByteString)]) -> Message<'_> {
        Message {
            topic: "plant/berlin/line3/temp",
            client_id: "c1",
            username: None,
            payload: PAYLOAD,
            qos: 1,
            retain: true,
            timestamp_ms: 1_733_400_000_000,
            user_properties,
        }
    }

    /// Renders `key` (as `remote.key`) and `topic` for the test message.
    fn shape(topic: &str, key: &str, check: impl FnOnce(&Shaped<'_>)) {
        let topic: TopicTemplate = topic.parse().unwrap();
        let key: Template = key.parse().unwrap();
        let headers = BTreeMap::new();
        let templates = Templates {
            topic: &topic,
            key: Some(&key),
            headers: &headers,
            timestamp: None,
            payload: None,
            skip_levels: 1,
        };
        let props = [(ByteString::from("site"), ByteString::from("b/1"))];
        check(&Shaped::new(templates, message(&props)));
    }

    fn key_of(key: &str) -> Result<String, (Reason, String)> {
        let mut out = Err((Reason::InvalidTopic, String::new()));
        shape("t", key, |s| {
            out = match s.key().unwrap() {
                Ok(k) => Ok(String::from_utf8(k.to_vec()).unwrap()),
                Err(f) => Err((f.reason, f.to_string())),
            }
        });
        out
    }

    #[test]
    fn every_placeholder_renders() {
        let all = "${local.topic}|${clientid}|${username}|${topic}|${topic.1}|${payload.id}|\
                   ${payload.n}|${payload.o}|${qos}|${retain}|${timestamp}|${property.site}";
        assert_eq!(
            key_of(all).unwrap(),
            "berlin/line3/temp|c1||plant/berlin/line3/temp|berlin|dé1|1.50|{\"a\":[1,2]}|1|true|1733400000000|b/1"
        );
        assert_eq!(key_of("${payload}").unwrap().as_bytes(), PAYLOAD);
    }

    #[test]
    fn missing_values_name_their_reason_field_and_placeholder() {
        let (reason, text) = key_of("k-${topic.9}").unwrap_err();
        assert_eq!(reason, Reason::NoLevel);
        assert_eq!(
            text,
            "remote.key = \"k-${topic.9}\": ${topic.9}: the topic has no such level"
        );
        assert_eq!(key_of("${property.x}").unwrap_err().0, Reason::NoProperty);
        assert_eq!(
            key_of("${payload.o.b}").unwrap_err().0,
            Reason::MemberAbsent
        );
    }

    #[test]
    fn topics_write_slashes_as_dashes_and_are_checked() {
        shape("k-${local.topic}-${topic.1}", "${clientid}", |s| {
            assert_eq!(s.topic().unwrap(), "k-berlin-line3-temp-berlin");
        });
        shape("k-${property.site}", "${clientid}", |s| {
            let f = s.topic().unwrap_err();
            assert_eq!(f.reason, Reason::InvalidTopic);
            assert!(f.to_string().contains("'/' is not allowed"), "{f}");
        });
    }

    #[test]
    fn a_member_used_twice_is_looked_up_once() {
        shape("t", "${payload.id}-${payload.id}", |s| {
            assert_eq!(s.key().unwrap().unwrap(), "dé1-dé1".as_bytes());
            assert_eq!(s.members.len(), 1);
        });
    }

    #[test]
    fn timestamps_from_numbers_and_times() {
        let topic: TopicTemplate = "t".parse().unwrap();
        let headers = BTreeMap::new();
        for (template, want) in [
            ("${payload.ts}", Ok(1_733_400_000_123)),
            ("${timestamp}", Ok(1_733_400_000_000)),
            ("${payload.n}", Err(Reason::InvalidTimestamp)),
            ("${payload.none}", Err(Reason::MemberAbsent)),
        ] {
            let ts: Template = template.parse().unwrap();
            let templates = Templates {
                topic: &topic,
                key: None,
                headers: &headers,
                timestamp: Some(&ts),
                payload: None,
                skip_levels: 0,
            };
            let shaped = Shaped::new(templates, message(&[]));
            let got = shaped.timestamp().unwrap().map_err(|f| f.reason);
            assert_eq!(got, want, "{template}");
        }
    }

    #[test]
    fn local_topic_drops_leading_levels() {
        assert_eq!(local_topic("a/b/c/d", 0), "a/b/c/d");
        assert_eq!(local_topic("a/b/c/d", 2), "c/d");
        assert_eq!(local_topic("a/b", 5), "");
    }
}
