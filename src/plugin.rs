//! The rmqtt plugin: registration, hooks, and the `Plugin` trait's calls handed to
//! [`Control`], which owns the configuration and what runs from it. The configuration
//! is read and its modules compiled when the plugin is created (so a bad file refuses
//! the start), the pipeline is built on start, `load_config` reloads it while it runs,
//! and stop flushes what is in flight.

use std::sync::Arc;

use async_trait::async_trait;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Register, Type};
use rmqtt::plugin::{PackageInfo, Plugin};
use serde_json::Value;

use crate::control::Control;
use crate::hooks::PublishHook;

pub struct BridgePlugin {
    name: &'static str,
    register: Box<dyn Register>,
    control: Arc<Control>,
}

impl BridgePlugin {
    /// The factory `register!` calls.
    pub async fn new(scx: ServerContext, name: &'static str) -> rmqtt::Result<Self> {
        let register = scx.extends.hook_mgr().register();
        let control = Control::new(scx, name)?;
        Ok(BridgePlugin {
            name,
            register,
            control,
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
        let publish = Box::new(PublishHook {
            running: self.control.running().clone(),
            refusals: self.control.refusals().clone(),
        });
        self.register.add(Type::MessagePublish, publish).await;
        Ok(())
    }

    async fn get_config(&self) -> rmqtt::Result<Value> {
        Ok(self.control.raw_config().await)
    }

    /// Re-reads the file and, while the plugin runs, applies it without a restart
    /// (rmqtt's HTTP API `PUT …/config/reload` and SIGHUP in rmqttd come here).
    async fn load_config(&mut self) -> rmqtt::Result<()> {
        self.control
            .reload()
            .await
            .map(drop)
            .map_err(rmqtt::Error::msg)
    }

    async fn start(&mut self) -> rmqtt::Result<()> {
        let _ = tokio::task::spawn_blocking(crate::observe::clock::calibrate).await;
        self.control
            .start()
            .await
            .map_err(|e| rmqtt::Error::msg(format!("{}: {e}", self.name)))?;
        self.register.start().await;
        log::info!("{}: started", self.name);
        Ok(())
    }

    async fn stop(&mut self) -> rmqtt::Result<bool> {
        self.register.stop().await;
        self.control.stop().await;
        log::info!("{}: stopped", self.name);
        Ok(true)
    }

    async fn attrs(&self) -> Value {
        self.control.status()
    }
}
