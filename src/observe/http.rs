//! The plugin's own HTTP endpoint, on `http_laddr`: `/metrics` (Prometheus text),
//! `/health` (JSON per bridge) and `/status` (the `attrs()` document). The plugin serves
//! it itself rather than through rmqtt-http-api, so a broker that embeds the plugin gets
//! it too. With `http_bearer_token`, every route but `/health` needs the token: health
//! checks (load balancers, orchestrators) rarely carry credentials and learn little.

use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, Registry, TextEncoder};
use serde_json::Value;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::ConfigError;

/// What the routes answer from; `status` and `health` are the plugin's, computed per
/// request.
pub struct Routes {
    pub registry: Registry,
    pub token: Option<String>,
    pub status: Box<dyn Fn() -> Value + Send + Sync>,
    /// The health document and whether every bridge is up.
    pub health: Box<dyn Fn() -> (Value, bool) + Send + Sync>,
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
            let answer = routes.answer(&req);
            async move { Ok::<_, Infallible>(answer) }
        });
        connections.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let _ = conn.await;
        });
    }
}

impl Routes {
    fn answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
        }
        let path = req.uri().path();
        if path == "/health" {
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
        match path {
            "/metrics" => self.metrics(),
            "/status" => json(StatusCode::OK, &(self.status)()),
            _ => text(
                StatusCode::NOT_FOUND,
                "routes: /metrics, /health, /status\n".into(),
            ),
        }
    }

    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let Some(token) = &self.token else {
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
