//! `rmqtt-bridge-egress-kafka`: an RMQTT plugin that forwards MQTT publishes to Apache
//! Kafka, optionally through a WebAssembly transform per topic-filter entry.
//!
//! Its configuration format is that of RMQTT's own Kafka egress bridge, extended; see
//! `plugins/rmqtt-bridge-egress-kafka.toml` and the README.
//!
//! Where things live: `plugin` and `hooks` (rmqtt adapters) on top; `control` owns the
//! configuration and what runs from it (start, reload, stop, the HTTP endpoint);
//! `pipeline` routes a publish (`route`) through its entries and their transforms
//! (`transform`); `kafka::ledger` owns each record from reservation to its one counted
//! outcome (`observe`); `config` reads and checks the file; `ack` holds ack mode.
#![deny(unsafe_code)]

mod ack;
pub mod config;
mod control;
mod hooks;
mod kafka;
mod observe;
mod pipeline;
mod plugin;
pub mod route;
mod spool;
mod thread_index;
pub mod transform;

pub use plugin::BridgePlugin;

/// The name the plugin registers under, and the stem of its configuration file.
pub const PLUGIN_NAME: &str = "rmqtt-bridge-egress-kafka";

rmqtt::register!(BridgePlugin::new);
