use std::cell::OnceCell;

use abi::input::{Input, InputFields, Properties};

use crate::Message;

/// Builds a [`Message`] for native unit tests, without a WebAssembly runtime.
///
/// [`TestMessage::message`] encodes the publish with the same ABI codec the host uses and
/// decodes it like the module does, so a test sees exactly what the transform will see.
///
/// ```
/// use rmqtt_kafka_transform::TestMessage;
///
/// let t = TestMessage::new("sensors/berlin/line1/telemetry", r#"{"value":42}"#)
///     .qos(1)
///     .client_id("d1")
///     .user_property("site", "berlin");
/// let msg = t.message();
/// assert_eq!(msg.topic_level(1), Some("berlin"));
/// assert_eq!(msg.user_property("site"), Some("berlin"));
/// assert!(msg.is_v5());
/// ```
///
/// Defaults (`abi::sample`, shared with `rmqttd transform test`): QoS 1, no flags,
/// client id `test-client`, no username or peer address, timestamp `1_700_000_000_000`
/// (2023-11-14T22:13:20Z), node id 1, MQTT v3.1.1. Setting
/// any v5 property (or calling [`TestMessage::v5`]) makes it an MQTT v5 message.
#[derive(Debug, Clone)]
pub struct TestMessage {
    topic: String,
    payload: Vec<u8>,
    qos: u8,
    retain: bool,
    dup: bool,
    client_id: String,
    username: Option<String>,
    peer_addr: Option<String>,
    timestamp_ms: i64,
    node_id: u64,
    v5: Option<V5>,
    encoded: OnceCell<Vec<u8>>,
}

#[derive(Debug, Clone, Default)]
struct V5 {
    payload_utf8: bool,
    message_expiry_interval: Option<u32>,
    content_type: Option<String>,
    response_topic: Option<String>,
    correlation_data: Option<Vec<u8>>,
    user_properties: Vec<(String, String)>,
}

impl TestMessage {
    /// The default timestamp of a test message, in ms since the Unix epoch.
    pub const DEFAULT_TIMESTAMP_MS: i64 = abi::sample::TIMESTAMP_MS;

    /// A QoS 1 MQTT v3.1.1 publish of `payload` to `topic`.
    pub fn new(topic: impl Into<String>, payload: impl AsRef<[u8]>) -> TestMessage {
        TestMessage {
            topic: topic.into(),
            payload: payload.as_ref().to_vec(),
            qos: abi::sample::QOS,
            retain: false,
            dup: false,
            client_id: abi::sample::CLIENT_ID.to_owned(),
            username: None,
            peer_addr: None,
            timestamp_ms: Self::DEFAULT_TIMESTAMP_MS,
            node_id: abi::sample::NODE_ID,
            v5: None,
            encoded: OnceCell::new(),
        }
    }

