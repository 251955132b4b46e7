//! The configurations the benchmark compares (a to l), and the plugin configuration
//! each of them runs.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

use crate::broker::PluginKind;

/// The Kafka topic every bridge writes to.
pub const TOPIC: &str = "bench";

/// The configurations of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    /// The broker with no bridge (the ceiling).
    A,
    /// The upstream crate `rmqtt-bridge-egress-kafka` 0.24.
    B,
    /// This plugin, configuration only.
    C,
    /// This plugin with the `passthrough` example module.
    D,
    /// This plugin with the `key_headers` example module.
    E,
    /// This plugin, configuration only, with the disk spool (`buffer.mode = "disk"`),
    /// acknowledging once a record is written to it (`remote.ack = "written"`).
    F,
    /// As f, acknowledging once the record is synced (`remote.ack = "synced"`).
    G,
    /// As c, acknowledging once Kafka has the record (`remote.ack = "delivered"`); not in
    /// the default set.
    H,
    /// This plugin, configuration only, doing e's work with templates: keyed by
    /// `${payload.device_id}`, headers `site` and `line` from topic levels 1 and 2.
    I,
    /// i's record shape without looking anything up: keyed by `dev-${clientid}` (as many
    /// keys as i), two fixed headers; i − j is what the lookups cost. Not in the default set.
    J,
    /// e's work as a JavaScript transform (`examples/key-headers/key-headers.js`). Not in
    /// the default set.
    K,
    /// c with every value encoded as Avro against `bench/telemetry.avsc` (a schema file
    /// with a fixed id) in Confluent's framing. Not in the default set.
    L,
}

impl Config {
    pub fn letter(self) -> char {
        match self {
            Config::A => 'a',
            Config::B => 'b',
            Config::C => 'c',
            Config::D => 'd',
            Config::E => 'e',
            Config::F => 'f',
            Config::G => 'g',
            Config::H => 'h',
            Config::I => 'i',
            Config::J => 'j',
            Config::K => 'k',
            Config::L => 'l',
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Config::A => "a no bridge",
            Config::B => "b upstream 0.24",
            Config::C => "c ours",
            Config::D => "d ours+passthrough",
            Config::E => "e ours+key_headers",
            Config::F => "f ours+spool written",
            Config::G => "g ours+spool synced",
            Config::H => "h ours acked on delivery",
            Config::I => "i ours+templates",
            Config::J => "j ours keyed, fixed headers",
            Config::K => "k ours+key-headers.js",
            Config::L => "l ours+avro",
        }
    }

    pub fn plugin(self) -> PluginKind {
        match self {
            Config::A => PluginKind::None,
            Config::B => PluginKind::Upstream,
            Config::C
            | Config::D
            | Config::E
            | Config::F
            | Config::G
            | Config::H
            | Config::I
            | Config::J
            | Config::K
            | Config::L => PluginKind::Ours,
        }
    }

    /// The transform of the entry: module file name and `transform.config`.
    pub fn transform(self) -> Option<(&'static str, Option<&'static str>)> {
        match self {
            Config::D => Some(("passthrough.wasm", None)),
            Config::E => Some(("key_headers.wasm", Some(KEY_HEADERS_CONFIG))),
            _ => None,
        }
    }

    /// The script of the entry, under the repository's `examples/`, and its config.
    pub fn script(self) -> Option<(&'static str, &'static str)> {
        match self {
            Config::K => Some(("key-headers/key-headers.js", KEY_HEADERS_CONFIG)),
            _ => None,
        }
    }
}

impl FromStr for Config {
    type Err = String;

