//! Binds the `[listener.*]` sections of rmqtt.toml: `tcp`, `tls`, `ws` and `wss`.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use rmqtt::context::ServerContext;
use rmqtt::net::{Builder, Listener};
use rmqtt::server::MqttServer;
use rmqtt_conf::listener::{Listener as ListenerConf, Listeners};

/// Binds every configured listener. QUIC is refused rather than left a silently missing
/// port: this rmqttd is built without rmqtt's `quic` feature.
pub fn bind(conf: &Listeners) -> Result<Vec<Listener>> {
    if let Some(l) = conf.quics.values().next() {
        bail!(
            "{} on {}: QUIC listeners are not supported by this rmqttd; use listener.tls or listener.wss",
            section(l, "quic"),
            l.addr
        );
    }
    let mut out = Vec::new();
    for l in conf.tcps.values() {
        out.push(bind_one(l, "tcp", Listener::tcp)?);
    }
    for l in conf.tlss.values() {
        check_tls_files(l, "tls")?;
        out.push(bind_one(l, "tls", Listener::tls)?);
    }
    for l in conf.wss.values() {
        out.push(bind_one(l, "ws", Listener::ws)?);
    }
    for l in conf.wsss.values() {
        check_tls_files(l, "wss")?;
        out.push(bind_one(l, "wss", Listener::wss)?);
    }
    Ok(out)
}

/// Binds the socket, then gives it its protocol (for TLS: loads the certificate and key).
fn bind_one(
    l: &ListenerConf,
    kind: &str,
    protocol: impl FnOnce(Listener) -> Result<Listener>,
) -> Result<Listener> {
    builder(l)
        .bind()
        .and_then(protocol)
        .map_err(|e| anyhow!("cannot start {} on {}: {e:#}", section(l, kind), l.addr))
}

/// `listener.tls.external` for the listener rmqtt-conf names "external/tls".
fn section(l: &ListenerConf, kind: &str) -> String {
    let name = l.name.rsplit_once('/').map_or(l.name.as_str(), |(n, _)| n);
    format!("listener.{kind}.{name}")
}

/// A TLS listener needs `cert` and `key`; checked here so the error names the field,
/// where rustls would only say that a path is not set.
fn check_tls_files(l: &ListenerConf, kind: &str) -> Result<()> {
    let files = [
        ("cert", l.cert.as_deref(), true),
        ("key", l.key.as_deref(), true),
        ("client_ca_certs", l.client_ca_certs.as_deref(), false),
    ];
    for (field, path, required) in files {
        let key = format!("{}.{field}", section(l, kind));
        match path {
            None if required => bail!("{key}: required for a {kind} listener (a PEM file)"),
            Some(p) if !Path::new(p).is_file() => bail!("{key}: file {p} not found"),
            _ => {}
        }
    }
    Ok(())
}

fn builder(l: &ListenerConf) -> Builder {
    Builder::new()
        .name(l.name.as_str())
        .laddr(l.addr)
        .max_connections(l.max_connections)
        .max_handshaking_limit(l.max_handshaking_limit)
        .max_packet_size(l.max_packet_size.as_u32())
        .backlog(l.backlog)
        .nodelay(l.nodelay)
        .reuseaddr(l.reuseaddr)
        .reuseport(l.reuseport)
        .tcp_keepalive(l.tcp_keepalive)
        .allow_anonymous(l.allow_anonymous)
        .min_keepalive(l.min_keepalive)
        .max_keepalive(l.max_keepalive)
        .allow_zero_keepalive(l.allow_zero_keepalive)
        .keepalive_backoff(l.keepalive_backoff)
        .max_inflight(l.max_inflight)
        .handshake_timeout(l.handshake_timeout)
        .max_mqueue_len(l.max_mqueue_len)
        .mqueue_rate_limit(l.mqueue_rate_limit.0, l.mqueue_rate_limit.1)
        .max_clientid_len(l.max_clientid_len)
        .max_qos_allowed(l.max_qos_allowed)
        .max_topic_levels(l.max_topic_levels)
        .session_expiry_interval(l.session_expiry_interval)
        .max_session_expiry_interval(l.max_session_expiry_interval)
        .message_retry_interval(l.message_retry_interval)
        .message_expiry_interval(l.message_expiry_interval)
        .max_subscriptions(l.max_subscriptions)
        .max_topic_aliases(l.max_topic_aliases)
        .limit_subscription(l.limit_subscription)
        .proxy_protocol(l.proxy_protocol)
        .proxy_protocol_timeout(l.proxy_protocol_timeout)
        .idle_timeout(l.idle_timeout)
        .tls_cert(l.cert.clone())
        .tls_key(l.key.clone())
        .tls_client_ca_certs(l.client_ca_certs.clone())
        .tls_cross_certificate(l.cross_certificate)
        .cert_cn_as_username(l.cert_cn_as_username)
        .cert_subject_dn_as_username(l.cert_subject_dn_as_username)
        .collect_cert_info(l.collect_cert_info)
}

/// Starts serving MQTT on `listeners`; returns their addresses in the same order.
pub fn serve(scx: &ServerContext, listeners: Vec<Listener>) -> Result<Vec<SocketAddr>> {
    let mut server = MqttServer::new(scx.clone());
    let mut addrs = Vec::with_capacity(listeners.len());
    for listener in listeners {
        addrs.push(listener.local_addr()?);
        server = server.listener(listener);
    }
    server.build().start();
    Ok(addrs)
}
