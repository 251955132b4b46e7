//! Checks of values that deserialization alone cannot catch, each reported with the
//! bridge, entry and field it is about.

use std::collections::HashSet;
use std::time::Duration;

use super::{
    AckLevel, BridgeConfig, BufferMode, ConfigError, EntryConfig, OnError, PluginConfig,
    ProducerPool, RemoteConfig, TransformCode, TransformConfig,
};

/// A failed check: the field (relative to the bridge or entry) and the problem.
type Problem = (&'static str, String);

impl PluginConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check_http(self)?;
        let mut names = HashSet::new();
        for (bi, b) in self.bridges.iter().enumerate() {
            let at = (bi, b.name.as_str());
            check_bridge(b).map_err(|(f, p)| ConfigError::at(at, None, f, p))?;
            if !b.enable {
                continue;
            }
            if !names.insert(b.name.as_str()) {
                let problem = format!("another enabled bridge is already named \"{}\"", b.name);
                return Err(ConfigError::at(at, None, "name", problem));
            }
            for (ei, e) in b.entries.iter().enumerate() {
                check_entry(e, b.buffer.mode)
                    .map_err(|(f, p)| ConfigError::at(at, Some(ei), f, p))?;
            }
        }
        Ok(())
    }
}

/// The top-level HTTP keys: an address that parses (whether it is free is known only
/// when the plugin starts and binds it) and a token that can be sent in a header.
fn check_http(c: &PluginConfig) -> Result<(), ConfigError> {
    if let Some(laddr) = &c.http_laddr {
        laddr.parse::<std::net::SocketAddr>().map_err(|e| {
            let problem = format!("{laddr:?} is not an address such as \"127.0.0.1:9464\": {e}");
            ConfigError::field("http_laddr", problem)
        })?;
    }
    match &c.http_bearer_token {
        Some(t) if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) => {
            Err(ConfigError::field(
                "http_bearer_token",
                "must be non-empty printable ASCII without spaces",
            ))
        }
        Some(_) if c.http_laddr.is_none() => Err(ConfigError::field(
            "http_bearer_token",
            "set, but there is no http_laddr to protect",
        )),
        _ => Ok(()),
    }
}

/// The bridge-level fields.
fn check_bridge(b: &BridgeConfig) -> Result<(), Problem> {
    if b.concurrent_client_limit == 0 || b.concurrent_client_limit > 64 {
        let got = b.concurrent_client_limit;
        return Err((
            "concurrent_client_limit",
            format!("must be 1 to 64, got {got}"),
        ));
    }
    if !b.enable {
        return Ok(());
    }
    if b.name.is_empty() {
        return Err(("name", "an enabled bridge needs a name".into()));
    }
    match &b.servers {
        None => {
            let hint = "missing: set the Kafka bootstrap servers, e.g. \"127.0.0.1:9092\"";
            return Err(("servers", hint.into()));
        }
        Some(s) if s.trim().is_empty() => return Err(("servers", "is empty".into())),
        Some(_) => {}
    }
    for (reserved, field) in [
        ("bootstrap.servers", "properties.\"bootstrap.servers\""),
        ("client.id", "properties.\"client.id\""),
    ] {
        if b.properties.contains_key(reserved) {
            let why = "is set by the plugin (from `servers` and `client_id_prefix`); remove it";
            return Err((field, why.into()));
        }
    }
    if b.max_inflight_messages == 0 || b.max_inflight_messages > super::MAX_INFLIGHT_MESSAGES {
        let max = super::MAX_INFLIGHT_MESSAGES;
        return Err(("max_inflight_messages", format!("must be 1 to {max}")));
    }
    if b.max_inflight_bytes < 1024 {
        return Err(("max_inflight_bytes", "must be at least 1KiB".into()));
    }
    check_buffer(b)?;
    let shared_max = super::MAX_SHARED_ENTRIES;
    if b.producer_pool == ProducerPool::Bridge && b.entries.len() > shared_max {
        let n = b.entries.len();
        let why = format!(
            "\"bridge\" shares producers among at most {shared_max} entries; this bridge has {n}"
        );
        return Err(("producer_pool", why));
    }
    Ok(())
}

/// `buffer.*`. Whether the directory is writable and free is known only when the spool
/// opens it at start.
fn check_buffer(b: &BridgeConfig) -> Result<(), Problem> {
    let buffer = &b.buffer;
    if buffer.mode != BufferMode::Disk {
        return Ok(());
    }
    if buffer.max_bytes < MIN_SPOOL_BYTES {
        return Err(("buffer.max_bytes", "must be at least 1MiB".into()));
    }
    if buffer.flush_interval > Duration::from_secs(1) {
        return Err(("buffer.flush_interval", "must be 0 to 1s".into()));
    }
    if buffer.dir.as_os_str().is_empty() {
        return Err(("buffer.dir", "is empty".into()));
    }
    let n = &b.name;
    if n == "." || n == ".." || n.contains(['/', '\\', '\0']) {
        let why = format!("\"{n}\" names the bridge's spool directory: no '/', '\\', '.' or '..'");
        return Err(("name", why));
    }
    Ok(())
}

/// The smallest `buffer.max_bytes`: room for a few segments.
const MIN_SPOOL_BYTES: u64 = 1 << 20;

/// The fields of one entry of a bridge in buffer mode `mode`.
fn check_entry(e: &EntryConfig, mode: BufferMode) -> Result<(), Problem> {
    if let Some(p) = e.remote.partition {
        if p < 0 {
            return Err(("remote.partition", format!("must be 0 or more, got {p}")));
        }
    }
    check_ack(&e.remote, mode)?;
    check_shaping(&e.remote)?;
    e.transform.as_ref().map_or(Ok(()), check_transform)
}

