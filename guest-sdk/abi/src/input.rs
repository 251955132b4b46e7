//! The input document: one MQTT publish, written by the host into the buffer that
//! `rmqtt_transform_reserve` returned.
//!
//! ```text
//! offset 0   u8   qos (0, 1 or 2)
//! offset 1   u8   flags: RETAIN | DUP | PROPERTIES | PAYLOAD_UTF8
//! offset 2   u16  reserved, 0
//! offset 4   u32  message expiry interval in seconds (0 = absent)
//! offset 8   i64  publish time, milliseconds since the Unix epoch
//! offset 16  u64  broker node id
//! offset 24  bytes topic, bytes payload, bytes client id,
//!            opt-bytes username, opt-bytes peer address ("ip:port"),
//!            opt-bytes content type, opt-bytes response topic, opt-bytes correlation data,
//!            u32 user property count, then that many (bytes name, bytes value)
//! ```
//! `bytes` is a `u32` length and the bytes; `opt-bytes` is the same, where the length
//! [`crate::ABSENT`] means absent and no bytes follow. Every text field is UTF-8.

use crate::wire::{Reader, WireError, Writer};

/// Flag: the publish has the retain flag.
pub const FLAG_RETAIN: u8 = 1;
/// Flag: the publish is a redelivery.
pub const FLAG_DUP: u8 = 2;
/// Flag: the publish came from an MQTT v5 client and carries properties.
pub const FLAG_PROPERTIES: u8 = 4;
/// Flag: the payload format indicator says UTF-8.
pub const FLAG_PAYLOAD_UTF8: u8 = 8;

const FIXED_LEN: usize = 24;
const KNOWN_FLAGS: u8 = FLAG_RETAIN | FLAG_DUP | FLAG_PROPERTIES | FLAG_PAYLOAD_UTF8;

/// MQTT v5 publish properties, as the host encodes them.
pub struct Properties<'a, U> {
    pub payload_utf8: bool,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<&'a [u8]>,
    pub response_topic: Option<&'a [u8]>,
    pub correlation_data: Option<&'a [u8]>,
    pub user_properties: &'a [(U, U)],
}

/// One publish, as the host encodes it.
pub struct InputFields<'a, U> {
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub timestamp_ms: i64,
    pub node_id: u64,
    pub topic: &'a [u8],
    pub payload: &'a [u8],
    pub client_id: &'a [u8],
    pub username: Option<&'a [u8]>,
    pub peer_addr: Option<&'a [u8]>,
    pub properties: Option<Properties<'a, U>>,
}

fn opt_len(v: Option<&[u8]>) -> usize {
    4 + v.map_or(0, <[u8]>::len)
}

impl<U: AsRef<[u8]>> InputFields<'_, U> {
    /// Exact size of the encoded document.
    pub fn encoded_len(&self) -> usize {
        let mut len = FIXED_LEN
            + 12
            + self.topic.len()
            + self.payload.len()
            + self.client_id.len()
            + opt_len(self.username)
            + opt_len(self.peer_addr)
            + 4;
        match &self.properties {
            Some(p) => {
                len += opt_len(p.content_type)
                    + opt_len(p.response_topic)
                    + opt_len(p.correlation_data);
                for (k, v) in p.user_properties {
                    len += 8 + k.as_ref().len() + v.as_ref().len();
                }
            }
            None => len += 12,
        }
        len
    }

    /// Writes the document into `out`, which must be exactly [`Self::encoded_len`] bytes.
    pub fn encode(&self, out: &mut [u8]) {
        debug_assert_eq!(out.len(), self.encoded_len());
        let mut flags = 0;
        if self.retain {
            flags |= FLAG_RETAIN;
        }
        if self.dup {
            flags |= FLAG_DUP;
        }
        let mut expiry = 0;
        if let Some(p) = &self.properties {
            flags |= FLAG_PROPERTIES;
            if p.payload_utf8 {
                flags |= FLAG_PAYLOAD_UTF8;
            }
            expiry = p.message_expiry_interval.unwrap_or(0);
        }
        let mut w = Writer::new(out);
        w.put(&[self.qos, flags, 0, 0]);
        w.u32(expiry);
        w.put(&self.timestamp_ms.to_le_bytes());
        w.put(&self.node_id.to_le_bytes());
        w.len_prefixed(self.topic);
        w.len_prefixed(self.payload);
        w.len_prefixed(self.client_id);
        w.opt_len_prefixed(self.username);
        w.opt_len_prefixed(self.peer_addr);
        match &self.properties {
            Some(p) => {
                w.opt_len_prefixed(p.content_type);
                w.opt_len_prefixed(p.response_topic);
                w.opt_len_prefixed(p.correlation_data);
                w.u32(p.user_properties.len() as u32);
                for (k, v) in p.user_properties {
                    w.len_prefixed(k.as_ref());
                    w.len_prefixed(v.as_ref());
                }
            }
            None => {
                w.opt_len_prefixed(None);
                w.opt_len_prefixed(None);
                w.opt_len_prefixed(None);
                w.u32(0);
            }
        }
        debug_assert_eq!(w.written(), out.len());
    }
}

