//! An in-process RMQTT broker on one TCP listener, with the plugins its user registers:
//! this repository's bridge, `rmqtt-acl`, or any other (the benchmark registers the
//! upstream plugin, or none), so that every broker differs only by its plugins.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rmqtt::context::ServerContext;
use rmqtt::net::{Builder, Listener};
use rmqtt::node::Node;
use rmqtt::server::MqttServer;
use rmqtt_bridge_egress_kafka::PLUGIN_NAME;
use serde_json::Value;

pub const ACL_PLUGIN: &str = "rmqtt-acl";

/// The listener's in-flight window (rmqtt.toml has 16; 64 keeps it off the critical
/// path of the tests and the benchmark).
const MAX_INFLIGHT: u16 = 64;

/// One plugin registration, run once the server context is built.
type Registration = Box<dyn FnOnce(ServerContext) -> Pin<Box<dyn Future<Output = Result<()>>>>>;

/// What a [`Broker`] runs: plugin configurations, plugin registrations (run in the
/// order given, each starting its plugin) and its listener.
pub struct BrokerBuilder {
    listener_name: String,
    port: u16,
    busy_check: bool,
    configs: Vec<(String, String)>,
    registrations: Vec<Registration>,
}

impl Default for BrokerBuilder {
    /// No plugins, rmqtt's busy check on, a listener "test/tcp" on an ephemeral port.
    fn default() -> BrokerBuilder {
        BrokerBuilder {
            listener_name: "test/tcp".into(),
            port: 0,
            busy_check: true,
            configs: Vec::new(),
            registrations: Vec::new(),
        }
    }
}

impl BrokerBuilder {
    /// The listener's name and port on 127.0.0.1 (0 picks a free one).
    pub fn listener(mut self, name: &str, port: u16) -> Self {
        self.listener_name = name.into();
        self.port = port;
        self
    }

    /// rmqtt's busy check (on by default); off makes a loaded machine's broker accept
    /// every connection.
    pub fn busy_check(mut self, enable: bool) -> Self {
        self.busy_check = enable;
        self
    }

    /// The TOML configuration of the plugin registered as `plugin`.
    pub fn config(mut self, plugin: &str, toml: impl Into<String>) -> Self {
        self.configs.push((plugin.into(), toml.into()));
        self
    }

    /// Runs `register` with the built context, e.g. a plugin crate's `register_named`.
    pub fn register<F, Fut>(mut self, register: F) -> Self
    where
        F: FnOnce(ServerContext) -> Fut + 'static,
        Fut: Future<Output = Result<()>> + 'static,
    {
        self.registrations
            .push(Box::new(move |scx| Box::pin(register(scx))));
        self
    }

    /// Registers and starts this repository's bridge as [`PLUGIN_NAME`].
    pub fn register_bridge(self) -> Self {
        self.register(|scx| async move {
            rmqtt_bridge_egress_kafka::register_named(&scx, PLUGIN_NAME, true, false)
                .await
                .with_context(|| format!("plugin {PLUGIN_NAME} failed to start"))
        })
    }

    /// Registers and starts `rmqtt-acl` as [`ACL_PLUGIN`].
    pub fn register_acl(self) -> Self {
        self.register(|scx| async move {
            rmqtt_acl::register_named(&scx, ACL_PLUGIN, true, false)
                .await
                .with_context(|| format!("plugin {ACL_PLUGIN} failed to start"))
        })
    }

    /// Builds the context, registers the plugins and starts serving MQTT.
    pub async fn start(self) -> Result<Broker> {
        // Files, as rmqttd has them, so that a test can change one and reload it.
        let config_dir = tempfile::tempdir()?;
        for (plugin, toml) in &self.configs {
            std::fs::write(config_dir.path().join(format!("{plugin}.toml")), toml)?;
        }
        let dir = config_dir
            .path()
            .to_str()
            .context("a UTF-8 temporary directory")?;
        let scx = ServerContext::new()
            .node(Node::new(1, 100.0, 100.0, Duration::from_secs(5)))
            .busy_check_enable(self.busy_check)
            .plugins_config_dir(dir)
            .build()
            .await;
        for register in self.registrations {
            register(scx.clone()).await?;
        }
        let listener = Builder::new()
            .name(self.listener_name)
            .laddr(([127, 0, 0, 1], self.port).into())
            .allow_anonymous(true)
            .max_inflight(NonZeroU16::new(MAX_INFLIGHT).expect("non-zero"))
            .bind()?
            .tcp()?;
        let addr = serve(&scx, vec![listener])?[0];
        Ok(Broker {
            scx,
            addr,
            config_dir,
        })
    }
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

/// Waits for Ctrl-C or SIGTERM, how a broker process is told to stop.
pub async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// An in-process broker serving MQTT on `addr`.
pub struct Broker {
    pub scx: ServerContext,
    pub addr: SocketAddr,
    /// The plugins' configuration files.
    config_dir: tempfile::TempDir,
}

impl Broker {
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder::default()
    }