    /// The message as the transform sees it.
    ///
    /// # Panics
    /// If the QoS is above 2 (the host never sends that).
    pub fn message(&self) -> Message<'_> {
        let doc = self.encoded.get_or_init(|| self.encode());
        match Input::decode(doc) {
            Ok(input) => Message::from_input(input),
            Err(e) => panic!("TestMessage does not encode to a valid input document: {e}"),
        }
    }

    /// The encoded input document (what the host writes into the module's buffer).
    pub fn document(&self) -> &[u8] {
        self.encoded.get_or_init(|| self.encode())
    }

    fn encode(&self) -> Vec<u8> {
        let user_properties: Vec<(&[u8], &[u8])> = self
            .v5
            .iter()
            .flat_map(|p| &p.user_properties)
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        let fields = InputFields {
            qos: self.qos,
            retain: self.retain,
            dup: self.dup,
            timestamp_ms: self.timestamp_ms,
            node_id: self.node_id,
            topic: self.topic.as_bytes(),
            payload: &self.payload,
            client_id: self.client_id.as_bytes(),
            username: self.username.as_deref().map(str::as_bytes),
            peer_addr: self.peer_addr.as_deref().map(str::as_bytes),
            properties: self.v5.as_ref().map(|p| Properties {
                payload_utf8: p.payload_utf8,
                message_expiry_interval: p.message_expiry_interval,
                content_type: p.content_type.as_deref().map(str::as_bytes),
                response_topic: p.response_topic.as_deref().map(str::as_bytes),
                correlation_data: p.correlation_data.as_deref(),
                user_properties: &user_properties,
            }),
        };
        let mut doc = vec![0; fields.encoded_len()];
        fields.encode(&mut doc);
        doc
    }

    fn edit(mut self, f: impl FnOnce(&mut TestMessage)) -> TestMessage {
        f(&mut self);
        self.encoded = OnceCell::new();
        self
    }

    fn edit_v5(self, f: impl FnOnce(&mut V5)) -> TestMessage {
        self.edit(|m| f(m.v5.get_or_insert_with(V5::default)))
    }

    /// QoS 0, 1 or 2.
    pub fn qos(self, qos: u8) -> TestMessage {
        self.edit(|m| m.qos = qos)
    }

    /// The retain flag.
    pub fn retain(self, retain: bool) -> TestMessage {
        self.edit(|m| m.retain = retain)
    }

    /// The dup flag.
    pub fn dup(self, dup: bool) -> TestMessage {
        self.edit(|m| m.dup = dup)
    }

    /// The publishing client's id (default `test-client`).
    pub fn client_id(self, client_id: impl Into<String>) -> TestMessage {
        let client_id = client_id.into();
        self.edit(|m| m.client_id = client_id)
    }

    /// The username the client connected with.
    pub fn username(self, username: impl Into<String>) -> TestMessage {
        let username = username.into();
        self.edit(|m| m.username = Some(username))
    }

    /// The client's `ip:port`.
    pub fn peer_addr(self, peer_addr: impl Into<String>) -> TestMessage {
        let peer_addr = peer_addr.into();
        self.edit(|m| m.peer_addr = Some(peer_addr))
    }

    /// Publish time in ms since the Unix epoch (default [`Self::DEFAULT_TIMESTAMP_MS`]).
    pub fn timestamp_ms(self, timestamp_ms: i64) -> TestMessage {
        self.edit(|m| m.timestamp_ms = timestamp_ms)
    }

    /// Broker node id (default 1).
    pub fn node_id(self, node_id: u64) -> TestMessage {
        self.edit(|m| m.node_id = node_id)
    }

    /// Makes this an MQTT v5 message, even without properties.
    pub fn v5(self) -> TestMessage {
        self.edit_v5(|_| {})
    }

    /// v5 content type.
    pub fn content_type(self, content_type: impl Into<String>) -> TestMessage {
        let content_type = content_type.into();
        self.edit_v5(|p| p.content_type = Some(content_type))
    }

    /// v5 response topic.
    pub fn response_topic(self, response_topic: impl Into<String>) -> TestMessage {
        let response_topic = response_topic.into();
        self.edit_v5(|p| p.response_topic = Some(response_topic))
    }

    /// v5 correlation data.
    pub fn correlation_data(self, correlation_data: impl AsRef<[u8]>) -> TestMessage {
        let correlation_data = correlation_data.as_ref().to_vec();
        self.edit_v5(|p| p.correlation_data = Some(correlation_data))
    }

    /// v5 payload format indicator (UTF-8).
    pub fn payload_utf8(self, payload_utf8: bool) -> TestMessage {
        self.edit_v5(|p| p.payload_utf8 = payload_utf8)
    }

    /// v5 message expiry interval in seconds (0 means absent, as on the wire).
    pub fn message_expiry_interval(self, seconds: u32) -> TestMessage {
        self.edit_v5(|p| p.message_expiry_interval = (seconds != 0).then_some(seconds))
    }

    /// Appends a v5 user property (names may repeat; order is kept).
    pub fn user_property(self, name: impl Into<String>, value: impl Into<String>) -> TestMessage {
        let pair = (name.into(), value.into());
        self.edit_v5(|p| p.user_properties.push(pair))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Levels split as MQTT splits them, as `str::split('/')` would.
    #[test]
    fn topic_levels_keep_empty_levels_and_whole_characters() {
        for topic in ["", "/", "a", "a//b", "/a/", "sensors/münchen/€/x", "ä/ß"] {
            let t = TestMessage::new(topic, "");
            let levels: Vec<&str> = t.message().topic_levels().collect();
            assert_eq!(levels, topic.split('/').collect::<Vec<_>>(), "{topic:?}");
        }
        let t = TestMessage::new("sensors/münchen/€", "");
        assert_eq!(t.message().topic_level(1), Some("münchen"));
        assert_eq!(t.message().topic_level(2), Some("€"));
    }

    #[test]
    fn v3_defaults() {
        let t = TestMessage::new("a/b/c", "hello");
        let m = t.message();
        assert_eq!(m.topic(), "a/b/c");
        assert_eq!(m.topic_levels().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(m.topic_level(2), Some("c"));
        assert_eq!(m.topic_level(3), None);
        assert_eq!(m.payload(), b"hello");
        assert_eq!(m.payload_str().unwrap(), "hello");
        assert_eq!((m.qos(), m.retain(), m.dup()), (1, false, false));
        assert_eq!(m.client_id(), "test-client");
        assert_eq!((m.username(), m.peer_addr()), (None, None));
        assert_eq!(m.timestamp_ms(), TestMessage::DEFAULT_TIMESTAMP_MS);
        assert_eq!(m.node_id(), 1);
        assert!(!m.is_v5() && !m.payload_is_utf8());
        assert_eq!(
            (m.content_type(), m.response_topic(), m.correlation_data()),
            (None, None, None)
        );
        assert_eq!(m.message_expiry_interval(), None);
        assert_eq!(m.user_properties().count(), 0);
    }

    #[test]
    fn every_field_roundtrips() {
        let t = TestMessage::new("x", [0xff, 0])
            .qos(2)
            .retain(true)
            .dup(true)
            .client_id("c")
            .username("u")
            .peer_addr("10.0.0.1:5000")
            .timestamp_ms(-1)
            .node_id(9)
            .content_type("text/plain")
            .response_topic("r")
            .correlation_data([1, 2])
            .payload_utf8(true)
            .message_expiry_interval(30)
            .user_property("k", "1")
            .user_property("k", "2");
        let m = t.message();
        assert!(m
            .payload_str()
            .unwrap_err()
            .to_string()
            .starts_with("payload is not valid UTF-8"));
        assert_eq!((m.qos(), m.retain(), m.dup()), (2, true, true));
        assert_eq!(
            (m.client_id(), m.username(), m.peer_addr()),
            ("c", Some("u"), Some("10.0.0.1:5000"))
        );
        assert_eq!((m.timestamp_ms(), m.node_id()), (-1, 9));
        assert!(m.is_v5() && m.payload_is_utf8());
        assert_eq!(m.content_type(), Some("text/plain"));
        assert_eq!(m.response_topic(), Some("r"));
        assert_eq!(m.correlation_data(), Some(&[1u8, 2][..]));
        assert_eq!(m.message_expiry_interval(), Some(30));
        assert_eq!(
            m.user_properties().collect::<Vec<_>>(),
            [("k", "1"), ("k", "2")]
        );
        assert_eq!(m.user_property("k"), Some("1"));
        assert_eq!(m.user_property("nope"), None);
        assert_eq!(Message::decode(t.document()).unwrap().topic(), "x");
    }

    #[test]
    fn v5_without_properties() {
        assert!(TestMessage::new("t", "").v5().message().is_v5());
    }

    #[test]
    fn editing_after_message_reencodes() {
        let t = TestMessage::new("t", "p");
        assert_eq!(t.message().qos(), 1);
        let t = t.qos(0);
        assert_eq!(t.message().qos(), 0);
    }

    #[test]
    fn malformed_documents_are_errors() {
        let err = Message::decode(&[1, 2, 3]).unwrap_err();
        assert!(
            err.to_string().starts_with("malformed input document"),
            "{err}"
        );
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_payloads() {
        #[derive(serde::Deserialize)]
        struct Reading<'a> {
            device: &'a str,
            value: f64,
        }
        let t = TestMessage::new("t", r#"{"device":"d1","value":2.5}"#);
        let m = t.message();
        let r: Reading = m.json().unwrap();
        assert_eq!((r.device, r.value), ("d1", 2.5));
        assert_eq!(m.json_value().unwrap()["value"], 2.5);
        let bad = TestMessage::new("t", "{");
        let err = bad.message().json_value().unwrap_err().to_string();
        assert!(
            err.starts_with("invalid JSON payload: EOF while parsing"),
            "{err}"
        );
    }
}
