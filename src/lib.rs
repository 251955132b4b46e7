pub mod config;
pub mod inflight;
pub mod publish;
pub mod stats;
pub mod topic;
pub mod transform;
