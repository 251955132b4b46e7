use abi::input::Input;

use crate::Error;

/// One MQTT publish, as the host handed it to the transform.
///
/// A `Message` is a read-only view over the input document: every accessor returns a
/// slice of it, nothing is copied. Slices live as long as the message (`'a`), so they can
/// go straight into a [`Record`](crate::Record) — an unchanged payload then reaches Kafka
/// without ever being copied inside the module.
///
/// In native unit tests, build one with [`TestMessage`](crate::TestMessage).
#[derive(Clone, Copy)]
pub struct Message<'a> {
    input: Input<'a>,
}

impl<'a> Message<'a> {
    /// Wraps a decoded input document.
    pub fn from_input(input: Input<'a>) -> Message<'a> {
        Message { input }
    }

    /// Decodes an input document (the ABI v1 layout, see `docs/abi.md`).
    pub fn decode(document: &'a [u8]) -> Result<Message<'a>, Error> {
        Input::decode(document)
            .map(Message::from_input)
            .map_err(|e| Error::msg(format_args!("malformed input document: {e}")))
    }

    /// The decoded input document, with every field the ABI carries.
    pub fn input(&self) -> &Input<'a> {
        &self.input
    }

    /// The MQTT topic the message was published to, e.g. `sensors/berlin/line1/telemetry`.
    pub fn topic(&self) -> &'a str {
        self.input.topic
    }

    /// The topic split on `/` (`a//b` has an empty middle level, as in MQTT).
    pub fn topic_levels(&self) -> impl Iterator<Item = &'a str> + 'a {
        abi::rules::topic_levels(self.input.topic)
    }

    /// Topic level `index` (0-based): for `sensors/berlin/line1`, level 1 is `berlin`.
    pub fn topic_level(&self, index: usize) -> Option<&'a str> {
        self.topic_levels().nth(index)
    }

    /// The payload bytes.
    pub fn payload(&self) -> &'a [u8] {
        self.input.payload
    }

    /// The payload as UTF-8 text, or an error if it is not valid UTF-8.
    pub fn payload_str(&self) -> Result<&'a str, Error> {
        std::str::from_utf8(self.input.payload)
            .map_err(|e| Error::msg(format_args!("payload is not valid UTF-8: {e}")))
    }

    /// QoS of the publish: 0, 1 or 2.
    pub fn qos(&self) -> u8 {
        self.input.qos
    }

    /// The retain flag.
    pub fn retain(&self) -> bool {
        self.input.retain
    }

    /// The dup flag (a redelivery).
    pub fn dup(&self) -> bool {
        self.input.dup
    }

    /// The publishing client's id.
    pub fn client_id(&self) -> &'a str {
        self.input.client_id
    }

    /// The username the client connected with, if any.
    pub fn username(&self) -> Option<&'a str> {
        self.input.username
    }

    /// The client's address as `ip:port`, when the broker knows it.
    pub fn peer_addr(&self) -> Option<&'a str> {
        self.input.peer_addr
    }

    /// Id of the broker node that received the publish.
    pub fn node_id(&self) -> u64 {
        self.input.node_id
    }

    /// Publish time, in milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self) -> i64 {
        self.input.timestamp_ms
    }

    /// `true` when the message came from an MQTT v5 client (and so may carry properties).
    pub fn is_v5(&self) -> bool {
        self.input.has_properties
    }

    /// MQTT v5 content type property.
    pub fn content_type(&self) -> Option<&'a str> {
        self.input.content_type
    }

    /// MQTT v5 response topic property.
    pub fn response_topic(&self) -> Option<&'a str> {
        self.input.response_topic
    }

    /// MQTT v5 correlation data property (binary).
    pub fn correlation_data(&self) -> Option<&'a [u8]> {
        self.input.correlation_data
    }

    /// MQTT v5 payload format indicator: `true` when the client declared the payload UTF-8.
    pub fn payload_is_utf8(&self) -> bool {
        self.input.payload_utf8
    }

    /// MQTT v5 message expiry interval, in seconds.
    pub fn message_expiry_interval(&self) -> Option<u32> {
        self.input.message_expiry_interval
    }

    /// MQTT v5 user properties as `(name, value)`, in the order the client sent them.
    /// Names may repeat.
    pub fn user_properties(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.input.user_properties.iter()
    }

    /// The value of the first user property called `name`.
    pub fn user_property(&self, name: &str) -> Option<&'a str> {
        self.user_properties()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// Deserializes the JSON payload. Invalid JSON or a shape mismatch is an [`Error`]
    /// saying where (`invalid JSON payload: ... at line 1 column 7`).
    ///
    /// To read strings without copying them, borrow them from the payload, but as
    /// `Cow<'a, str>` with `#[serde(borrow)]` rather than `&'a str`: a JSON string that
    /// holds an escape (`"d\u002d17"`) must be unescaped into a new string, which a
    /// `&str` cannot hold, so such a payload would fail (with an error that says so).
    ///
    /// ```
    /// use std::borrow::Cow;
    /// use serde::Deserialize;
    ///
    /// #[derive(Deserialize)]
    /// struct Reading<'a> {
    ///     #[serde(borrow)]
    ///     device_id: Cow<'a, str>, // borrowed, or owned when it had an escape
    ///     value: f64,
    /// }
    /// # use rmqtt_kafka_transform::TestMessage;
    /// let t = TestMessage::new("t", r#"{"device_id":"d\u002d17","value":1.5}"#);
    /// let r: Reading = t.message().json().unwrap();
    /// assert_eq!(r.device_id, "d-17");
    /// ```
    #[cfg(feature = "json")]
    pub fn json<T: serde::Deserialize<'a>>(&self) -> Result<T, Error> {
        serde_json::from_slice(self.input.payload).map_err(crate::json::payload_error)
    }

    /// The JSON payload as a [`serde_json::Value`]. This builds every member; to read a
    /// few fields, prefer [`Message::json`] into a struct or [`Message::json_field`].
    #[cfg(feature = "json")]
    pub fn json_value(&self) -> Result<serde_json::Value, Error> {
        self.json()
    }

    /// One member of a JSON object payload, deserialized into `T` (`None` if absent).
    /// Nothing else is built: the other members are skipped without allocating, so
    /// reading one field of a large payload stays cheap. A payload that is not an object
    /// is the error "payload is not a JSON object". `T = &serde_json::value::RawValue`
    /// gives the member's JSON text as written, borrowed from the payload.
    #[cfg(feature = "json")]
    pub fn json_field<T: serde::Deserialize<'a>>(&self, name: &str) -> Result<Option<T>, Error> {
        crate::json::field(self.input.payload, name)
    }
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("Message");
        s.field("topic", &self.topic());
        match self.payload_str() {
            Ok(text) => s.field("payload", &text),
            Err(_) => s.field("payload", &self.payload()),
        };
        s.field("qos", &self.qos())
            .field("retain", &self.retain())
            .field("client_id", &self.client_id())
            .field("timestamp_ms", &self.timestamp_ms())
            .field("is_v5", &self.is_v5())
            .finish_non_exhaustive()
    }
}
