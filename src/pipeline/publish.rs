//! One MQTT publish as the bridge sees it, and its two mappings: to a Kafka record with
//! the standard headers, and to the transform ABI's input document.

use std::io::Write as _;
use std::net::SocketAddr;

use bytestring::ByteString;
use rmqtt::codec::v5::PublishProperties;
use rmqtt::types::{From, FromType, Publish};
use smallvec::SmallVec;

use crate::record::{Headers, Record};
use crate::shape::Message;

/// Everything about a publish that the entries share; built once per publish.
pub struct PublishInfo<'a> {
    pub from: &'a From,
    pub publish: &'a Publish,
    /// When the broker received the publish (ms since the epoch): the Kafka timestamp.
    pub timestamp_ms: i64,
    peer: SmallVec<[u8; 64]>,
    /// The numbers among the standard headers, as text; `time` is when the bridge
    /// handled the publish.
    numbers: Numbers,
}

/// The standard headers' numbers, written once per publish.
struct Numbers {
    from_type: FromType,
    node: Decimal,
    qos: Decimal,
    packet_id: Option<Decimal>,
    ts: Option<Decimal>,
    time: Decimal,
    expiry: Option<Decimal>,
}

/// An integer's decimal text, held inline.
struct Decimal {
    bytes: [u8; 20],
    len: u8,
}

impl Decimal {
    fn of(n: impl itoa::Integer) -> Decimal {
        let mut buf = itoa::Buffer::new();
        let text = buf.format(n).as_bytes();
        let mut bytes = [0; 20];
        bytes[..text.len()].copy_from_slice(text);
        Decimal {
            bytes,
            len: text.len() as u8,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl<'a> PublishInfo<'a> {
    pub fn new(from: &'a From, publish: &'a Publish) -> Self {
        let now_ms = crate::observe::clock::wall_ms();
        let mut peer = SmallVec::new();
        if let Some(addr) = from.remote_addr {
            write_addr(&mut peer, &addr);
        }
        let props = publish.properties.as_ref();
        let numbers = Numbers {
            from_type: from.typ(),
            node: Decimal::of(from.node()),
            qos: Decimal::of(publish.qos.value()),
            packet_id: publish.packet_id.map(|id| Decimal::of(id.get())),
            ts: publish.create_time.map(Decimal::of),
            time: Decimal::of(now_ms),
            expiry: props.and_then(|p| p.message_expiry_interval.map(|e| Decimal::of(e.get()))),
        };
        PublishInfo {
            from,
            publish,
            timestamp_ms: publish.create_time.unwrap_or(now_ms),
            peer,
            numbers,
        }
    }

    pub fn topic(&self) -> &str {
        &self.publish.topic
    }

    pub fn client_id(&self) -> &str {
        &self.from.client_id
    }

    /// The client's `ip:port`, when it has one.
    pub fn peer(&self) -> Option<&str> {
        (!self.peer.is_empty()).then(|| std::str::from_utf8(&self.peer).unwrap_or_default())
    }

    /// A record of this publish: its payload unless `payload` says otherwise, the
    /// publish time as its timestamp, and the standard headers.
    pub fn record<'r>(&'r self, topic: &'r str, key: Option<&'r [u8]>) -> Record<'r> {
        Record {
            topic,
            key,
            payload: Some(&self.publish.payload),
            partition: None,
            timestamp: self.timestamp_ms,
            received_ms: self.timestamp_ms,
            headers: self.standard_headers(),
            dead_letter: false,
        }
    }

    /// The standard headers, in this order: the upstream set (`from_type`, `from_node`,
    /// `from_ipaddress`, `from_clientid`, `from_username`, `dup`, `retain`, `qos`,
    /// `packet_id`, `ts`, `time`, `topic`), then the MQTT v5 properties
    /// (`content_type`, `response_topic`, `correlation_data`, `payload_format_indicator`,
    /// `message_expiry_interval`), then every user property.
    pub fn standard_headers(&self) -> Headers<'_> {
        let mut h = Headers::new();
        self.upstream_headers(&mut h);
        if let Some(pr) = &self.publish.properties {
            self.v5_headers(&mut h, pr);
        }
        h
    }

