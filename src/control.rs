//! The one owner of the configuration and of what runs from it: the pipeline, the
//! plugin's HTTP endpoint and the drains that a reload leaves behind. Start, reload and
//! stop are serialized here, whichever trigger calls them: the plugin manager (and
//! through it rmqtt's HTTP API and SIGHUP in rmqttd) or `POST /reload` on the endpoint.

use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rmqtt::context::ServerContext;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::config::{ConfigError, PluginConfig};
use crate::hooks::{HookState, RefusalRegistration};
use crate::observe::{Health, Histograms, HttpServer, PipelineCollector, Routes};
use crate::pipeline::{Modules, Pipeline, Retired};

/// How long a replaced endpoint keeps its connections, so that the `POST /reload` that
/// moved it gets its answer.
const ENDPOINT_GRACE: Duration = Duration::from_secs(1);

pub struct Control {
    scx: ServerContext,
    name: &'static str,
    hooks: Arc<HookState>,
    refusals: RefusalRegistration,
    /// The last run's `bridges` attrs, kept after stop so that final counts stay
    /// visible (the pipeline itself is dropped, with its producers).
    stopped: Mutex<Option<Value>>,
    state: tokio::sync::Mutex<State>,
    /// Itself, for the endpoint's routes (which the state owns).
    me: Weak<Control>,
}

struct State {
    loaded: Loaded,
    /// While running: the histograms every entry observes into.
    histograms: Option<Histograms>,
    http: Option<Endpoint>,
    /// Replaced producers draining after reloads; stop waits for them.
    drains: Vec<JoinHandle<()>>,
}

/// The endpoint on `http_laddr`, with its token (which a reload changes in place).
struct Endpoint {
    server: HttpServer,
    laddr: String,
    token: Arc<RwLock<Option<String>>>,
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

impl Control {
    /// Reads the configuration and compiles its modules, so a bad file refuses the
    /// plugin's creation.
    pub fn new(
        scx: ServerContext,
        name: &'static str,
        hooks: Arc<HookState>,
    ) -> rmqtt::Result<Arc<Control>> {
        let loaded = Loaded::read(&scx, name)?;
        let refusals = RefusalRegistration::new(&scx, hooks.clone());
        Ok(Arc::new_cyclic(|me| Control {
            scx,
            name,
            hooks,
            refusals,
            stopped: Mutex::new(None),
            state: tokio::sync::Mutex::new(State {
                loaded,
                histograms: None,
                http: None,
                drains: Vec::new(),
            }),
            me: me.clone(),
        }))
    }

    pub async fn raw_config(&self) -> Value {
        self.state.lock().await.loaded.raw.clone()
    }

    /// Binds the endpoint, then builds the pipeline and lets publishes through it.
    pub async fn start(&self) -> Result<(), ConfigError> {
        let mut state = self.state.lock().await;
        let histograms = Histograms::default();
        let http = match &state.loaded.config.http_laddr {
            Some(laddr) => Some(self.endpoint(laddr, &state.loaded.config, &histograms)?),
            None => None,
        };
        let loaded = &state.loaded;
        let node_id = self.scx.node.id();
        let pipeline =
            Pipeline::start(&loaded.config, node_id, &loaded.modules, &histograms).await?;
        self.refusals.prepare_for(&pipeline).await;
        *self.hooks.running.write() = Some(Arc::new(pipeline));
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
        for drain in state.drains.drain(..) {
            let _ = drain.await;
        }
        let running = self.hooks.running.write().take();
        if let Some(pipeline) = running {
            let last = tokio::task::spawn_blocking(move || {
                pipeline.shut_down();
                pipeline.to_json()
            })
            .await;
            *self.stopped.lock() = last.ok();
        }
        self.refusals.stop().await;
    }

    /// Re-reads the file and, while running, applies it: see the README's "Changing
    /// the configuration while it runs". Answers what changed, or why nothing did.
    pub async fn reload(&self) -> Result<Value, String> {
        let mut state = self.state.lock().await;
        let result = self.reload_locked(&mut state).await;
        match &result {
            Ok(changes) => log::info!("{}: configuration reloaded: {changes}", self.name),
            Err(e) => log::warn!("{}: configuration reload refused: {e}", self.name),
        }
        result
    }

