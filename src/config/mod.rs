//! Plugin configuration: the seed's format, which loads unchanged, plus this plugin's
//! additions. Every value is checked at load, and every error names the bridge, the entry
//! and the field it is about.

mod error;
mod schema;
mod units;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::ConfigError;
pub use schema::{RegistryAuth, RegistrySource, SchemaConfig, SchemaFormat, SchemaSource};
pub use units::parse_duration;
use units::{byte_size, duration};

use crate::route::{KafkaTopic, TopicFilter};
use crate::shape::{Template, TopicTemplate};

/// The most records a bridge may hold in flight (`max_inflight_messages`): what a
/// record's delivery tag has room to number.
pub const MAX_INFLIGHT_MESSAGES: usize = 1 << 20;
/// The most entries that may share a bridge's producers: what a delivery tag has room
/// to number.
pub const MAX_SHARED_ENTRIES: usize = 1 << 10;

/// The file rmqtt reads this plugin's configuration from, inside `plugins.dir`.
pub const CONFIG_FILE: &str = "rmqtt-bridge-egress-kafka.toml";

/// The whole plugin configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Upstream's task-pool size. Accepted so upstream files load; this plugin has no
    /// task pool (records are produced without waiting), so it has no effect.
    #[serde(default)]
    pub task_queue_capacity: Option<usize>,
    /// Upstream's task-pool concurrency. Accepted, no effect (see above).
    #[serde(default)]
    pub task_concurrency_limit: Option<usize>,
    /// Where the plugin's own HTTP endpoint (`/metrics`, `/health`, `/status`) listens;
    /// absent, there is none. Served by the plugin itself, so embedders get it too.
    #[serde(default)]
    pub http_laddr: Option<String>,
    /// When set, every route but `/health` requires `Authorization: Bearer <token>`.
    #[serde(default)]
    pub http_bearer_token: Option<String>,
    #[serde(default)]
    pub bridges: Vec<BridgeConfig>,
}

/// One `[[bridges]]` table: a Kafka cluster and the entries forwarded to it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    #[serde(default = "yes")]
    pub enable: bool,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub servers: Option<String>,
    #[serde(default)]
    pub client_id_prefix: Option<String>,
    #[serde(default = "one")]
    pub concurrent_client_limit: usize,
    /// Whose producers an entry's records take: its own (`"entry"`, upstream's design)
    /// or the bridge's, shared by all its entries (`"bridge"`).
    #[serde(default)]
    pub producer_pool: ProducerPool,
    /// librdkafka properties; keys starting with `#` are ignored, as upstream does.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Most records of this bridge waiting for a delivery report.
    #[serde(default = "default_max_inflight_messages")]
    pub max_inflight_messages: usize,
    /// Most payload + key bytes of this bridge waiting for a delivery report.
    #[serde(default = "default_max_inflight_bytes", deserialize_with = "byte_size")]
    pub max_inflight_bytes: u64,
    /// How long stopping the plugin waits for in-flight records.
    #[serde(default = "default_shutdown_timeout", deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// Where records wait for Kafka: in memory only, or in a disk spool first.
    #[serde(default)]
    pub buffer: BufferConfig,
    #[serde(default)]
    pub entries: Vec<EntryConfig>,
}

/// `[bridges.buffer]`: where a bridge's records wait for Kafka.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    #[serde(default)]
    pub mode: BufferMode,
    /// The spool's parent directory; each bridge spools in `<dir>/<bridge name>`.
    #[serde(default = "default_buffer_dir")]
    pub dir: PathBuf,
    /// Most bytes the spool's segments may take on disk.
    #[serde(default = "default_buffer_max_bytes", deserialize_with = "byte_size")]
    pub max_bytes: u64,
    /// The longest a record written to the spool waits for its `fdatasync`: the window
    /// a power loss can take at `remote.ack = "written"`. A publish at `"synced"` asks
    /// for a sync at once instead.
    #[serde(default = "default_flush_interval", deserialize_with = "duration")]
    pub flush_interval: Duration,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            mode: BufferMode::default(),
            dir: default_buffer_dir(),
            max_bytes: default_buffer_max_bytes(),
            flush_interval: default_flush_interval(),
        }
    }
}

/// `buffer.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferMode {
    /// Records wait in memory only, bounded by `max_inflight_*`.
    #[default]
    Memory,
    /// Every record is appended to the bridge's disk spool before it goes to Kafka.
    Disk,
}

impl BufferMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BufferMode::Memory => "memory",
            BufferMode::Disk => "disk",
        }
    }
}

fn default_buffer_dir() -> PathBuf {
    PathBuf::from("data/kafka-spool")
}

fn default_buffer_max_bytes() -> u64 {
    1 << 30
}

/// A tenth of a second bounds what a power loss takes at `"written"` to what arrives in
/// that time, and costs ten syncs a second, which a spool under load makes anyway: every
/// page it writes reaches the disk within seconds (docs/spool.md, "The sync window").
fn default_flush_interval() -> Duration {
    Duration::from_millis(100)
}

