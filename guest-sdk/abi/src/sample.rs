//! The sample message that tests start from: the SDK's `TestMessage` and the flags of
//! `rmqttd transform test` share these defaults, so a native test and the CLI run a
//! module on the same message unless told otherwise.

/// QoS 1, what most telemetry is published with.
pub const QOS: u8 = 1;

pub const CLIENT_ID: &str = "test-client";

/// 2023-11-14T22:13:20Z: fixed, so that outputs compare across runs.
pub const TIMESTAMP_MS: i64 = 1_700_000_000_000;

pub const NODE_ID: u64 = 1;
