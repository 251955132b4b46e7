//! What an operator sees: per-entry counters, rate-limited logging, and the plugin's own
//! HTTP endpoint with its Prometheus series and health verdicts.

pub mod clock;
pub mod health;
pub mod histogram;
pub mod http;
pub mod log_limit;
pub mod metrics;
pub mod stats;

pub use health::Health;
pub use http::{HttpServer, Routes};
pub use log_limit::LogLimiter;
pub use metrics::{CallTimer, Histograms, PipelineCollector};
pub use stats::{EntryStats, Outcome, Snapshot};
