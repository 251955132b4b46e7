//! `rmqttd`: an RMQTT broker with the Kafka egress bridge and `rmqtt-acl` built in.
//!
//! It reads `rmqtt.toml` like upstream's rmqttd (`rmqttd -f rmqtt.toml`, the same options
//! and file format). `--demo` runs the bridge against an embedded Kafka and prints every
//! record that lands in it.

mod demo;
mod exposure;
mod listeners;
mod logging;
mod transform;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use rmqtt::context::ServerContext;
use rmqtt::node::Node;
use rmqtt_bridge_egress_kafka::PLUGIN_NAME;
use rmqtt_conf::Settings;
use tokio::signal::unix::{signal, Signal, SignalKind};

use listeners::serve;

/// jemalloc for Rust and, unprefixed, for librdkafka's C allocations too.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "rmqttd",
    about = "RMQTT broker with the Kafka egress bridge",
    disable_version_flag = true
)]
struct Cli {
    #[command(flatten)]
    opts: rmqtt_conf::Options,

    /// Run against an embedded Kafka (librdkafka's mock cluster) instead of the
    /// configured servers, and print every record that lands in it.
    #[arg(long)]
    demo: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Tools for transform authors (`rmqttd transform test MODULE …`); no broker runs.
    #[command(subcommand)]
    Transform(transform::TransformCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.opts.version {
        println!(
            "rmqttd {} (rmqtt-bridge-egress-kafka) on rmqtt {}",
            env!("CARGO_PKG_VERSION"),
            Node::version()
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rmqttd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Transform(command)) = cli.command {
        return runtime.block_on(transform::run(command));
    }
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rmqttd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    if let Some(file) = &cli.opts.cfg_name {
        // rmqtt-conf silently ignores a missing file; a typo in -f deserves an error.
        if !Path::new(file).is_file() {
            bail!("configuration file {file} not found");
        }
    }
    // At once: SIGHUP's default action would end the process.
    let hangups = signal(SignalKind::hangup())?;
    let conf = Settings::init(cli.opts.clone())
        .map_err(|e| anyhow!("invalid broker configuration: {e}"))?;
    logging::init(&conf.log)?;

    let demo = if cli.demo {
        Some(demo::Demo::start(&conf.plugins.dir)?)
    } else {
        None
    };
    let plugins_dir = demo
        .as_ref()
        .map_or_else(|| conf.plugins.dir.clone(), |d| d.plugins_dir());

    let node = Node::new(
        conf.node.id,
        conf.node.busy.loadavg,
        conf.node.busy.cpuloadavg,
        conf.node.busy.update_interval,
    );
    let scx = ServerContext::new()
        .node(node)
        .task_exec_workers(conf.task.exec_workers)
        .task_exec_queue_max(conf.task.exec_queue_max)
        .busy_check_enable(conf.node.busy.check_enable)
        .busy_handshaking_limit(conf.node.busy.handshaking)
        .mqtt_max_sessions(conf.mqtt.max_sessions)
        .plugins_config_dir(plugins_dir.as_str())
        .build()
        .await;

    let startups = &conf.plugins.default_startups;
    if startups
        .iter()
        .any(|s| s == BROADCAST_PLUGIN || s == RAFT_PLUGIN)
    {
        serve_grpc(&scx, &conf.rpc).await?;
    }
    // Errors name the user's file, not the demo's temporary copy of it.
    register_plugins(&scx, startups, &conf.plugins.dir).await?;
    exposure::warn_if_exposed(&conf.plugins.dir, startups);

    let conf_file = cli
        .opts
        .cfg_name
        .as_deref()
        .unwrap_or("the broker configuration");
    let listeners = listeners::bind(&conf.listeners).map_err(|e| anyhow!("{conf_file}: {e:#}"))?;
    let addrs = serve(&scx, listeners)?;
    log::info!(
        "rmqttd listening on {}",
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(demo) = &demo {
        let config = scx.plugins.get_config(PLUGIN_NAME).await.ok();
        demo.print_instructions(&addrs, conf.node.id, config);
    }

    serve_until_stopped(&scx, demo.as_ref(), hangups).await?;
    log::info!("shutting down");
    if scx.plugins.is_active(PLUGIN_NAME) {
        // Flushes in-flight records; whatever cannot be delivered is logged and counted.
        if let Err(e) = scx.plugins.stop(PLUGIN_NAME).await {
            log::warn!("stopping {PLUGIN_NAME}: {e}");
        }
    }
    // Only now that its producers are gone: the embedded Kafka and its printer.
    drop(demo);
    Ok(())
}

/// The node-to-node gRPC service a cluster plugin talks to, on `rpc.server_addr`.
async fn serve_grpc(scx: &ServerContext, rpc: &rmqtt_conf::Rpc) -> Result<()> {
    let addr = rpc.server_addr;
    // Bound now, so that a busy address is an error naming the key, not a log line.
    std::net::TcpListener::bind(addr)
        .map_err(|e| anyhow!("rpc.server_addr: cannot listen on {addr}: {e}"))?;
    let server = rmqtt::grpc::GrpcServer::new(scx.clone());
    let (reuseaddr, reuseport) = (rpc.reuseaddr, rpc.reuseport);
    tokio::spawn(async move {
        if let Err(e) = server.listen_and_serve(addr, reuseaddr, reuseport).await {
            log::error!("rpc.server_addr {addr}: the gRPC service stopped: {e}");
        }
    });
    log::info!("node-to-node gRPC on {addr}");
    Ok(())
}

/// Serves until SIGTERM or Ctrl-C. Each SIGHUP reloads the bridge's configuration, as
/// rmqtt's HTTP API `PUT …/config/reload` does.
async fn serve_until_stopped(
    scx: &ServerContext,
    demo: Option<&demo::Demo>,
    mut hangups: Signal,
) -> Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => return Ok(r?),
            _ = term.recv() => return Ok(()),
            _ = hangups.recv() => reload(scx, demo).await,
        }
    }
}

