//! Where a publish goes: the topic tree of every entry's filter, and the templates that
//! name each record's Kafka topic and key.

mod template;
mod tree;

pub use template::{
    check_kafka_topic, skip_levels, KafkaTopic, KeyTemplate, RenderBuf, TopicFilter, TopicTemplate,
    Vars,
};
pub use tree::Routes;