    fn from_str(s: &str) -> Result<Config, String> {
        match s.trim() {
            "a" => Ok(Config::A),
            "b" => Ok(Config::B),
            "c" => Ok(Config::C),
            "d" => Ok(Config::D),
            "e" => Ok(Config::E),
            "f" => Ok(Config::F),
            "g" => Ok(Config::G),
            "h" => Ok(Config::H),
            "i" => Ok(Config::I),
            "j" => Ok(Config::J),
            "k" => Ok(Config::K),
            "l" => Ok(Config::L),
            _ => Err(format!("`{s}` is not a configuration (a to l)")),
        }
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl Serialize for Config {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

/// From the label written to the results file (`c ours`): its letter.
impl<'de> serde::Deserialize<'de> for Config {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Config, D::Error> {
        let label = String::deserialize(d)?;
        let letter = label.split(' ').next().unwrap_or_default();
        letter.parse().map_err(serde::de::Error::custom)
    }
}

/// i's entry: e's key and headers (`key_field = "device_id"`, `topic_headers =
/// "site:1,line:2"`) as templates.
const TEMPLATES: &str = "remote.key = \"${payload.device_id}\"\n\
remote.headers = { site = \"${topic.1}\", line = \"${topic.2}\" }\n";

/// j's entry: i's record shape (a key per publisher, two more headers), nothing read
/// from the payload or the topic.
const FIXED_SHAPE: &str = "remote.key = \"dev-${clientid}\"\n\
remote.headers = { site = \"site\", line = \"line\" }\n";

/// What the command line sets in every bridge (b to h alike, where it applies).
#[derive(Clone, Copy, Debug, Default)]
pub struct Settings<'a> {
    /// Extra librdkafka properties.
    pub properties: &'a [(String, String)],
    /// `remote.queue_timeout`.
    pub queue_timeout: Option<&'a str>,
    /// `buffer.flush_interval` of f and g.
    pub flush_interval: Option<&'a str>,
    /// `max_inflight_messages` of this plugin's bridge (c to h).
    pub max_inflight_messages: Option<u32>,
}

/// The plugin configuration of b to h: the seed's bridge settings, identical for the
/// upstream plugin and this one (`enable` defaults to false upstream), one entry that
/// takes every benchmark topic, for d and e a transform, for f and g a spool in
/// `spool`, and for f to h their `remote.ack`.
pub fn plugin_config(
    config: Config,
    bootstrap: &str,
    modules: &Path,
    spool: &Path,
    settings: Settings<'_>,
) -> String {
    let extra: String = settings
        .properties
        .iter()
        .map(|(k, v)| format!("{k:?} = {v:?}\n"))
        .collect();
    let flush = settings
        .flush_interval
        .map_or(String::new(), |f| format!(", flush_interval = {f:?}"));
    let (mut buffer, ack) = match config {
        Config::F | Config::G => (
            format!(
                "buffer = {{ mode = \"disk\", dir = {:?}{flush} }}\n",
                spool.display().to_string()
            ),
            if config == Config::F {
                "written"
            } else {
                "synced"
            },
        ),
        Config::H => (String::new(), "delivered"),
        _ => (String::new(), ""),
    };
    if let (Some(n), PluginKind::Ours) = (settings.max_inflight_messages, config.plugin()) {
        buffer.push_str(&format!("max_inflight_messages = {n}\n"));
    }
    let mut toml = format!(
        r#"[[bridges]]
enable = true
name = "bench"
servers = "{bootstrap}"
client_id_prefix = "bench"
concurrent_client_limit = 3
{buffer}
[bridges.properties]
"message.timeout.ms" = "5000"
{extra}
[[bridges.entries]]
local.topic_filter = "bench/#"
remote.topic = "{TOPIC}"
"#
    );
    if let Some(t) = settings.queue_timeout {
        toml.push_str(&format!("remote.queue_timeout = {t:?}\n"));
    }
    if !ack.is_empty() {
        toml.push_str(&format!("remote.ack = {ack:?}\n"));
    }
    match config {
        Config::I => toml.push_str(TEMPLATES),
        Config::J => toml.push_str(FIXED_SHAPE),
        Config::L => {
            let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("telemetry.avsc");
            toml.push_str(&format!(
                "remote.value_schema = {{ format = \"avro\", file = \"{}\", id = {AVRO_ID} }}\n",
                schema.display()
            ));
        }
        _ => {}
    }
    if let Some((module, module_config)) = config.transform() {
        toml.push_str(&format!(
            "transform.module = \"{}\"\ntransform.instances = 2\ntransform.timeout = \"100ms\"\n",
            modules.join(module).display()
        ));
        if let Some(c) = module_config {
            toml.push_str(&format!("transform.config = {c}\n"));
        }
    }
    if let Some((script, script_config)) = config.script() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        toml.push_str(&format!(
            "transform.script = \"{}\"\ntransform.instances = 2\ntransform.timeout = \"100ms\"\ntransform.config = {script_config}\n",
            examples.join(script).display()
        ));
    }
    toml
}

/// The schema id l's records carry (the schema is a file; no registry runs).
pub const AVRO_ID: u32 = 1;

/// `transform.config` of e's module and k's script.
const KEY_HEADERS_CONFIG: &str = r#"{ key_field = "device_id", topic_headers = "site:1,line:2" }"#;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn configurations_parse() {
        assert_eq!("c".parse::<Config>(), Ok(Config::C));
        assert_eq!("f".parse::<Config>(), Ok(Config::F));
        assert_eq!("g".parse::<Config>(), Ok(Config::G));
        assert_eq!("h".parse::<Config>(), Ok(Config::H));
        assert_eq!("i".parse::<Config>(), Ok(Config::I));
        assert_eq!("j".parse::<Config>(), Ok(Config::J));
        assert_eq!("k".parse::<Config>(), Ok(Config::K));
        assert_eq!("l".parse::<Config>(), Ok(Config::L));
        assert!("m".parse::<Config>().is_err());
    }

    #[test]
    fn plugin_configs_differ_only_by_the_transform_or_the_buffer() {
        let props = [("linger.ms".to_owned(), "20".to_owned())];
        let config = |c| {
            let (dir, spool) = (Path::new("/m"), Path::new("/s"));
            let settings = Settings {
                properties: &props,
                queue_timeout: Some("5s"),
                ..Settings::default()
            };
            plugin_config(c, "127.0.0.1:1", dir, spool, settings)
        };
        let b = config(Config::B);
        assert_eq!(b, config(Config::C));
        assert!(b.contains("\"linger.ms\" = \"20\"\n"));
        assert!(b.contains("remote.queue_timeout = \"5s\"\n"));
        let e = config(Config::E);
        assert!(e.starts_with(&b));
        assert!(e.contains("transform.module = \"/m/key_headers.wasm\""));
        let k = config(Config::K);
        assert!(k.starts_with(&b));
        assert!(k.contains("examples/key-headers/key-headers.js\""), "{k}");
        let config_line = |t: &str| {
            t.lines()
                .find(|l| l.starts_with("transform.config"))
                .map(str::to_owned)
        };
        assert_eq!(
            config_line(&k),
            config_line(&e),
            "the script does the module's work"
        );
        let buffer = "buffer = { mode = \"disk\", dir = \"/s\" }\n";
        let f = config(Config::F);
        assert!(f.contains(buffer));
        let written = "remote.ack = \"written\"\n";
        assert_eq!(f.replace(buffer, "").replace(written, ""), b);
        let i = config(Config::I);
        assert_eq!(i.replace(TEMPLATES, ""), b);
        assert_eq!(config(Config::J).replace(FIXED_SHAPE, ""), b);
        let g = config(Config::G);
        assert_eq!(g.replace("\"synced\"", "\"written\""), f);
    }
}