/// A decoded input document; every field borrows from the document bytes.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    /// `true` when the publish came from an MQTT v5 client.
    pub has_properties: bool,
    pub payload_utf8: bool,
    pub message_expiry_interval: Option<u32>,
    pub timestamp_ms: i64,
    pub node_id: u64,
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub peer_addr: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub response_topic: Option<&'a str>,
    pub correlation_data: Option<&'a [u8]>,
    pub user_properties: UserProperties<'a>,
}

fn text<'a>(bytes: &'a [u8], field: &'static str) -> Result<&'a str, WireError> {
    core::str::from_utf8(bytes).map_err(|_| WireError::Invalid { field })
}

fn opt_text<'a>(
    bytes: Option<&'a [u8]>,
    field: &'static str,
) -> Result<Option<&'a str>, WireError> {
    bytes.map(|b| text(b, field)).transpose()
}

impl<'a> Input<'a> {
    /// Reads and validates a whole input document.
    pub fn decode(doc: &'a [u8]) -> Result<Input<'a>, WireError> {
        let mut r = Reader::new(doc);
        let qos = r.u8("qos")?;
        if qos > 2 {
            return Err(WireError::Invalid { field: "qos" });
        }
        let flags = r.u8("flags")?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(WireError::Invalid { field: "flags" });
        }
        r.u16("reserved")?;
        let expiry = r.u32("message_expiry_interval")?;
        let timestamp_ms = r.i64("timestamp")?;
        let node_id = r.u64("node_id")?;
        let topic = text(r.len_prefixed("topic")?, "topic")?;
        let payload = r.len_prefixed("payload")?;
        let client_id = text(r.len_prefixed("client_id")?, "client_id")?;
        let username = opt_text(r.opt_len_prefixed("username")?, "username")?;
        let peer_addr = opt_text(r.opt_len_prefixed("peer_addr")?, "peer_addr")?;
        let content_type = opt_text(r.opt_len_prefixed("content_type")?, "content_type")?;
        let response_topic = opt_text(r.opt_len_prefixed("response_topic")?, "response_topic")?;
        let correlation_data = r.opt_len_prefixed("correlation_data")?;
        let count = r.u32("user_property_count")?;
        let region = r.remaining();
        let mut props = Reader::new(region);
        for _ in 0..count {
            text(
                props.len_prefixed("user_property.name")?,
                "user_property.name",
            )?;
            text(
                props.len_prefixed("user_property.value")?,
                "user_property.value",
            )?;
        }
        props.finish()?;
        Ok(Input {
            qos,
            retain: flags & FLAG_RETAIN != 0,
            dup: flags & FLAG_DUP != 0,
            has_properties: flags & FLAG_PROPERTIES != 0,
            payload_utf8: flags & FLAG_PAYLOAD_UTF8 != 0,
            message_expiry_interval: (expiry != 0).then_some(expiry),
            timestamp_ms,
            node_id,
            topic,
            payload,
            client_id,
            username,
            peer_addr,
            content_type,
            response_topic,
            correlation_data,
            user_properties: UserProperties { count, region },
        })
    }
}

/// The user properties of an input document, in their original order (validated by
/// [`Input::decode`]).
#[derive(Debug, Clone, Copy)]
pub struct UserProperties<'a> {
    count: u32,
    region: &'a [u8],
}

impl<'a> UserProperties<'a> {
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> UserPropertyIter<'a> {
        UserPropertyIter {
            left: self.count,
            reader: Reader::new(self.region),
        }
    }
}

