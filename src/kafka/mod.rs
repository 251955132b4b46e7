//! The Kafka side: librdkafka's producers, what they report, and the partitions of the
//! topics they send to. It knows records, not what they mean: whoever creates producers
//! settles their delivery reports ([`producers::Reports`]).

pub mod client_stats;
pub mod partitions;
pub mod producers;

pub use client_stats::Summary;
pub use producers::{Producers, Reports};