/// `producer_pool`: who owns a bridge's librdkafka producers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProducerPool {
    /// `concurrent_client_limit` producers per entry, as upstream.
    #[default]
    Entry,
    /// `concurrent_client_limit` producers for the whole bridge.
    Bridge,
}

/// One `[[bridges.entries]]` table: a topic filter and where its messages go.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryConfig {
    pub local: LocalConfig,
    pub remote: RemoteConfig,
    #[serde(default)]
    pub transform: Option<TransformConfig>,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    pub topic_filter: TopicFilter,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    pub topic: TopicTemplate,
    /// How long a publish may wait for room in the in-flight buffer; 0 never waits.
    #[serde(default, deserialize_with = "duration")]
    pub queue_timeout: Duration,
    #[serde(default)]
    pub partition: Option<i32>,
    #[serde(default)]
    pub skip_levels: usize,
    #[serde(default)]
    pub key: Option<Template>,
    /// Extra Kafka headers, name → template, after the standard ones (in name order).
    #[serde(default)]
    pub headers: BTreeMap<String, Template>,
    /// The record's timestamp: a template that renders ms since the epoch or an RFC 3339
    /// time. Unset: when the broker received the publish.
    #[serde(default)]
    pub timestamp: Option<Template>,
    /// The record's value. Unset: the payload unchanged.
    #[serde(default)]
    pub payload: Option<Template>,
    /// What happens to a record one of whose templates has no value for its message.
    #[serde(default = "forward")]
    pub on_template_error: OnError,
    /// Where `on_template_error = "dead_letter"` sends such a message (and
    /// `on_schema_error = "dead_letter"`).
    #[serde(default)]
    pub dead_letter_topic: Option<KafkaTopic>,
    /// The record's value encoded against a schema and framed as Confluent's serializers
    /// frame it.
    #[serde(default)]
    pub value_schema: Option<SchemaConfig>,
    /// The record's key, likewise.
    #[serde(default)]
    pub key_schema: Option<SchemaConfig>,
    /// What happens to a record whose value or key does not fit its schema, or whose
    /// schema is not available: `"drop"` or `"dead_letter"`; never sent unencoded.
    #[serde(default)]
    pub on_schema_error: OnError,
    /// When a QoS 1/2 publish is acknowledged; see [`AckLevel`]. Unset: `"delivered"`
    /// with `ack_after_delivery = true`, else the buffer mode's default.
    #[serde(default)]
    pub ack: Option<AckLevel>,
    /// The older name of `ack = "delivered"`, kept working.
    #[serde(default)]
    pub ack_after_delivery: Option<bool>,
}

/// `remote.ack`: when the PUBACK (QoS 1) or PUBREC (QoS 2) of a publish goes out, and so
/// what a publisher may forget once it has it. QoS 0 never waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum AckLevel {
    /// The bridge accepted the record: nothing survives beyond memory (memory mode's
    /// default).
    Received,
    /// The record is in the spool file, in the kernel: it survives the broker process
    /// dying, not a power loss (disk mode's default).
    Written,
    /// An `fdatasync` covering the record returned: it survives a power loss.
    Synced,
    /// Kafka acknowledged every record of the publish.
    Delivered,
}

impl TryFrom<String> for AckLevel {
    type Error = String;

    /// Names every level, whichever reader (TOML, environment) gave the text.
    fn try_from(text: String) -> Result<Self, String> {
        AckLevel::ALL
            .into_iter()
            .find(|level| level.as_str() == text)
            .ok_or_else(|| {
                let levels = AckLevel::ALL.map(AckLevel::as_str).join(", ");
                format!("unknown level \"{text}\": expected one of {levels}")
            })
    }
}

impl AckLevel {
    pub const ALL: [AckLevel; 4] = [
        AckLevel::Received,
        AckLevel::Written,
        AckLevel::Synced,
        AckLevel::Delivered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AckLevel::Received => "received",
            AckLevel::Written => "written",
            AckLevel::Synced => "synced",
            AckLevel::Delivered => "delivered",
        }
    }

    /// The level of an entry that names none.
    pub fn default_for(mode: BufferMode) -> AckLevel {
        match mode {
            BufferMode::Memory => AckLevel::Received,
            BufferMode::Disk => AckLevel::Written,
        }
    }
}

impl RemoteConfig {
    /// The entry's level in a bridge of buffer mode `mode` (checked at load: the two
    /// keys agree, and the level fits the mode).
    pub fn ack_level(&self, mode: BufferMode) -> AckLevel {
        match (self.ack, self.ack_after_delivery) {
            (Some(level), _) => level,
            (None, Some(true)) => AckLevel::Delivered,
            (None, _) => AckLevel::default_for(mode),
        }
    }
}

/// `transform.*`: the code an entry runs its messages through, and its limits.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(try_from = "TransformFields")]
pub struct TransformConfig {
    pub code: TransformCode,
    pub config: BTreeMap<String, String>,
    pub instances: usize,
    pub timeout: Duration,
    pub max_memory: u64,
    pub on_error: OnError,
    pub dead_letter_topic: Option<KafkaTopic>,
    /// Most records one message may become (at most `abi::MAX_RECORDS`).
    pub max_records: u32,
    /// Bounds of the entry's state store.
    pub state_max_keys: usize,
    pub state_max_bytes: u64,
}

