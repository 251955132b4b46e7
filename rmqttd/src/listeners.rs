//! Binds the `[listener.*]` sections of rmqtt.toml.

use anyhow::{anyhow, bail, Result};
use rmqtt::net::{Builder, Listener};
use rmqtt_conf::listener::{Listener as ListenerConf, Listeners};

/// Binds every configured TCP and WebSocket listener. This rmqttd is built without TLS
/// (it would add a second C crypto build for a broker usually fronted by a TLS proxy), so
/// a TLS, WSS or QUIC listener is an error rather than a silently missing port.
pub fn bind(conf: &Listeners) -> Result<Vec<Listener>> {
    if let Some(l) = conf
        .tlss
        .values()
        .chain(conf.wsss.values())
        .chain(conf.quics.values())
        .next()
    {
        bail!(
            "listener \"{}\" on {} needs TLS, but this rmqttd serves TCP and WebSocket listeners only; terminate TLS in front of it",
            l.name,
            l.addr
        );
    }
    let mut out = Vec::new();
    for l in conf.tcps.values() {
        out.push(
            builder(l)
                .bind()
                .and_then(|b| b.tcp())
                .map_err(|e| anyhow!("cannot bind TCP listener on {}: {e}", l.addr))?,
        );
    }
    for l in conf.wss.values() {
        out.push(
            builder(l)
                .bind()
                .and_then(|b| b.ws())
                .map_err(|e| anyhow!("cannot bind WebSocket listener on {}: {e}", l.addr))?,
        );
    }
    Ok(out)
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
}
