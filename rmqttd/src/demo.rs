//! `rmqttd --demo`: the broker and bridge as configured, but pointed at an embedded
//! Kafka (librdkafka's mock cluster), with every record that lands in it printed.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use bridge_testkit::MockKafka;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::ClientContext;
use rmqtt_bridge_egress_kafka::PLUGIN_NAME;
use serde_json::Value;

/// The embedded Kafka, the thread that prints its records, and the plugin configs
/// redirected to it.
pub struct Demo {
    printer: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    plugins_dir: tempfile::TempDir,
    /// Dropped last: the printer stops before its Kafka does.
    kafka: MockKafka,
}

impl Demo {
    /// Starts the embedded Kafka and the printing consumer, and prepares a copy of
    /// `plugins_dir` whose bridges point at the embedded Kafka.
    pub fn start(plugins_dir: &str) -> Result<Demo> {
        let kafka = MockKafka::try_start(1).context("cannot start the embedded Kafka")?;
        let dir = redirect_plugins(plugins_dir, &kafka.bootstrap)?;
        let stop = Arc::new(AtomicBool::new(false));
        let printer = print_records(&kafka.bootstrap, stop.clone())?;
        Ok(Demo {
            printer: Some(printer),
            stop,
            plugins_dir: dir,
            kafka,
        })
    }

    pub fn plugins_dir(&self) -> String {
        self.plugins_dir.path().display().to_string()
    }

    /// Prints how to try the demo: one `mosquitto_pub` line per configured entry.
    pub fn print_instructions(&self, listeners: &[SocketAddr], plugin_config: Option<Value>) {
        let port = listeners.first().map_or(1883, SocketAddr::port);
        println!(
            "\n=== rmqttd demo: the bridge forwards to an embedded Kafka at {} ===",
            self.kafka.bootstrap
        );
        println!("Every record that lands in Kafka is printed below. Try:\n");
        let bridges = plugin_config
            .as_ref()
            .and_then(|c| c["bridges"].as_array().cloned())
            .unwrap_or_default();
        for b in bridges
            .iter()
            .filter(|b| b["enable"].as_bool().unwrap_or(true))
        {
            for e in b["entries"].as_array().into_iter().flatten() {
                if let Some(filter) = e["local"]["topic_filter"].as_str() {
                    println!(
                        "  mosquitto_pub -h 127.0.0.1 -p {port} -V mqttv5 -q 1 -t '{}' -m '{{\"device_id\":\"d1\",\"value\":42}}' -D publish user-property site demo",
                        sample_topic(filter)
                    );
                }
            }
        }
        println!("\nA new topic's first record takes a few seconds to show: the printer finds new topics");
        println!("by pattern every half second and then joins them. Stop with Ctrl-C.\n");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(printer) = self.printer.take() {
            let _ = printer.join();
        }
    }
}

/// A topic that `filter` matches, for the printed examples.
fn sample_topic(filter: &str) -> String {
    filter
        .split('/')
        .map(|l| match l {
            "+" => "x",
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

/// The printing consumer's callbacks: "no topic matches yet" is expected until the
/// first record arrives, so client errors are logged at debug level only.
struct Quiet;

impl ClientContext for Quiet {
    fn error(&self, error: KafkaError, reason: &str) {
        log::debug!("demo consumer: {error}: {reason}");
    }
}

impl ConsumerContext for Quiet {}

/// Consumes every topic of the embedded Kafka and prints each record.
fn print_records(bootstrap: &str, stop: Arc<AtomicBool>) -> Result<JoinHandle<()>> {
    let consumer: BaseConsumer<Quiet> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "rmqttd-demo")
        .set("auto.offset.reset", "earliest")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create_with_context(Quiet)?;
    consumer.subscribe(&["^[A-Za-z0-9].*"])?;
    Ok(std::thread::Builder::new()
        .name("demo-printer".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => {
                        let key = m.key().map_or_else(
                            || "-".into(),
                            |k| String::from_utf8_lossy(k).into_owned(),
                        );
                        println!(
                            "kafka <- topic={} partition={} offset={} key={key}",
                            m.topic(),
                            m.partition(),
                            m.offset()
                        );
                        if let Some(h) = m.headers() {
                            let pairs: Vec<String> = h
                                .iter()
                                .map(|h| {
                                    format!(
                                        "{}={}",
                                        h.key,
                                        h.value
                                            .map_or_else(|| "null".into(), String::from_utf8_lossy)
                                    )
                                })
                                .collect();
                            println!("   headers: {}", pairs.join(", "));
                        }
                        let payload = m
                            .payload()
                            .map_or_else(|| "null".into(), String::from_utf8_lossy);
                        println!("   payload: {payload}");
                    }
                    Some(Err(e)) => log::debug!("demo consumer: {e}"),
                    None => {}
                }
            }
        })?)
}