    /// A broker with the bridge started on `plugin_toml`.
    pub async fn start(plugin_toml: &str) -> Broker {
        Broker::builder()
            .config(PLUGIN_NAME, plugin_toml)
            .register_bridge()
            .start()
            .await
            .unwrap()
    }

    /// A broker with `rmqtt-acl` and then the bridge started.
    pub async fn start_with_acl(plugin_toml: &str, acl_toml: &str) -> Broker {
        Broker::builder()
            .config(PLUGIN_NAME, plugin_toml)
            .config(ACL_PLUGIN, acl_toml)
            .register_acl()
            .register_bridge()
            .start()
            .await
            .unwrap()
    }

    /// The plugin registered as [`PLUGIN_NAME`]: its `attrs()`, `Null` if there is none.
    pub async fn try_attrs(&self) -> Result<Value> {
        let Some(entry) = self.scx.plugins.get(PLUGIN_NAME) else {
            return Ok(Value::Null);
        };
        Ok(entry.to_info(PLUGIN_NAME).await?.to_json()?["attrs"].clone())
    }

    /// The bridge's `attrs()`.
    pub async fn attrs(&self) -> Value {
        self.try_attrs().await.unwrap()
    }

    /// Stats of `bridges[b].entries[e]`.
    pub async fn entry_stats(&self, b: usize, e: usize) -> Value {
        self.attrs().await["bridges"][b]["entries"][e]["stats"].clone()
    }

    /// Stats of `bridges[0].entries[e]` once `check` holds for them; fails naming
    /// `what` after 60 s.
    pub async fn stats_when(&self, e: usize, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let stats = |a: &Value| a["bridges"][0]["entries"][e]["stats"].clone();
        self.attrs_when(what, stats, check).await
    }

    /// The first bridge's spool status once `check` holds for it; fails naming `what`
    /// after 60 s.
    pub async fn spool_when(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let spool = |a: &Value| a["bridges"][0]["spool"].clone();
        self.attrs_when(what, spool, check).await
    }

    /// `part` of the attrs once `check` holds for it; fails naming `what` after 60 s.
    pub async fn attrs_when(
        &self,
        what: &str,
        part: impl Fn(&Value) -> Value,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = part(&self.attrs().await);
            if check(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {s}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until an entry has no record in flight, then returns its stats.
    pub async fn settled_stats(&self, b: usize, e: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.entry_stats(b, e).await;
            if s["in_flight"] == 0 || Instant::now() > deadline {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Replaces the bridge's configuration file and reloads it, as rmqtt's HTTP API
    /// `PUT …/config/reload` does.
    pub async fn reload(&self, plugin_toml: &str) -> Result<()> {
        let file = self.config_dir.path().join(format!("{PLUGIN_NAME}.toml"));
        std::fs::write(file, plugin_toml)?;
        self.scx.plugins.load_config(PLUGIN_NAME).await
    }

    pub async fn stop_plugin(&self) {
        self.scx.plugins.stop(PLUGIN_NAME).await.unwrap();
    }
}

/// Whether an entry that makes one record per message has matched `n` messages and
/// each of them is in flight or has its outcome: `matched` is counted as forwarding
/// starts, the outcome a moment later, so waiting for `matched` alone races the outcome.
pub fn accounted(stats: &Value, n: u64) -> bool {
    let in_flight = stats["in_flight"].as_u64().unwrap_or(0);
    stats["matched"] == n && outcome_total(stats) + in_flight == n
}

/// Sum of an entry's outcome counters.
pub fn outcome_total(stats: &Value) -> u64 {
    stats["outcomes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

/// A plugin config with one bridge at `bootstrap` and the given entries (TOML tables).
/// The bridge keys of a disk-mode bridge spooling under `dir`; `extra` adds buffer keys.
pub fn disk_buffer(dir: &std::path::Path, extra: &str) -> String {
    format!(
        "buffer = {{ mode = \"disk\", dir = \"{}\"{extra} }}",
        dir.display()
    )
}

pub fn bridge_config(bootstrap: &str, extra_bridge_keys: &str, entries: &str) -> String {
    format!(
        "[[bridges]]\nname = \"b1\"\nservers = \"{bootstrap}\"\nclient_id_prefix = \"test\"\n{extra_bridge_keys}\n[bridges.properties]\n\"message.timeout.ms\" = \"30000\"\n\"linger.ms\" = \"1\"\n{entries}"
    )
}
