//! The one owner of the configuration and of what runs from it: the pipeline, the
//! plugin's HTTP endpoint and the drains that a reload leaves behind. Start, reload and
//! stop are serialized here, whichever trigger calls them: the plugin manager (and
//! through it rmqtt's HTTP API and SIGHUP in rmqttd) or `POST /reload` on the endpoint.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rmqtt::context::ServerContext;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::config::{ConfigError, PluginConfig};
use crate::endpoint::{Endpoint, Source};
use crate::hooks::{RefusalRegistration, Refusals};
use crate::observe::{Histograms, Reloads};
use crate::pipeline::{Pipeline, Retired, Running};
use crate::schema::Schemas;
use crate::transform::Modules;

pub struct Control {
    scx: ServerContext,
    name: &'static str,
    /// The pipeline that takes publishes now, shared with the publish hook and the
    /// endpoint.
    running: Arc<Running>,
    /// Every reload's result, for `/status` and `/metrics`.
    reloads: Arc<Reloads>,
    refusals: Arc<Refusals>,
    registration: RefusalRegistration,
    /// The last run's `bridges` attrs, kept after stop so that final counts stay
    /// visible (the pipeline itself is dropped, with its producers).
    stopped: Mutex<Option<Value>>,
    state: tokio::sync::Mutex<State>,
    /// What the endpoint's routes read and call.
    source: Source,
}

struct State {
    loaded: Loaded,
    /// While running: the histograms every entry observes into.
    histograms: Option<Histograms>,
    http: Option<Endpoint>,
    /// Replaced producers draining after reloads; stop waits for them.
    drains: Vec<JoinHandle<()>>,
}

/// A configuration, read, checked and with its modules compiled.
struct Loaded {
    config: PluginConfig,
    /// As rmqtt read it, for `get_config`, with the bearer token hidden.
    raw: Value,
    modules: Modules,
    /// Its schemas: files compiled; registry ones fetched at start and reload.
    schemas: Schemas,
}

impl Loaded {
    fn read(scx: &ServerContext, name: &str) -> rmqtt::Result<Loaded> {
        let raw: config::Value = scx.plugins.read_config(name)?;
        let mut raw_json = raw
            .clone()
            .try_deserialize::<Value>()
            .unwrap_or(Value::Null);
        hide_token(&mut raw_json);
        let config = PluginConfig::from_value(raw)?;
        if config.task_queue_capacity.is_some() || config.task_concurrency_limit.is_some() {
            log::info!("{name}: task_queue_capacity and task_concurrency_limit are accepted for compatibility and have no effect");
        }
        let modules = Modules::compile(&config)?;
        let schemas = Schemas::load(&config)?;
        Ok(Loaded {
            config,
            raw: raw_json,
            modules,
            schemas,
        })
    }
}

impl Control {
    /// Reads the configuration and compiles its modules, so a bad file refuses the
    /// plugin's creation.
    pub fn new(scx: ServerContext, name: &'static str) -> rmqtt::Result<Arc<Control>> {
        let loaded = Loaded::read(&scx, name)?;
        let refusals = Arc::new(Refusals::default());
        let registration = RefusalRegistration::new(&scx, refusals.clone());
        let running = Arc::new(Running::default());
        let reloads = Arc::new(Reloads::default());
        Ok(Arc::new_cyclic(|me| {
            let (status, reload) = (me.clone(), me.clone());
            let source = Source {
                running: running.clone(),
                reloads: reloads.clone(),
                status: Arc::new(move || {
                    status
                        .upgrade()
                        .map_or(Value::Null, |c: Arc<Control>| c.status())
                }),
                reload: Arc::new(move || {
                    let control = reload.upgrade();
                    Box::pin(async move {
                        match control {
                            Some(c) => c.reload().await,
                            None => Err("the plugin is gone".into()),
                        }
                    })
                }),
            };
            Control {
                scx,
                name,
                running,
                reloads,
                refusals,
                registration,
                stopped: Mutex::new(None),
                state: tokio::sync::Mutex::new(State {
                    loaded,
                    histograms: None,
                    http: None,
                    drains: Vec::new(),
                }),
                source,
            }
        }))
    }

    /// The running pipeline, as the publish hook reads it.
    pub fn running(&self) -> &Arc<Running> {
        &self.running
    }

    /// The refusals the publish hook records and the ACL hook answers with.
    pub fn refusals(&self) -> &Arc<Refusals> {
        &self.refusals
    }

    pub async fn raw_config(&self) -> Value {
        self.state.lock().await.loaded.raw.clone()
    }

    /// Binds the endpoint, then builds the pipeline and lets publishes through it.
    pub async fn start(&self) -> Result<(), ConfigError> {
        let mut state = self.state.lock().await;
        let histograms = Histograms::default();
        let config = &state.loaded.config;
        let http = match &config.http_laddr {
            Some(laddr) => {
                let token = config.http_bearer_token.clone();
                Some(Endpoint::start(laddr, token, &self.source, &histograms)?)
            }
            None => None,
        };
        let loaded = &state.loaded;
        loaded.schemas.fetch(&loaded.config, None).await?;
        let node_id = self.scx.node.id();
        let pipeline = Pipeline::start(
            &loaded.config,
            node_id,
            &loaded.modules,
            &loaded.schemas,
            &histograms,
        )
        .await?;
        self.registration.prepare_for(&pipeline).await;
        self.running.replace(Some(Arc::new(pipeline)));
        state.http = http;
        state.histograms = Some(histograms);
        Ok(())
    }

