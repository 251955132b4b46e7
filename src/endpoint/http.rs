//! The plugin's own HTTP endpoint, on `http_laddr`: `/metrics` (Prometheus text),
//! `/health` (JSON per bridge), `/status` (the `attrs()` document) and `POST /reload`
//! (the configuration reload, answered with what changed or why not). The plugin serves
//! it itself rather than through rmqtt-http-api, so a broker that embeds the plugin gets
//! it too. With `http_bearer_token`, every route but `/health` needs the token: health
//! checks (load balancers, orchestrators) rarely carry credentials and learn little.

use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::RwLock;
use prometheus::{Encoder, Registry, TextEncoder};
use serde_json::Value;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::ConfigError;

/// A reload in progress: what changed, or the refusal.
pub type ReloadFuture = Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;

/// What the routes answer from; `status`, `health` and `reload` are the plugin's,
/// computed per request.
pub struct Routes {
    pub registry: Registry,
    /// `http_bearer_token`; a reload may change it.
    pub token: Arc<RwLock<Option<String>>>,
    pub status: Box<dyn Fn() -> Value + Send + Sync>,
    /// The health document and whether every bridge is up.
    pub health: Box<dyn Fn() -> (Value, bool) + Send + Sync>,
    /// Runs a reload: what changed, or the refusal.
    pub reload: Box<dyn Fn() -> ReloadFuture + Send + Sync>,
}

/// A running endpoint; dropping it closes the listener, its open connections and the
/// tasks that serve its routes.
pub struct HttpServer {
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `laddr` now, so that a busy or bad address refuses the plugin's start with
    /// an error naming the field, then serves `routes` on the broker's runtime.
    pub fn start(laddr: &str, routes: Routes) -> Result<HttpServer, ConfigError> {
        let refuse = |e: std::io::Error| {
            ConfigError::field("http_laddr", format!("cannot listen on {laddr}: {e}"))
        };
        let std_listener = TcpListener::bind(laddr).map_err(refuse)?;
        std_listener.set_nonblocking(true).map_err(refuse)?;
        let addr = std_listener.local_addr().map_err(refuse)?;
        let listener = tokio::net::TcpListener::from_std(std_listener).map_err(refuse)?;
        let task = tokio::spawn(accept_loop(listener, Arc::new(routes)));
        Ok(HttpServer {
            addr,
            tasks: vec![task],
        })
    }

    /// Runs `task` (such as the health sampler) for as long as the endpoint does.
    pub fn run_alongside(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        // The connections live in the loop's JoinSet, which aborts them when dropped.
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, routes: Arc<Routes>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                log::warn!("{}: http_laddr: accept failed: {e}", crate::PLUGIN_NAME);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        // Reap finished connections so the set does not grow with every request.
        while connections.try_join_next().is_some() {}
        let routes = routes.clone();
        let service = hyper::service::service_fn(move |req| {
            let routes = routes.clone();
            async move { Ok::<_, Infallible>(routes.answer(&req).await) }
        });
        connections.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let _ = conn.await;
        });
    }
}

impl Routes {
    async fn answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let (method, path) = (req.method(), req.uri().path());
        if path == "/health" && method == Method::GET {
            let (doc, up) = (self.health)();
            let code = if up {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return json(code, &doc);
        }
        if !self.authorized(req) {
            let mut r = text(
                StatusCode::UNAUTHORIZED,
                "a bearer token is required\n".into(),
            );
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
            return r;
        }
        match (method, path) {
            (&Method::GET, "/metrics") => self.metrics(),
            (&Method::GET, "/status") => json(StatusCode::OK, &(self.status)()),
            (&Method::POST, "/reload") => self.reload().await,
            (_, "/health" | "/metrics" | "/status" | "/reload") => text(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET /health, /metrics, /status; POST /reload\n".into(),
            ),
            _ => text(
                StatusCode::NOT_FOUND,
                "GET /health, /metrics, /status; POST /reload\n".into(),
            ),
        }
    }

    /// Runs the reload on a task of its own, so that it completes even when this
    /// connection goes away (the reload may move the endpoint itself).
    async fn reload(&self) -> Response<Full<Bytes>> {
        match tokio::spawn((self.reload)()).await {
            Ok(Ok(changes)) => json(StatusCode::OK, &changes),
            Ok(Err(refusal)) => json(
                StatusCode::UNPROCESSABLE_ENTITY,
                &serde_json::json!({ "reloaded": false, "error": refusal }),
            ),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        }
    }

    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let token = self.token.read();
        let Some(token) = token.as_ref() else {
            return true;
        };
        let sent = req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes);
        match sent.and_then(|v| v.strip_prefix(b"Bearer ")) {
            Some(given) => same_secret(given, token.as_bytes()),
            None => false,
        }
    }

    fn metrics(&self) -> Response<Full<Bytes>> {
        let encoder = TextEncoder::new();
        let mut body = Vec::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut body) {
            return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"));
        }
        let mut r = Response::new(Full::new(Bytes::from(body)));
        let kind = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
        r.headers_mut().insert(CONTENT_TYPE, kind);
        r
    }
}

/// Compares without stopping at the first difference, so the answer's timing does not
/// tell how much of a guessed token was right.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn text(code: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(code: StatusCode, doc: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(doc.to_string())));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
    }
}
