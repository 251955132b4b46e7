//! `rmqttd --demo`: the broker and bridge as configured, but pointed at an embedded
//! Kafka (librdkafka's mock cluster), with every record that lands in it printed.

mod kafka;
mod printer;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rmqtt_bridge_egress_kafka::PLUGIN_NAME;
use serde_json::Value;

use kafka::EmbeddedKafka;
use printer::Printer;

/// rmqtt-http-api's configuration, read only to print where its API listens.
const HTTP_API_PLUGIN: &str = "rmqtt-http-api";

/// The embedded Kafka, the thread that prints its records, and the plugin configs
/// redirected to it. Fields drop in order: the printer stops before its Kafka does
/// (the plugin's producers are stopped by the caller before this is dropped).
pub struct Demo {
    /// Stops and joins its thread when dropped.
    _printer: Printer,
    plugins_dir: tempfile::TempDir,
    /// The user's plugins.dir: read, and named in messages, instead of the copy.
    user_plugins_dir: PathBuf,
    kafka: EmbeddedKafka,
}

impl Demo {
    /// Starts the embedded Kafka and the printing consumer, and prepares a copy of
    /// `plugins_dir` whose bridges point at the embedded Kafka.
    pub fn start(plugins_dir: &str) -> Result<Demo> {
        let kafka = EmbeddedKafka::start().context("cannot start the embedded Kafka")?;
        let dir = redirect_plugins(plugins_dir, &kafka.bootstrap)?;
        let printer = Printer::start(&kafka.bootstrap)?;
        Ok(Demo {
            _printer: printer,
            plugins_dir: dir,
            user_plugins_dir: plugins_dir.into(),
            kafka,
        })
    }

    /// Copies the user's bridge configuration again, redirected, for a reload.
    pub fn refresh(&self) -> Result<()> {
        let file = format!("{PLUGIN_NAME}.toml");
        let text = redirect_config(&self.user_plugins_dir.join(&file), &self.kafka.bootstrap)?;
        std::fs::write(self.plugins_dir.path().join(&file), text)?;
        Ok(())
    }

    pub fn plugins_dir(&self) -> String {
        self.plugins_dir.path().display().to_string()
    }

    /// Prints how to try the demo: one `mosquitto_pub` line per configured entry, and
    /// where the plugin's `/metrics`, the HTTP API and its dashboard are, when they are
    /// configured.
    pub fn print_instructions(
        &self,
        listeners: &[SocketAddr],
        node: impl std::fmt::Display,
        plugin_config: Option<Value>,
    ) {
        let port = listeners.first().map_or(1883, SocketAddr::port);
        println!(
            "\n=== rmqttd demo: the bridge forwards to an embedded Kafka at {} ===",
            self.kafka.bootstrap
        );
        println!("Every record that lands in Kafka is printed below. Try:\n");
        for topic in sample_topics(plugin_config.as_ref()) {
            println!(
                "  mosquitto_pub -h 127.0.0.1 -p {port} -V mqttv5 -q 1 -t '{topic}' -m '{{\"device_id\":\"d1\",\"value\":42}}' -D publish user-property tenant acme",
            );
        }
        let own = plugin_config
            .as_ref()
            .and_then(|c| c["http_laddr"].as_str());
        if let Some(addr) = own.and_then(shown_addr) {
            println!("\nLive metrics: http://{addr}/metrics  (and /health, /status)");
        }
        if let Some(addr) = self.http_api_addr() {
            println!("The bridge's counters: http://{addr}/api/v1/plugins/{node}/{PLUGIN_NAME}");
            println!("rmqtt's dashboard: http://{addr}/  (log in with http_bearer_token, or any text without one)");
        }
        println!("\nStop with Ctrl-C (or SIGTERM).\n");
    }

    /// `http_laddr` of the user's rmqtt-http-api configuration, if there is one.
    fn http_api_addr(&self) -> Option<SocketAddr> {
        let path = self
            .user_plugins_dir
            .join(format!("{HTTP_API_PLUGIN}.toml"));
        let text = std::fs::read_to_string(&path).ok()?;
        let doc: toml::Table = match text.parse() {
            Ok(doc) => doc,
            Err(e) => {
                log::warn!("{} is not valid TOML: {e}", path.display());
                return None;
            }
        };
        shown_addr(doc.get("http_laddr")?.as_str()?)
    }
}

/// A listen address as the demo's user reaches it: a wildcard address is shown as
/// loopback, which is where the user is.
fn shown_addr(laddr: &str) -> Option<SocketAddr> {
    let addr: SocketAddr = laddr.parse().ok()?;
    let ip = if addr.ip().is_unspecified() {
        Ipv4Addr::LOCALHOST.into()
    } else {
        addr.ip()
    };
    Some(SocketAddr::new(ip, addr.port()))
}

/// One MQTT topic per entry of the enabled bridges, for the printed examples.
fn sample_topics(plugin_config: Option<&Value>) -> Vec<String> {
    let bridges = plugin_config
        .and_then(|c| c["bridges"].as_array())
        .into_iter()
        .flatten();
    bridges
        .filter(|b| b["enable"].as_bool().unwrap_or(true))
        .flat_map(|b| b["entries"].as_array().into_iter().flatten())
        .filter_map(|e| e["local"]["topic_filter"].as_str())
        .map(sample_topic)
        .collect()
}

/// What the printed examples put in a filter's single-level wildcards, in order: levels
/// that read like a real site's, so that headers taken from topic levels mean something.
const SAMPLE_LEVELS: [&str; 4] = ["plant1", "line3", "cell2", "unit7"];

/// A topic that `filter` matches, for the printed examples.
fn sample_topic(filter: &str) -> String {
    let mut levels = SAMPLE_LEVELS.iter();
    filter
        .split('/')
        .map(|l| match l {
            "+" => levels.next().copied().unwrap_or("x"),
            "#" => "demo",
            l => l,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Copies every plugin config into a temporary directory, with the bridges' `servers`
/// replaced by the embedded Kafka.
fn redirect_plugins(plugins_dir: &str, bootstrap: &str) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("rmqttd-demo-").tempdir()?;
    let entries = std::fs::read_dir(plugins_dir)
        .with_context(|| format!("cannot read plugins.dir {plugins_dir}"))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let target = dir.path().join(path.file_name().unwrap_or_default());
        if path.file_stem().is_some_and(|s| s == PLUGIN_NAME) {
            std::fs::write(&target, redirect_config(&path, bootstrap)?)?;
        } else {
            std::fs::copy(&path, &target)?;
        }
    }
    Ok(dir)
}

fn redirect_config(path: &Path, bootstrap: &str) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut doc: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    if let Some(toml::Value::Array(bridges)) = doc.get_mut("bridges") {
        for b in bridges.iter_mut().filter_map(toml::Value::as_table_mut) {
            b.insert("servers".into(), toml::Value::String(bootstrap.into()));
        }
    }
    Ok(toml::to_string(&doc)?)
}
