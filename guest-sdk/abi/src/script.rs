//! How the host hands a JavaScript transform (`transform.script`) to the JavaScript
//! runtime module: two reserved keys in the config document, beside the entry's own
//! `transform.config`.

/// The script's source text.
pub const SOURCE: &str = "rmqtt.script.source";
/// The script's file name, as errors and stack traces show it.
pub const NAME: &str = "rmqtt.script.name";
/// Config keys with this prefix are the host's; `transform.config` may not use them.
pub const RESERVED_PREFIX: &str = "rmqtt.";

/// Whether a config key is reserved for the host.
pub fn is_reserved(key: &str) -> bool {
    key.starts_with(RESERVED_PREFIX)
}
