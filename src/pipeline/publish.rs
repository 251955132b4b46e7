//! One MQTT publish as the bridge sees it, and its two mappings: to Kafka headers and to
//! the transform ABI's input document.

use std::io::Write as _;
use std::net::SocketAddr;

use bytestring::ByteString;
use rdkafka::message::{Header, OwnedHeaders, ToBytes};
use rmqtt::codec::v5::PublishProperties;
use rmqtt::types::{From, Publish};
use smallvec::SmallVec;

/// Everything about a publish that the entries share; built once per publish.
pub struct PublishInfo<'a> {
    pub from: &'a From,
    pub publish: &'a Publish,
    /// When the broker received the publish (ms since the epoch): the Kafka timestamp.
    pub timestamp_ms: i64,
    /// When the bridge handled it (ms since the epoch): the `time` header.
    pub now_ms: i64,
    peer: SmallVec<[u8; 64]>,
}

impl<'a> PublishInfo<'a> {
    pub fn new(from: &'a From, publish: &'a Publish) -> Self {
        let now_ms = crate::observe::clock::wall_ms();
        let mut peer = SmallVec::new();
        if let Some(addr) = from.remote_addr {
            write_addr(&mut peer, &addr);
        }
        PublishInfo {
            from,
            publish,
            timestamp_ms: publish.create_time.unwrap_or(now_ms),
            now_ms,
            peer,
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

    /// The standard headers, in this order: the upstream set (`from_type`, `from_node`,
    /// `from_ipaddress`, `from_clientid`, `from_username`, `dup`, `retain`, `qos`,
    /// `packet_id`, `ts`, `time`, `topic`), then the MQTT v5 properties
    /// (`content_type`, `response_topic`, `correlation_data`, `payload_format_indicator`,
    /// `message_expiry_interval`), then every user property. `extra` reserves room for
    /// headers the caller appends.
    pub fn standard_headers(&self, extra: usize) -> OwnedHeaders {
        let props = self.publish.properties.as_ref();
        let user_props = props.map_or(0, |pr| pr.user_properties.len());
        let h = OwnedHeaders::new_with_capacity(17 + user_props + extra);
        let h = self.upstream_headers(h);
        match props {
            Some(pr) => v5_headers(h, pr),
            None => h,
        }
    }

    /// The headers upstream's plugin sets, with its names and formats.
    fn upstream_headers(&self, h: OwnedHeaders) -> OwnedHeaders {
        let p = self.publish;
        let mut num = itoa::Buffer::new();
        let h = put(h, "from_type", Some(self.from.typ().as_str()));
        let h = put(h, "from_node", Some(num.format(self.from.node())));
        let h = put(h, "from_ipaddress", self.peer());
        let h = put(h, "from_clientid", Some(self.client_id()));
        let h = put(h, "from_username", Some(self.from.username_ref()));
        let h = put(h, "dup", Some(bool_str(p.dup)));
        let h = put(h, "retain", Some(bool_str(p.retain)));
        let mut h = put(h, "qos", Some(num.format(p.qos.value())));
        if let Some(id) = p.packet_id {
            h = put(h, "packet_id", Some(num.format(id.get())));
        }
        if let Some(ts) = p.create_time {
            h = put(h, "ts", Some(num.format(ts)));
        }
        let h = put(h, "time", Some(num.format(self.now_ms)));
        put(h, "topic", Some(self.topic()))
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

/// The MQTT v5 properties, then every user property.
fn v5_headers(mut h: OwnedHeaders, pr: &PublishProperties) -> OwnedHeaders {
    if let Some(ct) = &pr.content_type {
        h = put(h, "content_type", Some(&ct[..]));
    }
    if let Some(rt) = &pr.response_topic {
        h = put(h, "response_topic", Some(&rt[..]));
    }
    if let Some(cd) = &pr.correlation_data {
        h = put(h, "correlation_data", Some(&cd[..]));
    }
    h = put(
        h,
        "payload_format_indicator",
        Some(bool_digit(pr.is_utf8_payload)),
    );
    if let Some(e) = pr.message_expiry_interval {
        h = put(
            h,
            "message_expiry_interval",
            Some(itoa::Buffer::new().format(e.get())),
        );
    }
    for (k, v) in &pr.user_properties {
        h = put(h, k, Some(&v[..]));
    }
    h
}

fn put<V: ToBytes + ?Sized>(h: OwnedHeaders, key: &str, value: Option<&V>) -> OwnedHeaders {
    h.insert(Header { key, value })
}

fn bool_digit(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
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
