//! One MQTT publish as the bridge sees it, and its two mappings: to Kafka headers and to
//! the transform ABI's input document.

use std::io::Write as _;
use std::net::SocketAddr;

use bytestring::ByteString;
use rdkafka::message::{Header, OwnedHeaders};
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
        let now_ms = rmqtt::utils::timestamp_millis();
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
        let p = self.publish;
        let props = p.properties.as_ref();
        let user_props = props.map_or(0, |pr| pr.user_properties.len());
        let mut h = OwnedHeaders::new_with_capacity(17 + user_props + extra);
        let mut num = itoa::Buffer::new();
        h = h.insert(Header {
            key: "from_type",
            value: Some(self.from.typ().as_str()),
        });
        h = h.insert(Header {
            key: "from_node",
            value: Some(num.format(self.from.node())),
        });
        h = h.insert(Header {
            key: "from_ipaddress",
            value: self.peer(),
        });
        h = h.insert(Header {
            key: "from_clientid",
            value: Some(self.client_id()),
        });
        h = h.insert(Header {
            key: "from_username",
            value: Some(self.from.username_ref()),
        });
        h = h.insert(Header {
            key: "dup",
            value: Some(bool_str(p.dup)),
        });
        h = h.insert(Header {
            key: "retain",
            value: Some(bool_str(p.retain)),
        });
        h = h.insert(Header {
            key: "qos",
            value: Some(num.format(p.qos.value())),
        });
        if let Some(id) = p.packet_id {
            h = h.insert(Header {
                key: "packet_id",
                value: Some(num.format(id.get())),
            });
        }
        if let Some(ts) = p.create_time {
            h = h.insert(Header {
                key: "ts",
                value: Some(num.format(ts)),
            });
        }
        h = h.insert(Header {
            key: "time",
            value: Some(num.format(self.now_ms)),
        });
        h = h.insert(Header {
            key: "topic",
            value: Some(self.topic()),
        });
        if let Some(pr) = props {
            if let Some(ct) = &pr.content_type {
                h = h.insert(Header {
                    key: "content_type",
                    value: Some(&ct[..]),
                });
            }
            if let Some(rt) = &pr.response_topic {
                h = h.insert(Header {
                    key: "response_topic",
                    value: Some(&rt[..]),
                });
            }
            if let Some(cd) = &pr.correlation_data {
                h = h.insert(Header {
                    key: "correlation_data",
                    value: Some(&cd[..]),
                });
            }
            h = h.insert(Header {
                key: "payload_format_indicator",
                value: Some(if pr.is_utf8_payload { "1" } else { "0" }),
            });
            if let Some(e) = pr.message_expiry_interval {
                h = h.insert(Header {
                    key: "message_expiry_interval",
                    value: Some(num.format(e.get())),
                });
            }
            for (k, v) in &pr.user_properties {
                h = h.insert(Header {
                    key: k,
                    value: Some(&v[..]),
                });
            }
        }
        h
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
