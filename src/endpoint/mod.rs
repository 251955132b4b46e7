//! The scrape side: the plugin's own HTTP endpoint on `http_laddr`, its routes
//! (`http.rs`), the Prometheus collector that reads the running pipeline (`metrics.rs`)
//! and the health verdicts (`health.rs`), and how a configuration places the endpoint
//! ([`Endpoint`]): bound at start, moved or re-keyed by a reload.

mod health;
mod http;
mod metrics;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde_json::Value;

pub use http::ReloadFuture;

use crate::config::{ConfigError, PluginConfig};
use crate::observe::{Histograms, Reloads};
use crate::pipeline::Running;
use health::Health;
use http::{HttpServer, Routes};
use metrics::{PipelineCollector, ReloadCollector};

/// How long a replaced endpoint keeps its connections, so that the `POST /reload` that
/// moved it gets its answer.
const GRACE: Duration = Duration::from_secs(1);

/// What the routes read and call, per request: the running pipeline, the plugin's
/// reload counts, status document and reload.
#[derive(Clone)]
pub struct Source {
    pub running: Arc<Running>,
    pub reloads: Arc<Reloads>,
    pub status: Arc<dyn Fn() -> Value + Send + Sync>,
    pub reload: Arc<dyn Fn() -> ReloadFuture + Send + Sync>,
}

/// The endpoint on `http_laddr`, with its token (which a reload changes in place).
pub struct Endpoint {
    server: HttpServer,
    laddr: String,
    token: Arc<RwLock<Option<String>>>,
}

impl Endpoint {
    /// Binds `laddr` with its routes over `source`; `histograms` are the running
    /// pipeline's.
    pub fn start(
        laddr: &str,
        token: Option<String>,
        source: &Source,
        histograms: &Histograms,
    ) -> Result<Endpoint, ConfigError> {
        let registry = prometheus::Registry::new();
        let collector = PipelineCollector::new(source.running.clone());
        registry
            .register(Box::new(collector))
            .and_then(|()| {
                registry.register(Box::new(ReloadCollector::new(source.reloads.clone())))
            })
            .and_then(|()| histograms.register(&registry))
            .map_err(|e| ConfigError::field("http_laddr", format!("metrics: {e}")))?;
        let health = Arc::new(Health::new(source.running.clone()));
        let sampler = health.clone().sample_forever();
        let token = Arc::new(RwLock::new(token));
        let (status, reload) = (source.status.clone(), source.reload.clone());
        let routes = Routes {
            registry,
            token: token.clone(),
            status: Box::new(move || status()),
            health: Box::new(move || health.check()),
            reload: Box::new(move || reload()),
        };
        let mut server = HttpServer::start(laddr, routes)?;
        server.run_alongside(sampler);
        log::info!(
            "{}: serving /metrics, /health, /status and POST /reload on {}",
            crate::PLUGIN_NAME,
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
    pub fn change(
        current: Option<&Endpoint>,
        config: &PluginConfig,
        source: &Source,
        histograms: &Histograms,
    ) -> Result<Change, ConfigError> {
        let laddr = current.map(|e| e.laddr.as_str());
        let token = config.http_bearer_token.clone();
        Ok(match (laddr, &config.http_laddr) {
            (Some(a), Some(b)) if a == b => Change::Token(token),
            (None, None) => Change::Token(None),
            (_, Some(laddr)) => {
                Change::Move(Some(Endpoint::start(laddr, token, source, histograms)?))
            }
            (Some(_), None) => Change::Move(None),
        })
    }
}

/// How a reload changes the endpoint.
pub enum Change {
    /// Same address: only the token may change, in place.
    Token(Option<String>),
    /// Another address (already bound), or none.
    Move(Option<Endpoint>),
}

impl Change {
    /// Applies the change to the endpoint in `slot`; whether the endpoint moved.
    pub fn apply(self, slot: &mut Option<Endpoint>) -> bool {
        match self {
            Change::Token(token) => {
                if let Some(e) = slot {
                    *e.token.write() = token;
                }
                false
            }
            Change::Move(next) => {
                if let Some(old) = std::mem::replace(slot, next) {
                    tokio::spawn(async move {
                        tokio::time::sleep(GRACE).await;
                        drop(old.server);
                    });
                }
                true
            }
        }
    }
}
