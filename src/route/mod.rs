//! Where a publish goes: the topic tree of every entry's filter, and the checked names
//! of MQTT filters and Kafka topics.

mod names;
mod tree;

pub use names::{check_kafka_topic, KafkaTopic, TopicFilter};
pub use tree::Routes;