/// What a transform runs. Relative paths resolve against the broker's working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformCode {
    /// `transform.module`: a WebAssembly module (`.wasm`, or `.wat` text).
    Module(PathBuf),
    /// `transform.script`: a JavaScript file, run by the runtime the plugin embeds.
    Script(PathBuf),
}

impl TransformCode {
    pub fn path(&self) -> &Path {
        match self {
            TransformCode::Module(p) | TransformCode::Script(p) => p,
        }
    }

    /// The same kind of code at `path`.
    pub fn at(&self, path: PathBuf) -> TransformCode {
        match self {
            TransformCode::Module(_) => TransformCode::Module(path),
            TransformCode::Script(_) => TransformCode::Script(path),
        }
    }

    /// `"module"` or `"script"`.
    pub fn kind(&self) -> &'static str {
        match self {
            TransformCode::Module(_) => "module",
            TransformCode::Script(_) => "script",
        }
    }

    /// The config field that names it.
    pub fn field(&self) -> &'static str {
        match self {
            TransformCode::Module(_) => "transform.module",
            TransformCode::Script(_) => "transform.script",
        }
    }
}

/// `transform.*` as written, before one of `module` and `script` is chosen.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TransformFields {
    module: Option<PathBuf>,
    script: Option<PathBuf>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default = "default_instances")]
    instances: usize,
    #[serde(default = "default_transform_timeout", deserialize_with = "duration")]
    timeout: Duration,
    #[serde(default = "default_max_memory", deserialize_with = "byte_size")]
    max_memory: u64,
    #[serde(default)]
    on_error: OnError,
    #[serde(default)]
    dead_letter_topic: Option<KafkaTopic>,
    #[serde(default = "default_max_records")]
    max_records: u32,
    #[serde(default = "default_state_max_keys")]
    state_max_keys: usize,
    #[serde(default = "default_state_max_bytes", deserialize_with = "byte_size")]
    state_max_bytes: u64,
}

impl TryFrom<TransformFields> for TransformConfig {
    type Error = &'static str;

    fn try_from(f: TransformFields) -> Result<TransformConfig, Self::Error> {
        let code = match (f.module, f.script) {
            (Some(m), None) => TransformCode::Module(m),
            (None, Some(s)) => TransformCode::Script(s),
            (Some(_), Some(_)) => return Err("transform.module and transform.script are both set; an entry runs one of them"),
            (None, None) => return Err("needs transform.module (a WebAssembly module) or transform.script (a JavaScript file)"),
        };
        Ok(TransformConfig {
            code,
            config: f.config,
            instances: f.instances,
            timeout: f.timeout,
            max_memory: f.max_memory,
            on_error: f.on_error,
            dead_letter_topic: f.dead_letter_topic,
            max_records: f.max_records,
            state_max_keys: f.state_max_keys,
            state_max_bytes: f.state_max_bytes,
        })
    }
}

/// What happens to a message whose transform failed (`transform.on_error`), or to a
/// record one of whose templates has no value (`remote.on_template_error`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Count it and drop it.
    #[default]
    Drop,
    /// Send the record without what failed: untransformed, or without the template's
    /// part (no key, no such header, the receive time, the payload unchanged).
    Forward,
    /// Send the original payload to `dead_letter_topic` with headers naming the cause.
    DeadLetter,
}

impl OnError {
    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Drop => "drop",
            OnError::Forward => "forward",
            OnError::DeadLetter => "dead_letter",
        }
    }
}

fn yes() -> bool {
    true
}
/// A record with a part missing still reaches Kafka, and is counted as such.
fn forward() -> OnError {
    OnError::Forward
}
fn one() -> usize {
    1
}
fn default_max_inflight_messages() -> usize {
    100_000
}
fn default_max_inflight_bytes() -> u64 {
    64 << 20
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_instances() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}
fn default_transform_timeout() -> Duration {
    Duration::from_millis(100)
}
fn default_max_memory() -> u64 {
    16 << 20
}
fn default_max_records() -> u32 {
    abi::DEFAULT_MAX_RECORDS
}
fn default_state_max_keys() -> usize {
    100_000
}
fn default_state_max_bytes() -> u64 {
    16 << 20
}

impl PluginConfig {
    /// Deserializes and validates the configuration tree rmqtt read for this plugin.
    pub fn from_value(raw: config::Value) -> Result<PluginConfig, ConfigError> {
        let names = error::bridge_names(&raw);
        let mut cfg: PluginConfig = serde_path_to_error::deserialize(raw)
            .map_err(|e| ConfigError::from_serde(e.path(), &names, &e.inner().to_string()))?;
        cfg.name_subjects()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses TOML text, as an embedder or a test holds it.
    pub fn from_toml(text: &str) -> Result<PluginConfig, ConfigError> {
        let raw = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize::<config::Value>())
            .map_err(|e| ConfigError::file(e.to_string()))?;
        PluginConfig::from_value(raw)
    }