    /// Closes the endpoint, waits for reload drains, then flushes the pipeline (up to
    /// each bridge's `shutdown_timeout`), keeping its final counts for `attrs()`.
    pub async fn stop(&self) {
        let mut state = self.state.lock().await;
        state.http = None;
        state.histograms = None;
        state.loaded.schemas.stop();
        for drain in state.drains.drain(..) {
            let _ = drain.await;
        }
        if let Some(pipeline) = self.running.replace(None) {
            let last = tokio::task::spawn_blocking(move || {
                pipeline.shut_down();
                pipeline.to_json()
            })
            .await;
            *self.stopped.lock() = last.ok();
        }
        self.registration.stop().await;
    }

    /// Re-reads the file and, while running, applies it: see docs/operating.md, "Changing
    /// the configuration while it runs". Answers what changed, or why nothing did.
    pub async fn reload(&self) -> Result<Value, String> {
        let mut state = self.state.lock().await;
        let result = self.reload_locked(&mut state).await;
        match &result {
            Ok(changes) => log::info!("{}: configuration reloaded: {changes}", self.name),
            Err(e) => log::warn!("{}: configuration reload refused: {e}", self.name),
        }
        self.reloads.record(&result);
        result
    }

    async fn reload_locked(&self, state: &mut State) -> Result<Value, String> {
        let loaded = Loaded::read(&self.scx, self.name).map_err(|e| format!("{e}"))?;
        let (Some(old), Some(histograms)) = (self.running.get(), &state.histograms) else {
            state.loaded = loaded;
            return Ok(json!({"reloaded": true, "running": false}));
        };
        let refuse = |e: ConfigError| format!("{}: {e}", self.name);
        let endpoint = Endpoint::change(
            state.http.as_ref(),
            &loaded.config,
            &self.source,
            histograms,
        )
        .map_err(refuse)?;
        loaded
            .schemas
            .fetch(&loaded.config, Some(&state.loaded.schemas))
            .await
            .map_err(refuse)?;
        let node_id = self.scx.node.id();
        let reloaded = old
            .reload(
                &loaded.config,
                node_id,
                &loaded.modules,
                &loaded.schemas,
                histograms,
            )
            .await
            .map_err(refuse)?;
        // Everything is built and checked: switch.
        let (pipeline, retired, changes) = reloaded.commit();
        self.registration.prepare_for(&pipeline).await;
        self.running.replace(Some(Arc::new(pipeline)));
        state.loaded = loaded;
        let endpoint_moved = endpoint.apply(&mut state.http);
        state.drains.retain(|d| !d.is_finished());
        state.drains.push(tokio::spawn(retire(old, retired)));
        Ok(json!({
            "reloaded": true,
            "running": true,
            "changes": changes,
            "endpoint_moved": endpoint_moved,
        }))
    }

    /// The `attrs()` document, also served as `/status`.
    pub fn status(&self) -> Value {
        let (is_running, bridges) = match self.running.get() {
            Some(p) => (true, Some(p.to_json())),
            None => (false, self.stopped.lock().clone()),
        };
        json!({
            "running": is_running,
            "node_id": self.scx.node.id(),
            "refusals": self.refusals.to_json(),
            "reloads": self.reloads.to_json(),
            "bridges": bridges.unwrap_or_else(|| Value::Array(Vec::new())),
        })
    }
}

/// What `get_config` shows of `http_bearer_token`: rmqtt's HTTP API serves the
/// configuration to whoever may read it, and the token is the key to `POST /reload`.
const HIDDEN_TOKEN: &str = "<hidden>";

fn hide_token(raw: &mut Value) {
    if let Some(token) = raw.get_mut("http_bearer_token") {
        *token = Value::from(HIDDEN_TOKEN);
    }
}

/// Waits until no publish uses the replaced pipeline any more (each holds it for its
/// whole forward), then drains what it retired and lets it go.
async fn retire(old: Arc<Pipeline>, retired: Retired) {
    while Arc::strong_count(&old) > 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let _ = tokio::task::spawn_blocking(move || {
        retired.drain();
        drop(old);
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_hidden_and_the_rest_kept() {
        let mut raw = json!({"http_laddr": "127.0.0.1:9464", "http_bearer_token": "s3cret"});
        hide_token(&mut raw);
        assert_eq!(raw["http_bearer_token"], HIDDEN_TOKEN);
        assert_eq!(raw["http_laddr"], "127.0.0.1:9464");
        let mut without = json!({"bridges": []});
        hide_token(&mut without);
        assert_eq!(without, json!({"bridges": []}));
    }
}
