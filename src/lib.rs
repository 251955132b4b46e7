//! `rmqtt-bridge-egress-kafka`: an RMQTT plugin that forwards MQTT publishes to Apache
//! Kafka, optionally through a WebAssembly transform per topic-filter entry.
//!
//! Its configuration format is that of RMQTT's own Kafka egress bridge, extended; see
//! `plugins/rmqtt-bridge-egress-kafka.toml` and the README.

mod ack;
mod bridge;
pub mod config;
mod hook;
mod inflight;
mod plugin;
mod producer;
mod publish;
mod stats;
mod topic;
pub mod transform;

pub use plugin::BridgePlugin;

/// The name the plugin registers under, and the stem of its configuration file.
pub const PLUGIN_NAME: &str = "rmqtt-bridge-egress-kafka";

rmqtt::register!(BridgePlugin::new);
