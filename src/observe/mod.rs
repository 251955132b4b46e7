//! The instruments the message path writes into: per-entry counters, histograms, the
//! call timer, the clocks they read, rate-limited logging, and the reload counts. They
//! sit low, so that every layer may count; the scrape side that reads them is `endpoint/`.

pub mod clock;
pub mod histogram;
pub mod histograms;
pub mod log_limit;
pub mod reloads;
pub mod stats;

pub use histograms::{CallTimer, Histograms};
pub use log_limit::LogLimiter;
pub use reloads::{ReloadResult, Reloads};
pub use stats::{EntryStats, Outcome, SchemaFailure, Snapshot};

/// The prefix of every series of this plugin.
pub const PREFIX: &str = "rmqtt_kafka_bridge_";
/// The labels of an entry's series.
pub const ENTRY_LABELS: &[&str] = &["bridge", "entry"];