/// Reloads the bridge's configuration; a refusal is logged (by the plugin, with the
/// reason) and changes nothing.
async fn reload(scx: &ServerContext, demo: Option<&demo::Demo>) {
    log::info!("SIGHUP: reloading {PLUGIN_NAME}'s configuration");
    if let Some(demo) = demo {
        // The demo runs on a redirected copy of the user's file: copy it again.
        if let Err(e) = demo.refresh() {
            log::warn!("SIGHUP: {e:#}");
            return;
        }
    }
    if let Err(e) = scx.plugins.load_config(PLUGIN_NAME).await {
        log::warn!("SIGHUP: {PLUGIN_NAME}: reload refused: {e}");
    }
}

/// rmqtt's clustering plugins, under upstream's names.
const ACL_PLUGIN: &str = "rmqtt-acl";
const BROADCAST_PLUGIN: &str = "rmqtt-cluster-broadcast";
const RAFT_PLUGIN: &str = "rmqtt-cluster-raft";

/// rmqtt's HTTP API, under the name upstream's rmqtt.toml and plugins/ use.
const HTTP_API_PLUGIN: &str = "rmqtt-http-api";

/// Registers the built-in plugins; those in `plugins.default_startups` start now.
async fn register_plugins(
    scx: &ServerContext,
    startups: &[String],
    plugins_dir: &str,
) -> Result<()> {
    let built_in = [
        PLUGIN_NAME,
        ACL_PLUGIN,
        HTTP_API_PLUGIN,
        BROADCAST_PLUGIN,
        RAFT_PLUGIN,
    ];
    for name in startups {
        if !built_in.contains(&name.as_str()) {
            log::warn!("plugin {name} is listed in plugins.default_startups but is not built into this rmqttd");
        }
    }
    let starts = |name: &str| startups.iter().any(|s| s == name);
    rmqtt_acl::register_named(scx, ACL_PLUGIN, starts(ACL_PLUGIN), false)
        .await
        .with_context(|| format!("plugin {ACL_PLUGIN} failed to start"))?;
    rmqtt_http_api::register_named(scx, HTTP_API_PLUGIN, starts(HTTP_API_PLUGIN), false)
        .await
        .map_err(|e| {
            let file = Path::new(plugins_dir).join(format!("{HTTP_API_PLUGIN}.toml"));
            anyhow!(
                "plugin {HTTP_API_PLUGIN} failed to start (configuration {}): {e:#}",
                file.display()
            )
        })?;
    let failed = |name: &'static str| {
        let file = Path::new(plugins_dir).join(format!("{name}.toml"));
        move |e: anyhow::Error| {
            anyhow!(
                "plugin {name} failed to start (configuration {}): {e:#}",
                file.display()
            )
        }
    };
    rmqtt_cluster_broadcast::register_named(scx, BROADCAST_PLUGIN, starts(BROADCAST_PLUGIN), false)
        .await
        .map_err(failed(BROADCAST_PLUGIN))?;
    rmqtt_cluster_raft::register_named(scx, RAFT_PLUGIN, starts(RAFT_PLUGIN), false)
        .await
        .map_err(failed(RAFT_PLUGIN))?;
    let file = Path::new(plugins_dir).join(format!("{PLUGIN_NAME}.toml"));
    rmqtt_bridge_egress_kafka::register_named(scx, PLUGIN_NAME, starts(PLUGIN_NAME), false)
        .await
        .map_err(|e| {
            anyhow!(
                "plugin {PLUGIN_NAME} failed to start (configuration {}): {e}",
                file.display()
            )
        })
}
