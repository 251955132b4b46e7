//! Real parts for the tests and the benchmark, each set up once: an
//! in-process RMQTT broker with chosen plugins, librdkafka's mock cluster on a thread of
//! its own, a Kafka reader, rumqttc clients, separate processes (tansu, rmqttd's working directory), the example
//! transform modules, and an HTTP client and test certificates for rmqttd's process tests;
//! a stand-in schema registry, and decoding a topic with Confluent's own deserializers.

pub mod broker;
pub mod http;
pub mod kafka_reader;
pub mod load;
pub mod mock_kafka;
pub mod modules;
pub mod mqtt;
pub mod procs;
pub mod registry;
pub mod rmqttd;
pub mod tls;

use std::path::{Path, PathBuf};

pub use broker::{
    accounted, bridge_config, disk_buffer, outcome_total, Broker, BrokerBuilder, ACL_PLUGIN,
};
pub use kafka_reader::{header_map, read, read_none, read_topic, Record};
pub use mock_kafka::MockKafka;
pub use modules::{example_module, example_module_for, publish_input};
pub use mqtt::{V3Client, V5Client};

/// The repository's root (`examples/`, `scripts/`). This crate lives in `tests/kit`, so
/// the root does not depend on which package's tests or binary use it.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/kit has two parents")
        .to_owned()
}
