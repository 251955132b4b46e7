//! `bridge-bench broker`: the broker under test, in a process of its own.
//!
//! It is the tests' in-process broker (`bridge_testkit::Broker`: a `ServerContext`, the
//! plugin registered under its name, one TCP listener) with rmqtt's busy check off, the
//! same whatever the plugin, so that the configurations differ only by the bridge. It
//! prints `listening <addr>` once it accepts connections and, when told to stop (SIGTERM
//! or Ctrl-C), `attrs <json>` with the plugin's own counters. SIGHUP reloads the plugin's
//! configuration from its file, as rmqttd does.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use bridge_testkit::Broker;
use rmqtt_bridge_egress_kafka::PLUGIN_NAME;
use tokio::signal::unix::{signal, SignalKind};

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

pub fn main(plugin: PluginKind, config: Option<PathBuf>, port: u16) -> Result<()> {
    flexi_logger::Logger::try_with_env_or_str("warn")?
        .start()
        .context("cannot start the logger")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(plugin, config, port))?;
    // Exit without dropping the runtime: a bridge may still hold a backlog, and what is
    // measured has been measured.
    std::process::exit(0)
}

async fn serve(plugin: PluginKind, config: Option<PathBuf>, port: u16) -> Result<()> {
    let mut hangups = signal(SignalKind::hangup())?;
    let mut builder = Broker::builder()
        .listener("bench/tcp", port)
        .busy_check(false);
    if let Some(c) = &config {
        builder = builder.config(PLUGIN_NAME, read(c)?);
    }
    let builder = match plugin {
        PluginKind::None => builder,
        PluginKind::Upstream => builder.register(|scx| async move {
            upstream::register_named(&scx, PLUGIN_NAME, true, false)
                .await
                .context("the upstream plugin failed to start")
        }),
        PluginKind::Ours => builder.register_bridge(),
    };
    let broker = builder.start().await?;
    say(&format!("listening {}", broker.addr))?;
    let mut term = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => break r?,
            _ = term.recv() => break,
            _ = hangups.recv() => {
                let text = config.as_deref().map(read).transpose()?.unwrap_or_default();
                match broker.reload(&text).await {
                    Ok(()) => say("reloaded")?,
                    Err(e) => say(&format!("reload refused: {e:#}"))?,
                }
            }
        }
    }
    say(&format!("attrs {}", broker.try_attrs().await?))
}

fn read(file: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}