    /// The headers upstream's plugin sets, with its names and formats.
    fn upstream_headers<'s>(&'s self, h: &mut Headers<'s>) {
        let p = self.publish;
        let n = &self.numbers;
        h.push(("from_type", Some(n.from_type.as_str().as_bytes())));
        h.push(("from_node", Some(n.node.as_bytes())));
        h.push(("from_ipaddress", self.peer().map(str::as_bytes)));
        h.push(("from_clientid", Some(self.client_id().as_bytes())));
        h.push(("from_username", Some(self.from.username_ref().as_bytes())));
        h.push(("dup", Some(bool_str(p.dup))));
        h.push(("retain", Some(bool_str(p.retain))));
        h.push(("qos", Some(n.qos.as_bytes())));
        if let Some(id) = &n.packet_id {
            h.push(("packet_id", Some(id.as_bytes())));
        }
        if let Some(ts) = &n.ts {
            h.push(("ts", Some(ts.as_bytes())));
        }
        h.push(("time", Some(n.time.as_bytes())));
        h.push(("topic", Some(self.topic().as_bytes())));
    }

    /// The MQTT v5 properties, then every user property.
    fn v5_headers<'s>(&'s self, h: &mut Headers<'s>, pr: &'s PublishProperties) {
        if let Some(ct) = &pr.content_type {
            h.push(("content_type", Some(ct.as_bytes())));
        }
        if let Some(rt) = &pr.response_topic {
            h.push(("response_topic", Some(rt.as_bytes())));
        }
        if let Some(cd) = &pr.correlation_data {
            h.push(("correlation_data", Some(&cd[..])));
        }
        h.push((
            "payload_format_indicator",
            Some(bool_digit(pr.is_utf8_payload)),
        ));
        if let Some(e) = &self.numbers.expiry {
            h.push(("message_expiry_interval", Some(e.as_bytes())));
        }
        for (k, v) in &pr.user_properties {
            h.push((k.as_ref(), Some(v.as_bytes())));
        }
    }

    /// What templates read of this publish.
    pub fn message(&self) -> Message<'_> {
        let p = self.publish;
        Message {
            topic: &p.topic,
            client_id: self.client_id(),
            username: self.from.username.as_deref(),
            payload: &p.payload,
            qos: p.qos.value(),
            retain: p.retain,
            timestamp_ms: self.timestamp_ms,
            user_properties: p
                .properties
                .as_ref()
                .map_or(&[], |pr| pr.user_properties.as_slice()),
        }
    }

    /// The transform ABI's input document fields for this publish.
    pub fn input_fields(&self) -> abi::input::InputFields<'_, ByteString> {
        let p = self.publish;
        abi::input::InputFields {
            qos: p.qos.value(),
            retain: p.retain,
            dup: p.dup,
            timestamp_ms: self.timestamp_ms,
            node_id: self.from.node(),
            topic: p.topic.as_ref(),
            payload: &p.payload,
            client_id: self.from.client_id.as_ref(),
            username: self.from.username.as_ref().map(|u| u.as_ref()),
            peer_addr: self.peer().map(str::as_bytes),
            properties: p.properties.as_ref().map(|pr| abi::input::Properties {
                payload_utf8: pr.is_utf8_payload,
                message_expiry_interval: pr.message_expiry_interval.map(|e| e.get()),
                content_type: pr.content_type.as_ref().map(|s| s.as_ref()),
                response_topic: pr.response_topic.as_ref().map(|s| s.as_ref()),
                correlation_data: pr.correlation_data.as_deref(),
                user_properties: &pr.user_properties,
            }),
        }
    }
}

/// `ip:port`, as `Display` writes it, without the formatting machinery for IPv4 (this
/// runs for every publish).
fn write_addr(out: &mut SmallVec<[u8; 64]>, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            let mut num = itoa::Buffer::new();
            for (i, octet) in a.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(num.format(octet).as_bytes());
            }
            out.push(b':');
            out.extend_from_slice(num.format(a.port()).as_bytes());
        }
        // Writing into a SmallVec cannot fail.
        SocketAddr::V6(a) => {
            let _ = write!(out, "{a}");
        }
    }
}

fn bool_digit(b: bool) -> &'static [u8] {
    if b {
        b"1"
    } else {
        b"0"
    }
}

fn bool_str(b: bool) -> &'static [u8] {
    if b {
        b"true"
    } else {
        b"false"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_format_like_display() {
        for addr in [
            "127.0.0.1:1883",
            "10.20.30.255:65535",
            "0.0.0.0:0",
            "[::1]:8883",
            "[fe80::1%2]:1",
        ] {
            let a: SocketAddr = addr.parse().unwrap();
            let mut out = SmallVec::new();
            write_addr(&mut out, &a);
            assert_eq!(std::str::from_utf8(&out).unwrap(), a.to_string());
        }
    }
}
