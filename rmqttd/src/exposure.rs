//! A warning at start for each HTTP endpoint that can change the running broker and
//! listens beyond loopback with no `http_bearer_token`: whoever reaches it controls the
//! broker, and nothing else in the log would say so. Like Mosquitto 2.0, the shipped
//! files keep these endpoints on loopback until a token is set.
//!
//! The plugins' files are read as rmqttd reads them for the demo; overrides through
//! `RMQTT_PLUGIN_*` environment variables are not considered.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use rmqtt_bridge_egress_kafka::PLUGIN_NAME;

/// A plugin's HTTP endpoint, and what it lets anyone who reaches it do.
struct Endpoint {
    plugin: &'static str,
    /// Where it listens when its file sets no `http_laddr` (`None`: it does not listen).
    default_laddr: Option<&'static str>,
    powers: &'static str,
}

const ENDPOINTS: [Endpoint; 2] = [
    Endpoint {
        plugin: "rmqtt-http-api",
        // rmqtt-http-api's own default, used when its file is absent too.
        default_laddr: Some("0.0.0.0:6060"),
        powers: "publish, kick clients, read plugins' configuration, load, unload and reload \
                 plugins, and use the dashboard",
    },
    Endpoint {
        plugin: PLUGIN_NAME,
        default_laddr: None,
        powers: "make the bridge re-read its file (POST /reload) and read its status",
    },
];

/// Logs a warning for each plugin in `startups` whose endpoint is exposed without a
/// token. `plugins_dir` is the user's, so that the warning names the file to edit.
pub fn warn_if_exposed(plugins_dir: &str, startups: &[String]) {
    for endpoint in ENDPOINTS
        .iter()
        .filter(|e| startups.iter().any(|s| s == e.plugin))
    {
        let file = Path::new(plugins_dir).join(format!("{}.toml", endpoint.plugin));
        if let Some(laddr) = exposed(&file, endpoint) {
            log::warn!(
                "{}: http_laddr {laddr} is reachable beyond this host and no http_bearer_token \
                 is set: anyone who reaches it can {}. Set http_bearer_token, or listen on \
                 loopback (http_laddr = \"127.0.0.1:<port>\")",
                file.display(),
                endpoint.powers
            );
        }
    }
}

/// The address the endpoint configured in `file` listens on, if it is beyond loopback
/// and no token guards it. A file that cannot be read as TOML is left to the plugin,
/// which refuses to start with it.
fn exposed(file: &Path, endpoint: &Endpoint) -> Option<String> {
    let doc: toml::Table = match std::fs::read_to_string(file) {
        Ok(text) => text.parse().ok()?,
        Err(_) => toml::Table::new(),
    };
    let token = doc.get("http_bearer_token").and_then(toml::Value::as_str);
    // An empty token would let `Authorization: Bearer ` through.
    if token.is_some_and(|t| !t.is_empty()) {
        return None;
    }
    let laddr = match doc.get("http_laddr") {
        Some(value) => value.as_str()?,
        None => endpoint.default_laddr?,
    };
    beyond_loopback(laddr).then(|| laddr.to_owned())
}

/// Whether `laddr` (`host:port`) accepts connections from other hosts: anything but a
/// loopback address or `localhost`, so that a host name counts as reachable.
fn beyond_loopback(laddr: &str) -> bool {
    if let Ok(addr) = laddr.parse::<SocketAddr>() {
        return !addr.ip().to_canonical().is_loopback();
    }
    let host = laddr.rsplit_once(':').map_or(laddr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => !ip.to_canonical().is_loopback(),
        Err(_) => !host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_and_lan_addresses_are_beyond_loopback() {
        for laddr in [
            "0.0.0.0:6060",
            "[::]:6060",
            "192.168.1.20:6060",
            "10.0.0.5:9464",
            "[fe80::1]:6060",
            "broker.example.com:6060",
        ] {
            assert!(beyond_loopback(laddr), "{laddr}");
        }
    }

    #[test]
    fn loopback_addresses_and_localhost_are_not() {
        for laddr in [
            "127.0.0.1:6060",
            "127.0.0.2:6060",
            "[::1]:6060",
            "[::ffff:127.0.0.1]:6060",
            "localhost:6060",
            "LOCALHOST:6060",
        ] {
            assert!(!beyond_loopback(laddr), "{laddr}");
        }
    }

    /// `exposed` on a file with `text` (`None`: no file at all).
    fn exposed_with(text: Option<&str>, endpoint: &Endpoint) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plugin.toml");
        if let Some(text) = text {
            std::fs::write(&file, text).unwrap();
        }
        exposed(&file, endpoint)
    }

    /// What `exposed` finds for an endpoint on every address.
    const EVERYWHERE: Option<&str> = Some("0.0.0.0:6060");

    #[test]
    fn a_token_or_loopback_guards_the_endpoint() {
        let [api, bridge] = &ENDPOINTS;
        let open = "http_laddr = \"0.0.0.0:6060\"\n";
        assert_eq!(exposed_with(Some(open), api).as_deref(), EVERYWHERE);
        assert_eq!(exposed_with(Some(open), bridge).as_deref(), EVERYWHERE);
        let guarded = format!("{open}http_bearer_token = \"s3cret\"\n");
        assert_eq!(exposed_with(Some(&guarded), api), None);
        let empty_token = format!("{open}http_bearer_token = \"\"\n");
        assert!(exposed_with(Some(&empty_token), api).is_some());
        let local = "http_laddr = \"127.0.0.1:6060\"\n";
        assert_eq!(exposed_with(Some(local), api), None);
        assert_eq!(exposed_with(Some("not = [toml"), api), None);
    }

    #[test]
    fn without_http_laddr_the_api_listens_everywhere_and_the_bridge_nowhere() {
        let [api, bridge] = &ENDPOINTS;
        assert_eq!(exposed_with(Some(""), api).as_deref(), EVERYWHERE);
        assert_eq!(exposed_with(None, api).as_deref(), EVERYWHERE);
        assert_eq!(exposed_with(Some(""), bridge), None);
    }
}
