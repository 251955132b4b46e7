//! The rmqtt plugin's lifecycle: the configuration is read and its modules compiled when
//! the plugin is created (so a bad file refuses the start), the pipeline is built on
//! start, and stop flushes what is in flight.

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Register, Type};
use rmqtt::plugin::{PackageInfo, Plugin};
use serde_json::{json, Value};

use crate::config::{ConfigError, PluginConfig};
use crate::hooks::{HookState, PublishHook, RefusalHook};
use crate::observe::{Health, Histograms, HttpServer, PipelineCollector, Routes};
use crate::pipeline::{Modules, Pipeline};

pub struct BridgePlugin {
    scx: ServerContext,
    name: &'static str,
    loaded: Loaded,
    register: Box<dyn Register>,
    hooks: Arc<HookState>,
    /// The last run's `bridges` attrs, kept after stop so that final counts stay
    /// visible (the pipeline itself is dropped, with its producers). Shared with the
    /// HTTP endpoint's `/status`.
    stopped: Arc<Mutex<Option<Value>>>,
    /// The endpoint on `http_laddr` while the plugin runs.
    http: Option<HttpServer>,
}

/// A configuration, read, checked and with its modules compiled.
struct Loaded {
    config: PluginConfig,
    /// As rmqtt read it, for `get_config`.
    raw: Value,
    modules: Modules,
}

impl Loaded {
    fn read(scx: &ServerContext, name: &str) -> rmqtt::Result<Loaded> {
        let raw: config::Value = scx.plugins.read_config(name)?;
        let raw_json = raw
            .clone()
            .try_deserialize::<Value>()
            .unwrap_or(Value::Null);
        let config = PluginConfig::from_value(raw)?;
        if config.task_queue_capacity.is_some() || config.task_concurrency_limit.is_some() {
            log::info!("{name}: task_queue_capacity and task_concurrency_limit are accepted for compatibility and have no effect");
        }
        let modules = Modules::compile(&config)?;
        Ok(Loaded {
            config,
            raw: raw_json,
            modules,
        })
    }
}

impl BridgePlugin {
    /// The factory `register!` calls.
    pub async fn new(scx: ServerContext, name: &'static str) -> rmqtt::Result<Self> {
        let loaded = Loaded::read(&scx, name)?;
        let register = scx.extends.hook_mgr().register();
        Ok(BridgePlugin {
            scx,
            name,
            loaded,
            register,
            hooks: Arc::new(HookState::default()),
            stopped: Arc::default(),
            http: None,
        })
    }
}

impl PackageInfo for BridgePlugin {
    fn name(&self) -> &str {
        self.name
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn descr(&self) -> Option<&str> {
        Some(env!("CARGO_PKG_DESCRIPTION"))
    }
}

#[async_trait]
impl Plugin for BridgePlugin {
    async fn init(&mut self) -> rmqtt::Result<()> {
        let publish = Box::new(PublishHook(self.hooks.clone()));
        self.register.add(Type::MessagePublish, publish).await;
        let refusals = Box::new(RefusalHook(self.hooks.clone()));
        self.register
            .add_priority(Type::MessagePublishCheckAcl, u32::MAX, refusals)
            .await;
        Ok(())
    }

    async fn get_config(&self) -> rmqtt::Result<Value> {
        Ok(self.loaded.raw.clone())
    }

    /// Re-reads and checks the file; the new configuration applies at the next start.
    async fn load_config(&mut self) -> rmqtt::Result<()> {
        // Logged too: a caller such as the HTTP API may answer without the reason.
        self.loaded = Loaded::read(&self.scx, self.name).inspect_err(|e| {
            log::warn!("{}: configuration reload refused: {e}", self.name);
        })?;
        if self.hooks.running.read().is_some() {
            log::info!(
                "{}: configuration reloaded; it applies when the plugin is restarted",
                self.name
            );
        }
        Ok(())
    }

    async fn start(&mut self) -> rmqtt::Result<()> {
        let node_id = self.scx.node.id();
        let refuse = |e: ConfigError| rmqtt::Error::msg(format!("{}: {e}", self.name));
        let histograms = Histograms::default();
        let http = self.start_http(&histograms).map_err(refuse)?;
        let loaded = &self.loaded;
        let pipeline = Pipeline::start(&loaded.config, node_id, &loaded.modules, &histograms)
            .await
            .map_err(|e: ConfigError| rmqtt::Error::msg(format!("{}: {e}", self.name)))?;
        *self.hooks.running.write() = Some(Arc::new(pipeline));
        self.http = http;
        self.register.start().await;
        log::info!("{}: started", self.name);
        Ok(())
    }

    async fn stop(&mut self) -> rmqtt::Result<bool> {
        self.register.stop().await;
        self.http = None;
        let running = self.hooks.running.write().take();
        if let Some(pipeline) = running {
            // Only the final counters are kept: dropping the pipeline destroys its
            // producers, which would otherwise keep reconnecting to a Kafka that may
            // be gone (the demo's embedded one is stopped right after).
            let last = tokio::task::spawn_blocking(move || {
                pipeline.shut_down();
                pipeline.to_json()
            })
            .await?;
            *self.stopped.lock() = Some(last);
        }
        log::info!("{}: stopped", self.name);
        Ok(true)
    }

    async fn attrs(&self) -> Value {
        status(self.scx.node.id(), &self.hooks, &self.stopped)
    }
}

impl BridgePlugin {
    /// Binds `http_laddr`, if set, with its routes over this plugin's state.
    fn start_http(&self, histograms: &Histograms) -> Result<Option<HttpServer>, ConfigError> {
        let config = &self.loaded.config;
        let Some(laddr) = &config.http_laddr else {
            return Ok(None);
        };
        let registry = prometheus::Registry::new();
        let collector = PipelineCollector::new(self.hooks.clone());
        registry
            .register(Box::new(collector))
            .and_then(|()| histograms.register(&registry))
            .map_err(|e| ConfigError::field("http_laddr", format!("metrics: {e}")))?;
        let (node_id, hooks, stopped) =
            (self.scx.node.id(), self.hooks.clone(), self.stopped.clone());
        let health = Arc::new(Health::new(self.hooks.clone()));
        let sampler = health.clone().sample_forever();
        let routes = Routes {
            registry,
            token: config.http_bearer_token.clone(),
            status: Box::new(move || status(node_id, &hooks, &stopped)),
            health: Box::new(move || health.check()),
        };
        let mut server = HttpServer::start(laddr, routes)?;
        server.run_alongside(sampler);
        log::info!(
            "{}: serving /metrics, /health and /status on {}",
            self.name,
            server.local_addr()
        );
        Ok(Some(server))
    }
}

/// The `attrs()` document, also served as `/status`.
fn status(node_id: u64, hooks: &HookState, stopped: &Mutex<Option<Value>>) -> Value {
    let running = hooks.running.read().clone();
    let (is_running, bridges) = match running {
        Some(p) => (true, Some(p.to_json())),
        None => (false, stopped.lock().clone()),
    };
    json!({
        "running": is_running,
        "node_id": node_id,
        "refusals": hooks.refusals.to_json(),
        "bridges": bridges.unwrap_or_else(|| Value::Array(Vec::new())),
    })
}