impl<'a> IntoIterator for UserProperties<'a> {
    type Item = (&'a str, &'a str);
    type IntoIter = UserPropertyIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over `(name, value)` user property pairs.
pub struct UserPropertyIter<'a> {
    left: u32,
    reader: Reader<'a>,
}

impl<'a> Iterator for UserPropertyIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The region was fully validated by `Input::decode`, so these reads succeed.
        let name = core::str::from_utf8(self.reader.len_prefixed("name").ok()?).ok()?;
        let value = core::str::from_utf8(self.reader.len_prefixed("value").ok()?).ok()?;
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(props: Option<Properties<'a, &'a [u8]>>) -> InputFields<'a, &'a [u8]> {
        InputFields {
            qos: 1,
            retain: true,
            dup: false,
            timestamp_ms: 1_700_000_000_123,
            node_id: 7,
            topic: b"sensors/a/telemetry",
            payload: b"{\"t\":21.5}",
            client_id: b"dev-1",
            username: Some(b"alice"),
            peer_addr: None,
            properties: props,
        }
    }

    fn roundtrip<'b>(fields: &InputFields<'_, &[u8]>, buf: &'b mut [u8; 512]) -> Input<'b> {
        let len = fields.encoded_len();
        fields.encode(&mut buf[..len]);
        Input::decode(&buf[..len]).unwrap()
    }

    #[test]
    fn v3_publish_roundtrips() {
        let mut buf = [0u8; 512];
        let input = roundtrip(&sample(None), &mut buf);
        assert_eq!(input.qos, 1);
        assert!(input.retain && !input.dup && !input.has_properties);
        assert_eq!(input.timestamp_ms, 1_700_000_000_123);
        assert_eq!(input.node_id, 7);
        assert_eq!(input.topic, "sensors/a/telemetry");
        assert_eq!(input.payload, b"{\"t\":21.5}");
        assert_eq!(input.client_id, "dev-1");
        assert_eq!(input.username, Some("alice"));
        assert_eq!(input.peer_addr, None);
        assert_eq!(input.content_type, None);
        assert!(input.user_properties.is_empty());
    }

    #[test]
    fn v5_properties_roundtrip_in_order() {
        let ups: [(&[u8], &[u8]); 3] = [(b"k", b"1"), (b"k", b"2"), (b"site", b"berlin")];
        let props = Properties {
            payload_utf8: true,
            message_expiry_interval: Some(60),
            content_type: Some(b"application/json"),
            response_topic: Some(b"reply/here"),
            correlation_data: Some(&[0, 1, 2]),
            user_properties: &ups,
        };
        let mut buf = [0u8; 512];
        let input = roundtrip(&sample(Some(props)), &mut buf);
        assert!(input.has_properties && input.payload_utf8);
        assert_eq!(input.message_expiry_interval, Some(60));
        assert_eq!(input.content_type, Some("application/json"));
        assert_eq!(input.response_topic, Some("reply/here"));
        assert_eq!(input.correlation_data, Some(&[0u8, 1, 2][..]));
        let got: [(&str, &str); 3] = {
            let mut it = input.user_properties.iter();
            [it.next().unwrap(), it.next().unwrap(), it.next().unwrap()]
        };
        assert_eq!(got, [("k", "1"), ("k", "2"), ("site", "berlin")]);
    }

    #[test]
    fn truncated_and_trailing_documents_are_rejected() {
        let fields = sample(None);
        let len = fields.encoded_len();
        let mut buf = [0u8; 512];
        fields.encode(&mut buf[..len]);
        for cut in 0..len {
            assert!(
                Input::decode(&buf[..cut]).is_err(),
                "prefix of {cut} bytes accepted"
            );
        }
        assert_eq!(
            Input::decode(&buf[..len + 1]).unwrap_err(),
            WireError::TrailingBytes { extra: 1 }
        );
    }

    #[test]
    fn invalid_utf8_topic_is_rejected() {
        let mut fields = sample(None);
        fields.topic = &[0xff, 0xfe];
        let len = fields.encoded_len();
        let mut buf = [0u8; 512];
        fields.encode(&mut buf[..len]);
        assert_eq!(
            Input::decode(&buf[..len]).unwrap_err(),
            WireError::Invalid { field: "topic" }
        );
    }
}
