//! The Kafka side: the in-flight bound, the producers, and the ledger that owns each
//! record's life from reservation to its one counted outcome.

pub mod client_stats;
pub mod inflight;
pub mod ledger;
pub mod partitions;
pub mod producers;

pub use client_stats::Summary;
pub use inflight::Inflight;
pub use ledger::{Ledger, Outgoing, MAX_ACK_SLOTS, MAX_SHARED_ENTRIES};
pub use producers::Producers;
