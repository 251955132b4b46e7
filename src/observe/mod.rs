//! What an operator sees: per-entry counters and rate-limited logging.

pub mod log_limit;
pub mod stats;

pub use log_limit::LogLimiter;
pub use stats::{EntryStats, Outcome, Snapshot};