    /// The enabled bridges with their index in the file.
    pub fn enabled_bridges(&self) -> impl Iterator<Item = (usize, &BridgeConfig)> {
        self.bridges.iter().enumerate().filter(|(_, b)| b.enable)
    }
}

/// How log lines and errors name an entry: `bridge "x" entry N`.
pub fn entry_label(bridge: &str, entry: usize) -> String {
    format!("bridge \"{bridge}\" entry {entry}")
}

impl EntryConfig {
    /// The entry's `entry` label in `/metrics`: its index and topic filter, as
    /// `0:sensors/#`.
    pub fn metrics_label(&self, index: usize) -> String {
        format!("{index}:{}", self.local.topic_filter.as_str())
    }
}

impl BridgeConfig {
    /// librdkafka properties to apply, without the commented-out (`#`) keys.
    pub fn active_properties(&self) -> impl Iterator<Item = (&str, &str)> {
        self.properties
            .iter()
            .filter(|(k, _)| !k.trim_start().starts_with('#'))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn servers(&self) -> &str {
        self.servers.as_deref().unwrap_or_default()
    }

    /// `${client_id_prefix}:${bridge_name}:egress:${node_id}:${entry_index}:${client_no}`,
    /// with `client_no` from 1 to `concurrent_client_limit`; a bridge's shared
    /// producers (`entry` is `None`) have `shared` where the entry index stands.
    pub fn client_id(&self, node_id: u64, entry: Option<usize>, client_no: usize) -> String {
        let prefix = self.client_id_prefix.as_deref().unwrap_or("rmqtt");
        let owner = entry.map_or_else(|| "shared".to_owned(), |i| i.to_string());
        format!(
            "{prefix}:{}:egress:{node_id}:{owner}:{client_no}",
            self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed document's example configuration, verbatim.
    const SEED: &str = include_str!("../../tests/fixtures/seed-bridge-egress-kafka.toml");

    #[test]
    fn seed_config_loads_unchanged() {
        let cfg = PluginConfig::from_toml(SEED).unwrap();
        let b = &cfg.bridges[0];
        assert!(b.enable);
        assert_eq!(b.name, "bridge_kafka_1");
        assert_eq!(b.servers(), "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094");
        assert_eq!(b.concurrent_client_limit, 3);
        assert_eq!(
            b.active_properties().collect::<Vec<_>>(),
            [("message.timeout.ms", "5000")]
        );
        assert_eq!(b.entries.len(), 2);
        assert_eq!(
            b.entries[0].local.topic_filter.as_str(),
            "local/topic1/egress/#"
        );
        assert_eq!(b.entries[0].remote.queue_timeout, Duration::ZERO);
        assert_eq!(
            b.entries[1].remote.topic.constant(),
            Some("remote-topic2-egress")
        );
        assert_eq!(b.entries[1].remote.partition, None);
        assert_eq!(
            b.client_id(1, Some(0), 1),
            "kafka_001:bridge_kafka_1:egress:1:0:1"
        );
    }

    #[test]
    fn upstream_extras_are_accepted() {
        let cfg = PluginConfig::from_toml(
            r##"
task_queue_capacity = 300000
task_concurrency_limit = 128
[[bridges]]
name = "b"
servers = "k:9092"
[bridges.properties]
"message.timeout.ms" = 5000
"#linger.ms" = "5"
[[bridges.entries]]
local.topic_filter = "a/b/c/#"
remote.topic = "t-${local.topic}"
remote.skip_levels = 2
remote.partition = "1"
remote.key = "${clientid}-${username}"
"##,
        )
        .unwrap();
        let b = &cfg.bridges[0];
        assert!(b.enable, "enable defaults to true, as the seed documents");
        assert_eq!(
            b.active_properties().collect::<Vec<_>>(),
            [("message.timeout.ms", "5000")]
        );
        assert_eq!(b.entries[0].remote.skip_levels, 2);
        assert_eq!(b.entries[0].remote.partition, Some(1));
        assert_eq!(
            b.entries[0].remote.key.as_ref().unwrap().as_str(),
            "${clientid}-${username}"
        );
    }

    fn error_of(toml: &str) -> ConfigError {
        PluginConfig::from_toml(toml).unwrap_err()
    }

    #[test]
    fn errors_name_bridge_entry_and_field() {
        let e = error_of(
            r#"
[[bridges]]
name = "b1"
servers = "k:9092"
[[bridges.entries]]
local.topic_filter = "a/#"
remote.topic = "t"
[[bridges.entries]]
local.topic_filter = "b/#"
remote.topic = "t"
remote.queue_timeout = "5 parsecs"
"#,
        );
        assert_eq!(e.bridge, Some((0, "b1".to_owned())));
        assert_eq!(e.entry, Some(1));
        assert_eq!(e.field, "remote.queue_timeout");
        let msg = e.to_string();
        assert!(msg.starts_with("rmqtt-bridge-egress-kafka.toml: bridge \"b1\", entry 1, field `remote.queue_timeout`: invalid duration"), "{msg}");

        let e = error_of("[[bridges]]\nname = \"b1\"\n[[bridges.entries]]\nlocal.topic_filter = \"a/#\"\nremote.topic = \"t\"\n");
        assert_eq!((e.entry, e.field.as_str()), (None, "servers"));

        let e = error_of("[[bridges]]\nname = \"x\"\nservers = \"k\"\n[[bridges.entries]]\nlocal.topic_filter = \"a/#/b\"\nremote.topic = \"t\"\n");
        assert_eq!((e.entry, e.field.as_str()), (Some(0), "local.topic_filter"));
        assert!(
            e.problem.contains("'#' must be the last level"),
            "{}",
            e.problem
        );

        let e = error_of("[[bridges]]\nname = \"x\"\nservers = \"k\"\n[[bridges]]\nname = \"x\"\nservers = \"k\"\n");
        assert_eq!((e.bridge.clone().unwrap().0, e.field.as_str()), (1, "name"));

        let e =
            error_of("[[bridges]]\nname = \"x\"\nservers = \"k\"\nconcurrent_client_limit = 0\n");
        assert_eq!(e.field, "concurrent_client_limit");

        let e = error_of("[[bridges]]\nname = \"x\"\nservers = \"k\"\n[[bridges.entries]]\nlocal.topic_filter = \"a\"\nremote.topik = \"t\"\n");
        assert_eq!((e.entry, e.field.as_str()), (Some(0), "remote.topik"));
        assert!(e.problem.contains("unknown field `topik`"), "{}", e.problem);

        let e =
            error_of("[[bridges]]\nname = \"x\"\nservers = \"k\"\nmax_inflight_bytes = \"lots\"\n");
        assert_eq!(e.field, "max_inflight_bytes");
    }

    #[test]
    fn transform_section_is_checked() {
        let base = "[[bridges]]\nname = \"x\"\nservers = \"k\"\n[[bridges.entries]]\nlocal.topic_filter = \"a\"\nremote.topic = \"t\"\n";
        let cfg = PluginConfig::from_toml(&format!(
            "{base}transform.module = \"m.wasm\"\ntransform.config = {{ threshold = 30, on = true, name = \"n\" }}\ntransform.timeout = \"10ms\"\ntransform.max_memory = \"16MiB\"\ntransform.on_error = \"dead_letter\"\ntransform.dead_letter_topic = \"dlq\"\n"
        ))
        .unwrap();
        let t = cfg.bridges[0].entries[0].transform.as_ref().unwrap();
        assert_eq!(t.config.get("threshold").map(String::as_str), Some("30"));
        assert_eq!(t.config.get("on").map(String::as_str), Some("true"));
        assert_eq!(t.timeout, Duration::from_millis(10));
        assert_eq!(t.max_memory, 16 << 20);
        assert_eq!(t.on_error, OnError::DeadLetter);

        let e = error_of(&format!(
            "{base}transform.module = \"m.wasm\"\ntransform.on_error = \"dead_letter\"\n"
        ));
        assert_eq!(e.field, "transform.dead_letter_topic");
        let e = error_of(&format!(
            "{base}transform.module = \"m.wasm\"\ntransform.on_error = \"explode\"\n"
        ));
        assert_eq!(e.field, "transform.on_error");
        let e = error_of(&format!(
            "{base}transform.module = \"m.wasm\"\ntransform.instances = 0\n"
        ));
        assert_eq!(e.field, "transform.instances");
    }

    #[test]
    fn record_cap_and_state_bounds_are_settings_with_ceilings() {
        let base = "[[bridges]]\nname = \"x\"\nservers = \"k\"\n[[bridges.entries]]\nlocal.topic_filter = \"a\"\nremote.topic = \"t\"\ntransform.module = \"m.wasm\"\n";
        let cfg = PluginConfig::from_toml(base).unwrap();
        let t = cfg.bridges[0].entries[0].transform.as_ref().unwrap();
        assert_eq!(
            (t.max_records, t.state_max_keys, t.state_max_bytes),
            (1024, 100_000, 16 << 20)
        );
        let cfg = PluginConfig::from_toml(&format!(
            "{base}transform.max_records = 65536\ntransform.state_max_keys = 5\ntransform.state_max_bytes = \"1MiB\"\n"
        ))
        .unwrap();
        let t = cfg.bridges[0].entries[0].transform.as_ref().unwrap();
        assert_eq!(
            (t.max_records, t.state_max_keys, t.state_max_bytes),
            (65536, 5, 1 << 20)
        );
        for (line, field, says) in [
            (
                "transform.max_records = 65537",
                "transform.max_records",
                "must be 1 to 65536 (the ABI's ceiling), got 65537",
            ),
            (
                "transform.max_records = 0",
                "transform.max_records",
                "got 0",
            ),
            (
                "transform.state_max_keys = 0",
                "transform.state_max_keys",
                "must be 1 to 10000000",
            ),
            (
                "transform.state_max_bytes = \"10B\"",
                "transform.state_max_bytes",
                "between 1KiB and 4GiB",
            ),
        ] {
            let e = error_of(&format!("{base}{line}\n"));
            assert_eq!(
                (e.bridge.clone(), e.entry, e.field.as_str()),
                (Some((0, "x".into())), Some(0), field)
            );
            assert!(e.problem.contains(says), "{line}: {}", e.problem);
        }
    }

    #[test]
    fn an_entry_runs_a_module_or_a_script() {
        let base = "[[bridges]]\nname = \"x\"\nservers = \"k\"\n[[bridges.entries]]\nlocal.topic_filter = \"a\"\nremote.topic = \"t\"\n";
        let cfg =
            PluginConfig::from_toml(&format!("{base}transform.script = \"scripts/route.js\"\n"))
                .unwrap();
        let t = cfg.bridges[0].entries[0].transform.as_ref().unwrap();
        assert_eq!(t.code, TransformCode::Script("scripts/route.js".into()));
        assert_eq!(t.code.field(), "transform.script");

        let e = error_of(&format!(
            "{base}transform.module = \"m.wasm\"\ntransform.script = \"r.js\"\n"
        ));
        assert_eq!((e.entry, e.field.as_str()), (Some(0), "transform"));
        assert!(e.problem.contains("both set"), "{}", e.problem);
        let e = error_of(&format!("{base}transform.timeout = \"5ms\"\n"));
        assert!(
            e.problem.contains("needs transform.module"),
            "{}",
            e.problem
        );
        let e = error_of(&format!(
            "{base}transform.script = \"r.js\"\ntransform.config = {{ \"rmqtt.script.source\" = \"x\" }}\n"
        ));
        assert_eq!(e.field, "transform.config");
        let e = error_of(&format!("{base}transform.scritp = \"r.js\"\n"));
        assert!(
            e.problem.contains("unknown field `scritp`"),
            "{}",
            e.problem
        );
    }

    #[test]
    fn templates_load_and_every_refusal_names_field_and_column() {
        let base = "[[bridges]]\nname = \"x\"\nservers = \"k\"\n[[bridges.entries]]\nlocal.topic_filter = \"a/#\"\nremote.topic = \"t-${topic.1}\"\n";
        let cfg = PluginConfig::from_toml(&format!(
            "{base}remote.key = \"${{payload.device_id}}\"\nremote.headers = {{ Site = \"${{topic.1}}\", line = \"L${{topic.2}}\" }}\nremote.timestamp = \"${{payload.ts}}\"\nremote.payload = \"${{payload.data}}\"\nremote.on_template_error = \"dead_letter\"\nremote.dead_letter_topic = \"dlq\"\n"
        ))
        .unwrap();
        let r = &cfg.bridges[0].entries[0].remote;
        let names: Vec<&str> = r.headers.keys().map(String::as_str).collect();
        assert_eq!(names, ["Site", "line"], "header names keep their case");
        assert_eq!(
            r.key.as_ref().map(|k| k.as_str()),
            Some("${payload.device_id}")
        );
        assert_eq!(r.on_template_error, OnError::DeadLetter);
        let seed = PluginConfig::from_toml(base).unwrap();
        assert_eq!(
            seed.bridges[0].entries[0].remote.on_template_error,
            OnError::Forward
        );

        for (remote, field, says) in [
            (
                "remote.key = \"k-${nope}\"",
                "remote.key",
                "\"k-${nope}\", column 3: unknown placeholder",
            ),
            (
                "remote.headers = { site = \"${topic.x}\" }",
                "remote.headers.site",
                "column 9",
            ),
            (
                "remote.headers = { \"\" = \"v\" }",
                "remote.headers",
                "empty",
            ),
            (
                "remote.timestamp = \"${payload.}\"",
                "remote.timestamp",
                "column 11: empty member name",
            ),
            (
                "remote.payload = \"${payload\"",
                "remote.payload",
                "column 1",
            ),
            (
                "remote.on_template_error = \"dead_letter\"",
                "remote.dead_letter_topic",
                "required",
            ),
            (
                "remote.dead_letter_topic = \"dlq\"",
                "remote.dead_letter_topic",
                "no effect",
            ),
            (
                "remote.on_template_error = \"retry\"",
                "remote.on_template_error",
                "retry",
            ),
        ] {
            let e = error_of(&format!("{base}{remote}\n"));
            assert_eq!(
                (e.entry, e.field.as_str()),
                (Some(0), field),
                "{remote}: {e}"
            );
            assert!(e.to_string().contains(says), "{remote}: {e}");
        }
        let e = error_of(&base.replace("t-${topic.1}", "t ${topic.1}"));
        assert_eq!(e.field, "remote.topic");
        assert!(e.to_string().contains("column 2"), "{e}");
    }

    #[test]
    fn a_registry_subject_defaults_to_the_topics() {
        let entry = |topic: &str| {
            format!("[[bridges]]\nname = \"x\"\nservers = \"k\"\n[[bridges.entries]]\nlocal.topic_filter = \"a/+\"\nremote.topic = \"{topic}\"\nremote.value_schema = {{ format = \"json\", registry = \"http://r\" }}\nremote.key_schema = {{ format = \"avro\", registry = \"http://r\" }}\n")
        };
        let c = PluginConfig::from_toml(&entry("telemetry")).unwrap();
        let subject = |s: &Option<SchemaConfig>| match &s.as_ref().unwrap().source {
            SchemaSource::Registry(r) => r.subject.clone(),
            SchemaSource::File { .. } => unreachable!(),
        };
        let r = &c.bridges[0].entries[0].remote;
        assert_eq!(subject(&r.value_schema), "telemetry-value");
        assert_eq!(subject(&r.key_schema), "telemetry-key");
        let e = error_of(&entry("t-${topic.1}"));
        assert_eq!(
            (e.entry, e.field.as_str()),
            (Some(0), "remote.value_schema")
        );
        assert!(e.problem.contains("needs `subject`"), "{e}");
    }

    #[test]
    fn schema_settings_load_and_every_refusal_names_its_field() {
        let base = "[[bridges]]\nname = \"x\"\nservers = \"k\"\n[[bridges.entries]]\nlocal.topic_filter = \"a\"\nremote.topic = \"t\"\n";
        let c = PluginConfig::from_toml(&format!(
            "{base}remote.value_schema = {{ format = \"protobuf\", registry = \"https://sr.example:8081/\", subject = \"t-value\", version = 3, token = \"tk\", message = \"p.T\" }}\nremote.key_schema = {{ format = \"avro\", file = \"k.avsc\", id = 17 }}\nremote.on_schema_error = \"dead_letter\"\nremote.dead_letter_topic = \"dlq\"\n"
        ))
        .unwrap();
        let r = &c.bridges[0].entries[0].remote;
        let value = r.value_schema.as_ref().unwrap();
        assert_eq!(value.format, SchemaFormat::Protobuf);
        assert_eq!(value.message.as_deref(), Some("p.T"));
        let SchemaSource::Registry(registry) = &value.source else {
            panic!("{value:?}")
        };
        assert_eq!(
            registry.url, "https://sr.example:8081",
            "without the trailing /"
        );
        assert_eq!(registry.version, Some(3));
        assert_eq!(registry.auth, Some(RegistryAuth::Bearer("tk".into())));
        assert!(
            !format!("{registry:?}").contains("tk"),
            "the token is hidden"
        );
        let key = r.key_schema.as_ref().unwrap();
        assert_eq!(
            key.source,
            SchemaSource::File {
                path: "k.avsc".into(),
                id: 17
            }
        );
        assert_eq!(r.on_schema_error, OnError::DeadLetter);

        let avro =
            |fields: &str| format!("remote.value_schema = {{ format = \"avro\", {fields} }}");
        for (remote, field, says) in [
            (
                avro("subject = \"s\""),
                "remote.value_schema",
                "needs `registry`",
            ),
            (
                avro("registry = \"ftp://x\", subject = \"s\""),
                "remote.value_schema",
                "http:// or https://",
            ),
            (
                avro("registry = \"http://x\", subject = \"\""),
                "remote.value_schema",
                "`subject` is empty",
            ),
            (
                avro("registry = \"http://x\", subject = \"s\", version = \"newest\""),
                "remote.value_schema",
                "\"latest\" or a number",
            ),
            (
                avro("registry = \"http://x\", subject = \"s\", username = \"u\""),
                "remote.value_schema",
                "needs both",
            ),
            (
                avro("registry = \"http://x\", subject = \"s\", id = 3"),
                "remote.value_schema",
                "`id` goes with `file`",
            ),
            (
                avro("file = \"a.avsc\""),
                "remote.value_schema",
                "needs the `id`",
            ),
            (
                avro("file = \"a.avsc\", id = 1, message = \"x\""),
                "remote.value_schema",
                "only for protobuf",
            ),
            (
                "remote.key_schema = { format = \"protobuf\", file = \"a.proto\", id = 1 }".into(),
                "remote.key_schema",
                "needs `message`",
            ),
            (
                "remote.value_schema = { format = \"xml\", file = \"a\", id = 1 }".into(),
                "remote.value_schema.format",
                "xml",
            ),
            (
                avro("file = \"a.avsc\", id = 1, colour = 1"),
                "remote.value_schema.colour",
                "unknown field `colour`",
            ),
            (
                format!(
                    "{}\nremote.on_schema_error = \"forward\"",
                    avro("file = \"a\", id = 1")
                ),
                "remote.on_schema_error",
                "would send a record",
            ),
            (
                "remote.on_schema_error = \"dead_letter\"\nremote.dead_letter_topic = \"d\"".into(),
                "remote.on_schema_error",
                "no remote.value_schema",
            ),
            (
                format!(
                    "{}\nremote.on_schema_error = \"dead_letter\"",
                    avro("file = \"a\", id = 1")
                ),
                "remote.dead_letter_topic",
                "on_schema_error",
            ),
        ] {
            let e = error_of(&format!("{base}{remote}\n"));
            assert_eq!(
                (e.entry, e.field.as_str()),
                (Some(0), field),
                "{remote}: {e}"
            );
            assert!(e.to_string().contains(says), "{remote}: {e}");
        }
    }

    #[test]
    fn buffer_section_is_checked() {
        let base = "[[bridges]]\nname = \"x\"\nservers = \"k\"\n";
        let cfg = PluginConfig::from_toml(&format!(
            "{base}buffer = {{ mode = \"disk\", dir = \"/s\", max_bytes = \"2GiB\", flush_interval = \"2ms\" }}\n"
        ))
        .unwrap();
        let b = &cfg.bridges[0].buffer;
        assert_eq!((b.mode, b.max_bytes), (BufferMode::Disk, 2 << 30));
        assert_eq!(
            (b.dir.to_str(), b.flush_interval),
            (Some("/s"), Duration::from_millis(2))
        );
        let default = &PluginConfig::from_toml(base).unwrap().bridges[0].buffer;
        assert_eq!(*default, BufferConfig::default());
        assert_eq!(default.mode, BufferMode::Memory);
        for (buffer, field) in [
            ("mode = \"tape\"", "buffer.mode"),
            (
                "mode = \"disk\", max_bytes = \"100KiB\"",
                "buffer.max_bytes",
            ),
            ("mode = \"disk\", max_bytes = \"huge\"", "buffer.max_bytes"),
            (
                "mode = \"disk\", flush_interval = \"2s\"",
                "buffer.flush_interval",
            ),
            ("mode = \"disk\", dir = \"\"", "buffer.dir"),
            ("mode = \"disk\", size = 1", "buffer.size"),
        ] {
            let e = error_of(&format!("{base}buffer = {{ {buffer} }}\n"));
            assert_eq!(e.field, field, "{buffer}: {e}");
        }
        let e = error_of(
            "[[bridges]]\nname = \"a/b\"\nservers = \"k\"\nbuffer = { mode = \"disk\" }\n",
        );
        assert_eq!(e.field, "name");
    }

    #[test]
    fn ack_levels_resolve_per_mode_and_contradictions_name_both_fields() {
        let disk = "buffer = { mode = \"disk\", dir = \"/s\" }\n";
        let config = |bridge: &str, remote: &str| {
            PluginConfig::from_toml(&format!(
                "[[bridges]]\nname = \"x\"\nservers = \"k\"\n{bridge}[[bridges.entries]]\nlocal.topic_filter = \"a\"\nremote.topic = \"t\"\n{remote}"
            ))
        };
        let level = |bridge: &str, remote: &str| {
            let c = config(bridge, remote).unwrap();
            let b = &c.bridges[0];
            b.entries[0].remote.ack_level(b.buffer.mode)
        };
        assert_eq!(level("", ""), AckLevel::Received, "memory mode's default");
        assert_eq!(level(disk, ""), AckLevel::Written, "disk mode's default");
        let alias = "remote.ack_after_delivery = true\n";
        assert_eq!(level("", alias), AckLevel::Delivered, "the old name");
        assert_eq!(level(disk, alias), AckLevel::Delivered);
        assert_eq!(
            level("", "remote.ack_after_delivery = false\n"),
            AckLevel::Received
        );
        for (name, want) in [
            ("received", AckLevel::Received),
            ("written", AckLevel::Written),
            ("synced", AckLevel::Synced),
            ("delivered", AckLevel::Delivered),
        ] {
            assert_eq!(level(disk, &format!("remote.ack = \"{name}\"\n")), want);
        }
        assert_eq!(
            level(
                "",
                "remote.ack = \"delivered\"\nremote.ack_after_delivery = true\n"
            ),
            AckLevel::Delivered,
            "both keys, agreeing"
        );
        for (bridge, remote, names) in [
            (
                "",
                "remote.ack = \"written\"\n",
                &["remote.ack", "buffer.mode"][..],
            ),
            (
                "",
                "remote.ack = \"synced\"\n",
                &["remote.ack", "buffer.mode"],
            ),
            (
                disk,
                "remote.ack = \"written\"\nremote.ack_after_delivery = true\n",
                &["remote.ack", "remote.ack_after_delivery = true"],
            ),
            (
                "",
                "remote.ack = \"received\"\nremote.ack_after_delivery = true\n",
                &["remote.ack", "remote.ack_after_delivery = true"],
            ),
            (
                "",
                "remote.ack = \"delivered\"\nremote.ack_after_delivery = false\n",
                &["remote.ack", "remote.ack_after_delivery = false"],
            ),
        ] {
            let e = config(bridge, remote).unwrap_err();
            assert_eq!(
                (e.entry, e.field.as_str()),
                (Some(0), "remote.ack"),
                "{remote}"
            );
            let msg = e.to_string();
            for name in names {
                assert!(msg.contains(name), "{remote}: {msg}");
            }
        }
        let e = config("", "remote.ack = \"fsynced\"\n").unwrap_err();
        assert_eq!(e.field, "remote.ack");
        for named in ["fsynced", "received", "written", "synced", "delivered"] {
            assert!(e.problem.contains(named), "{}", e.problem);
        }
    }

    #[test]
    fn durations_parse_strictly() {
        assert_eq!(parse_duration("0m").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("1h30m15s").unwrap(),
            Duration::from_secs(5415)
        );
        assert_eq!(
            parse_duration("2W3d12H").unwrap(),
            Duration::from_secs(1_512_000)
        );
        assert_eq!(
            parse_duration("1f").unwrap(),
            Duration::from_secs(1_209_600)
        );
        for bad in ["", "5", "ms", "5 parsecs", "1.5s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