/// `remote.headers`, `remote.on_template_error` and `remote.dead_letter_topic`.
fn check_shaping(r: &RemoteConfig) -> Result<(), Problem> {
    if r.headers.contains_key("") {
        return Err(("remote.headers", "a header name is empty".into()));
    }
    check_schemas(r)?;
    // Both policies send to the one dead-letter topic; it is needed if either does.
    let (policy, name) = match r.on_schema_error {
        OnError::DeadLetter => (OnError::DeadLetter, "on_schema_error"),
        _ => (r.on_template_error, "on_template_error"),
    };
    check_dead_letter(
        policy,
        r.dead_letter_topic.is_some(),
        "remote.dead_letter_topic",
        name,
    )
}

/// `remote.on_schema_error`: a record its schema refused never reaches the governed
/// topic, and the policy needs a schema to apply to.
fn check_schemas(r: &RemoteConfig) -> Result<(), Problem> {
    let field = "remote.on_schema_error";
    match r.on_schema_error {
        OnError::Forward => Err((
            field,
            "\"forward\" would send a record that does not fit its schema to the schema's topic; choose \"drop\" or \"dead_letter\"".into(),
        )),
        OnError::DeadLetter if r.value_schema.is_none() && r.key_schema.is_none() => Err((
            field,
            "is set, but the entry has no remote.value_schema or remote.key_schema".into(),
        )),
        _ => Ok(()),
    }
}

/// A dead-letter topic is named exactly when the policy sends to it.
fn check_dead_letter(
    policy: OnError,
    has_topic: bool,
    field: &'static str,
    policy_name: &str,
) -> Result<(), Problem> {
    match (policy, has_topic) {
        (OnError::DeadLetter, false) => Err((
            field,
            format!("is required when {policy_name} = \"dead_letter\""),
        )),
        (OnError::Drop | OnError::Forward, true) => Err((
            field,
            format!(
                "has no effect with {policy_name} = \"{}\"; set {policy_name} = \"dead_letter\" or remove it",
                policy.as_str()
            ),
        )),
        _ => Ok(()),
    }
}

/// `remote.ack` and its older alias `remote.ack_after_delivery`: they must agree, and
/// the spool's levels need a spool.
fn check_ack(r: &RemoteConfig, mode: BufferMode) -> Result<(), Problem> {
    match (r.ack, r.ack_after_delivery) {
        (Some(level), Some(true)) if level != AckLevel::Delivered => {
            let why = format!("\"{}\" contradicts remote.ack_after_delivery = true (which means \"delivered\"); remove one of the two", level.as_str());
            return Err(("remote.ack", why));
        }
        (Some(AckLevel::Delivered), Some(false)) => {
            let why = "\"delivered\" contradicts remote.ack_after_delivery = false; remove one of the two";
            return Err(("remote.ack", why.into()));
        }
        _ => {}
    }
    let level = r.ack_level(mode);
    if mode == BufferMode::Memory && matches!(level, AckLevel::Written | AckLevel::Synced) {
        let why = format!(
            "\"{}\" needs a spool to write to: set buffer.mode = \"disk\" on the bridge, or use \"received\" or \"delivered\"",
            level.as_str()
        );
        return Err(("remote.ack", why));
    }
    Ok(())
}

/// `transform.max_records` and the state store's bounds.
fn check_transform_bounds(t: &TransformConfig) -> Result<(), Problem> {
    if t.max_records == 0 || t.max_records > abi::MAX_RECORDS {
        let why = format!(
            "must be 1 to {} (the ABI's ceiling), got {}",
            abi::MAX_RECORDS,
            t.max_records
        );
        return Err(("transform.max_records", why));
    }
    if t.state_max_keys == 0 || t.state_max_keys > MAX_STATE_KEYS {
        let why = format!("must be 1 to {MAX_STATE_KEYS}, got {}", t.state_max_keys);
        return Err(("transform.state_max_keys", why));
    }
    if t.state_max_bytes < 1 << 10 || t.state_max_bytes > 4 << 30 {
        return Err((
            "transform.state_max_bytes",
            "must be between 1KiB and 4GiB".into(),
        ));
    }
    Ok(())
}

/// Most keys an entry's state store may be allowed.
const MAX_STATE_KEYS: usize = 10_000_000;

/// `transform.*`.
fn check_transform(t: &TransformConfig) -> Result<(), Problem> {
    if t.instances == 0 || t.instances > 256 {
        let got = t.instances;
        return Err((
            "transform.instances",
            format!("must be 1 to 256, got {got}"),
        ));
    }
    if t.timeout.is_zero() || t.timeout > Duration::from_secs(60) {
        let got = t.timeout;
        return Err((
            "transform.timeout",
            format!("must be between 1ms and 60s, got {got:?}"),
        ));
    }
    if t.max_memory < 64 << 10 || t.max_memory > 4 << 30 {
        return Err((
            "transform.max_memory",
            "must be between 64KiB and 4GiB".into(),
        ));
    }
    check_transform_bounds(t)?;
    let reserved = t.config.keys().find(|k| abi::script::is_reserved(k));
    if let (TransformCode::Script(_), Some(key)) = (&t.code, reserved) {
        let why = format!(
            "key \"{key}\": keys beginning with \"{}\" are the host's (it passes the script under them)",
            abi::script::RESERVED_PREFIX
        );
        return Err(("transform.config", why));
    }
    check_dead_letter(
        t.on_error,
        t.dead_letter_topic.is_some(),
        "transform.dead_letter_topic",
        "on_error",
    )
}
