//! The rmqtt plugin: configuration and modules are loaded when the plugin is created (so a
//! bad file refuses the start), producers and instances are created on start, and stop
//! flushes what is in flight.

use std::sync::Arc;

use anyhow::anyhow;
use async_trait::async_trait;
use parking_lot::Mutex;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Register, Type};
use rmqtt::plugin::{PackageInfo, Plugin};
use serde_json::{json, Value};

use crate::bridge::{Bridges, Modules};
use crate::config::{PluginConfig, CONFIG_FILE};
use crate::hook::{HookState, PublishHook, RefusalHook};
use crate::transform::{EngineLimits, ModuleSpec, TransformEngine};

pub struct BridgePlugin {
    scx: ServerContext,
    name: &'static str,
    config: PluginConfig,
    raw_config: Value,
    modules: Modules,
    register: Box<dyn Register>,
    hooks: Arc<HookState>,
    /// The bridges of the last run, kept after stop so that final counts stay visible.
    stopped: Mutex<Option<Arc<Bridges>>>,
}

impl BridgePlugin {
    /// The factory `register!` calls.
    pub async fn new(scx: ServerContext, name: &'static str) -> rmqtt::Result<Self> {
        let (config, raw_config, modules) = load(&scx, name)?;
        let register = scx.extends.hook_mgr().register();
        Ok(BridgePlugin {
            scx,
            name,
            config,
            raw_config,
            modules,
            register,
            hooks: Arc::new(HookState::default()),
            stopped: Mutex::new(None),
        })
    }
}

/// Reads and checks the configuration, and compiles every module it names.
fn load(scx: &ServerContext, name: &str) -> anyhow::Result<(PluginConfig, Value, Modules)> {
    let raw: config::Value = scx.plugins.read_config(name)?;
    let raw_json = raw
        .clone()
        .try_deserialize::<Value>()
        .unwrap_or(Value::Null);
    let config = PluginConfig::from_value(raw)?;
    if config.task_queue_capacity.is_some() || config.task_concurrency_limit.is_some() {
        log::info!("{name}: task_queue_capacity and task_concurrency_limit are accepted for compatibility and have no effect");
    }
    let modules = compile_modules(&config)?;
    Ok((config, raw_json, modules))
}

fn compile_modules(config: &PluginConfig) -> anyhow::Result<Modules> {
    let specs: Vec<_> = config
        .enabled_bridges()
        .flat_map(|(bi, b)| {
            b.entries
                .iter()
                .enumerate()
                .filter_map(move |(ei, e)| e.transform.as_ref().map(|t| (bi, b, ei, t)))
        })
        .collect();
    if specs.is_empty() {
        return Ok(Modules::default());
    }
    let limits = EngineLimits {
        instances: specs.iter().map(|(.., t)| t.instances as u32).sum(),
        max_memory: specs.iter().map(|(.., t)| t.max_memory).max().unwrap_or(0),
    };
    let engine = Arc::new(TransformEngine::new(limits)?);
    let mut modules = Modules {
        engine: Some(engine.clone()),
        ..Default::default()
    };
    for (bi, b, ei, t) in specs {
        let spec = ModuleSpec {
            path: t.module.clone(),
            label: format!("bridge \"{}\" entry {ei}", b.name),
            timeout: t.timeout,
            max_memory: t.max_memory,
            config: t.config.clone(),
        };
        let module = engine.load(&spec).map_err(|e| {
            anyhow!(
                "{CONFIG_FILE}: bridge \"{}\", entry {ei}, field `transform.module`: {e}",
                b.name
            )
        })?;
        modules.by_entry.insert((bi, ei), module);
    }
    Ok(modules)
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
        self.register
            .add(
                Type::MessagePublish,
                Box::new(PublishHook(self.hooks.clone())),
            )
            .await;
        self.register
            .add_priority(
                Type::MessagePublishCheckAcl,
                u32::MAX,
                Box::new(RefusalHook(self.hooks.acks.clone())),
            )
            .await;
        Ok(())
    }

    async fn get_config(&self) -> rmqtt::Result<Value> {
        Ok(self.raw_config.clone())
    }

    /// Re-reads and checks the file; the new configuration applies at the next start.
    async fn load_config(&mut self) -> rmqtt::Result<()> {
        let (config, raw_config, modules) = load(&self.scx, self.name)?;
        self.config = config;
        self.raw_config = raw_config;
        self.modules = modules;
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
        let bridges = Bridges::start(
            &self.config,
            node_id,
            &self.modules,
            self.hooks.acks.clone(),
        )
        .await
        .map_err(|e| anyhow!("{}: {e}", self.name))?;
        *self.hooks.running.write() = Some(Arc::new(bridges));
        self.register.start().await;
        log::info!("{}: started", self.name);
        Ok(())
    }

    async fn stop(&mut self) -> rmqtt::Result<bool> {
        self.register.stop().await;
        let running = self.hooks.running.write().take();
        if let Some(bridges) = running {
            let b = bridges.clone();
            tokio::task::spawn_blocking(move || b.shut_down()).await?;
            *self.stopped.lock() = Some(bridges);
        }
        log::info!("{}: stopped", self.name);
        Ok(true)
    }

    async fn attrs(&self) -> Value {
        let running = self.hooks.running.read().clone();
        let (is_running, bridges) = match running {
            Some(b) => (true, Some(b)),
            None => (false, self.stopped.lock().clone()),
        };
        json!({
            "running": is_running,
            "node_id": self.scx.node.id(),
            "bridges": bridges.map_or(Value::Array(Vec::new()), |b| b.to_json()),
        })
    }
}
