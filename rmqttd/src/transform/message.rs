//! The sample messages `rmqttd transform test` feeds a module: one from the flags, or
//! one per line of a JSON Lines file, each field defaulting to its flag.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::Args;
use serde::Deserialize;
use serde_json::value::RawValue;

/// A message's fields as flags; with `--input`, the defaults of every line.
#[derive(Args, Debug, Clone)]
pub struct MessageArgs {
    /// The MQTT topic.
    #[arg(long, default_value = "test/topic")]
    topic: String,
    /// The payload, as text.
    #[arg(long, conflicts_with = "payload_file", default_value = "")]
    payload: String,
    /// The payload, read from a file (bytes as they are).
    #[arg(long)]
    payload_file: Option<PathBuf>,
    /// The publish's QoS, 0 to 2.
    #[arg(long, default_value_t = abi::sample::QOS, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// The publish's retain flag.
    #[arg(long)]
    retain: bool,
    /// The publishing client's id.
    #[arg(long, default_value = abi::sample::CLIENT_ID)]
    clientid: String,
    /// The publishing client's user name (none by default).
    #[arg(long)]
    username: Option<String>,
    /// An MQTT v5 user property, `name=value`; repeatable, in order.
    #[arg(long = "property", value_name = "NAME=VALUE", value_parser = key_value)]
    properties: Vec<(String, String)>,
    /// When the broker received the message, ms since the epoch; fixed by default so
    /// that outputs compare across runs.
    #[arg(long, default_value_t = abi::sample::TIMESTAMP_MS)]
    timestamp_ms: i64,
}

/// `name=value`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not name=value"))
}

/// One message, owned.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub clientid: String,
    pub username: Option<String>,
    pub properties: Vec<(String, String)>,
    pub timestamp_ms: i64,
}

impl MessageArgs {
    /// The message the flags describe.
    pub fn message(&self) -> Result<Message> {
        let payload = match &self.payload_file {
            Some(f) => {
                std::fs::read(f).with_context(|| format!("--payload-file {}", f.display()))?
            }
            None => self.payload.clone().into_bytes(),
        };
        Ok(Message {
            topic: self.topic.clone(),
            payload,
            qos: self.qos,
            retain: self.retain,
            clientid: self.clientid.clone(),
            username: self.username.clone(),
            properties: self.properties.clone(),
            timestamp_ms: self.timestamp_ms,
        })
    }
}

impl Message {
    /// The message as the host hands it to a module: an MQTT v5 publish when it has
    /// user properties, else v3.
    pub fn fields(&self) -> abi::input::InputFields<'_, String> {
        let properties = (!self.properties.is_empty()).then(|| abi::input::Properties {
            payload_utf8: false,
            message_expiry_interval: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user_properties: &self.properties,
        });
        abi::input::InputFields {
            qos: self.qos,
            retain: self.retain,
            dup: false,
            timestamp_ms: self.timestamp_ms,
            node_id: abi::sample::NODE_ID,
            topic: self.topic.as_bytes(),
            payload: &self.payload,
            client_id: self.clientid.as_bytes(),
            username: self.username.as_deref().map(str::as_bytes),
            peer_addr: Some(b"127.0.0.1:50000"),
            properties,
        }
    }
}

/// A line of an input file: every field optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    topic: Option<String>,
    payload: Option<String>,
    payload_b64: Option<String>,
    /// A JSON document, whose text as written is the payload (as `transform test`
    /// prints one).
    payload_json: Option<Box<RawValue>>,
    qos: Option<u8>,
    retain: Option<bool>,
    clientid: Option<String>,
    username: Option<String>,
    /// User properties, in order.
    properties: Option<Vec<(String, String)>>,
    timestamp_ms: Option<i64>,
}

/// The messages of a JSON Lines file (blank lines skipped), each over `defaults`.
pub fn read_lines(path: &Path, defaults: &Message) -> Result<Vec<Message>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--input {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = || format!("{} line {}", path.display(), i + 1);
        let l: Line = serde_json::from_str(line).with_context(at)?;
        out.push(over(l, defaults).with_context(at)?);
    }
    Ok(out)
}

fn over(l: Line, d: &Message) -> Result<Message> {
    let payload = match (l.payload, l.payload_b64, l.payload_json) {
        (Some(p), None, None) => p.into_bytes(),
        (None, Some(b), None) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .context("payload_b64")?,
        (None, None, Some(doc)) => doc.get().as_bytes().to_vec(),
        (None, None, None) => d.payload.clone(),
        _ => bail!("give one of payload, payload_b64 and payload_json"),
    };
    if l.qos.is_some_and(|q| q > 2) {
        bail!("qos must be 0, 1 or 2");
    }
    Ok(Message {
        topic: l.topic.unwrap_or_else(|| d.topic.clone()),
        payload,
        qos: l.qos.unwrap_or(d.qos),
        retain: l.retain.unwrap_or(d.retain),
        clientid: l.clientid.unwrap_or_else(|| d.clientid.clone()),
        username: l.username.or_else(|| d.username.clone()),
        properties: l.properties.unwrap_or_else(|| d.properties.clone()),
        timestamp_ms: l.timestamp_ms.unwrap_or(d.timestamp_ms),
    })
}