    async fn reload_locked(&self, state: &mut State) -> Result<Value, String> {
        let loaded = Loaded::read(&self.scx, self.name).map_err(|e| format!("{e}"))?;
        let running = self.hooks.running.read().clone();
        let (Some(old), Some(histograms)) = (running, &state.histograms) else {
            state.loaded = loaded;
            return Ok(json!({"reloaded": true, "running": false}));
        };
        let refuse = |e: ConfigError| format!("{}: {e}", self.name);
        let endpoint = self
            .next_endpoint(state, &loaded.config, histograms)
            .map_err(refuse)?;
        let node_id = self.scx.node.id();
        let reloaded = old
            .reload(&loaded.config, node_id, &loaded.modules, histograms)
            .await
            .map_err(refuse)?;
        // Everything is built and checked: switch.
        let (pipeline, retired, changes) = reloaded.commit();
        self.refusals.prepare_for(&pipeline).await;
        *self.hooks.running.write() = Some(Arc::new(pipeline));
        state.loaded = loaded;
        let endpoint_moved = endpoint.apply(state);
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
        let running = self.hooks.running.read().clone();
        let (is_running, bridges) = match running {
            Some(p) => (true, Some(p.to_json())),
            None => (false, self.stopped.lock().clone()),
        };
        json!({
            "running": is_running,
            "node_id": self.scx.node.id(),
            "refusals": self.hooks.refusals.to_json(),
            "bridges": bridges.unwrap_or_else(|| Value::Array(Vec::new())),
        })
    }

    /// Binds `laddr` with its routes over this plugin's state.
    fn endpoint(
        &self,
        laddr: &str,
        config: &PluginConfig,
        histograms: &Histograms,
    ) -> Result<Endpoint, ConfigError> {
        let registry = prometheus::Registry::new();
        let collector = PipelineCollector::new(self.hooks.clone());
        registry
            .register(Box::new(collector))
            .and_then(|()| histograms.register(&registry))
            .map_err(|e| ConfigError::field("http_laddr", format!("metrics: {e}")))?;
        let health = Arc::new(Health::new(self.hooks.clone()));
        let sampler = health.clone().sample_forever();
        let token = Arc::new(RwLock::new(config.http_bearer_token.clone()));
        let (status, reload) = (self.me.clone(), self.me.clone());
        let routes = Routes {
            registry,
            token: token.clone(),
            status: Box::new(move || status.upgrade().map_or(Value::Null, |c| c.status())),
            health: Box::new(move || health.check()),
            reload: Box::new(move || {
                let control = reload.upgrade();
                Box::pin(async move {
                    match control {
                        Some(c) => c.reload().await,
                        None => Err("the plugin is gone".into()),
                    }
                })
            }),
        };
        let mut server = HttpServer::start(laddr, routes)?;
        server.run_alongside(sampler);
        log::info!(
            "{}: serving /metrics, /health, /status and POST /reload on {}",
            self.name,
            server.local_addr()
        );
        Ok(Endpoint {
            server,
            laddr: laddr.to_owned(),
            token,
        })
    }

    /// What the endpoint becomes under `config`: a new address is bound now, so that a
    /// busy one refuses the reload before anything changed.
    fn next_endpoint(
        &self,
        state: &State,
        config: &PluginConfig,
        histograms: &Histograms,
    ) -> Result<EndpointChange, ConfigError> {
        let current = state.http.as_ref().map(|e| e.laddr.as_str());
        Ok(match (current, &config.http_laddr) {
            (Some(a), Some(b)) if a == b => EndpointChange::Token(config.http_bearer_token.clone()),
            (None, None) => EndpointChange::Token(None),
            (_, Some(laddr)) => {
                EndpointChange::Move(Some(self.endpoint(laddr, config, histograms)?))
            }
            (Some(_), None) => EndpointChange::Move(None),
        })
    }
}

/// How a reload changes the endpoint.
enum EndpointChange {
    /// Same address: only the token may change, in place.
    Token(Option<String>),
    /// Another address (already bound), or none.
    Move(Option<Endpoint>),
}

impl EndpointChange {
    /// Applies the change; whether the endpoint moved.
    fn apply(self, state: &mut State) -> bool {
        match self {
            EndpointChange::Token(token) => {
                if let Some(e) = &state.http {
                    *e.token.write() = token;
                }
                false
            }
            EndpointChange::Move(next) => {
                if let Some(old) = std::mem::replace(&mut state.http, next) {
                    tokio::spawn(async move {
                        tokio::time::sleep(ENDPOINT_GRACE).await;
                        drop(old.server);
                    });
                }
                true
            }
        }
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
