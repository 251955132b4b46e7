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
//! kafka spool transform schema librdkafka's producers · the disk spool · the WebAssembly
//!                             host · schema-aware records
//! config                      the file, read and checked
//! route  record  observe      topic tree · the record · counters and clocks
//! thread_index  shape         a small number per thread · templates
//! ```
#![deny(unsafe_code)]

/// Configuration values written as text (topic filters, Kafka names, templates): read
/// through their `FromStr`, whose error becomes the field's error, and shown as written.
macro_rules! text_value {
    ($($t:ty),*) => {$(
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use serde::de::Error as _;
                String::deserialize(d)?.parse().map_err(D::Error::custom)
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

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
pub mod schema;
pub mod shape;
mod spool;
mod thread_index;
pub mod transform;

pub use plugin::BridgePlugin;

/// The name the plugin registers under, and the stem of its configuration file.
pub const PLUGIN_NAME: &str = "rmqtt-bridge-egress-kafka";

rmqtt::register!(BridgePlugin::new);
