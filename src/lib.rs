//! `rmqtt-bridge-egress-kafka`: an RMQTT plugin that forwards MQTT publishes to Apache
//! Kafka, optionally through a WebAssembly transform per topic-filter entry.
//!
//! Its configuration format is that of RMQTT's own Kafka egress bridge, extended; see
//! `plugins/rmqtt-bridge-egress-kafka.toml` and docs/configuration.md.
//!
//! Where things live, in layers: a folder uses only the folders below it (checked by
//! `tests/layers.rs`).
//!
//! ```text
//! plugin                      the rmqtt Plugin: registration, the trait's calls
//! control                     the configuration and what runs from it: start, reload, stop
//! hooks                       rmqtt's publish and ACL hooks; refused publishes
//! endpoint                    /metrics, /health, /status, POST /reload
//! pipeline                    the running bridges: routing, entries, build, reload, retire
//! delivery                    a record's life: the ledger, acks, in-flight bound, the pump
//! kafka  spool  transform     librdkafka's producers · the disk spool · the WebAssembly host
//! config                      the file, read and checked
//! route  record  observe      topic tree and templates · the record · counters and clocks
//! thread_index                a small number per thread, for sharded counters
//! ```
#![deny(unsafe_code)]

pub mod config;
mod control;
mod delivery;
mod endpoint;
mod hooks;
mod kafka;
mod observe;
mod pipeline;
mod plugin;
mod record;
pub mod route;
mod spool;
mod thread_index;
pub mod transform;

pub use plugin::BridgePlugin;

/// The name the plugin registers under, and the stem of its configuration file.
pub const PLUGIN_NAME: &str = "rmqtt-bridge-egress-kafka";

rmqtt::register!(BridgePlugin::new);
