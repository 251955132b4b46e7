//! `bridge-bench broker`: the broker under test, in a process of its own.
//!
//! It is built like `rmqttd` builds its broker (a `ServerContext`, the plugin registered
//! under its name, one TCP listener), with the same settings whatever the plugin, so that
//! the configurations differ only by the bridge. It prints `listening <addr>` once it
//! accepts connections and, when told to stop (SIGTERM or Ctrl-C), `attrs <json>` with
//! the plugin's own counters.

use std::io::Write;
use std::num::NonZeroU16;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use rmqtt::context::ServerContext;
use rmqtt::net::Builder;
use rmqtt::node::Node;
use rmqtt::server::MqttServer;
use rmqtt_bridge_egress_kafka::PLUGIN_NAME;

/// The bridge a broker runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum PluginKind {
    /// No bridge: the ceiling.
    None,
    /// `rmqtt-bridge-egress-kafka` 0.24 from crates.io.
    Upstream,
    /// This repository's plugin.
    Ours,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::None => "none",
            PluginKind::Upstream => "upstream",
            PluginKind::Ours => "ours",
        }
    }
}

/// The listener's in-flight window (rmqtt.toml has 16; 64 keeps it off the critical
/// path). The same for every configuration.
const MAX_INFLIGHT: u16 = 64;

pub fn main(plugin: PluginKind, config: Option<PathBuf>, port: u16) -> Result<()> {
    flexi_logger::Logger::try_with_env_or_str("warn")?
        .start()
        .context("cannot start the logger")?;
    let config = config
        .map(|f| {
            std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))
        })
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(plugin, config, port))?;
    // Exit without dropping the runtime: a bridge may still hold a backlog, and what is
    // measured has been measured.
    std::process::exit(0)
}

async fn serve(plugin: PluginKind, config: Option<String>, port: u16) -> Result<()> {
    let mut builder = ServerContext::new()
        .node(Node::new(1, 100.0, 100.0, Duration::from_secs(5)))
        .busy_check_enable(false);
    if let Some(c) = config {
        builder = builder.plugins_config_map_add(PLUGIN_NAME, c);
    }
    let scx = builder.build().await;
    match plugin {
        PluginKind::None => {}
        PluginKind::Upstream => upstream::register_named(&scx, PLUGIN_NAME, true, false)
            .await
            .context("the upstream plugin failed to start")?,
        PluginKind::Ours => {
            rmqtt_bridge_egress_kafka::register_named(&scx, PLUGIN_NAME, true, false)
                .await
                .context("this plugin failed to start")?
        }
    }
    let listener = Builder::new()
        .name("bench/tcp")
        .laddr(([127, 0, 0, 1], port).into())
        .allow_anonymous(true)
        .max_inflight(NonZeroU16::new(MAX_INFLIGHT).expect("non-zero"))
        .bind()?
        .tcp()?;
    let addr = listener.local_addr()?;
    MqttServer::new(scx.clone())
        .listener(listener)
        .build()
        .start();
    say(&format!("listening {addr}"))?;

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    let attrs = match scx.plugins.get(PLUGIN_NAME) {
        Some(entry) => entry.to_info(PLUGIN_NAME).await?.to_json()?["attrs"].clone(),
        None => serde_json::Value::Null,
    };
    say(&format!("attrs {attrs}"))
}

fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}
