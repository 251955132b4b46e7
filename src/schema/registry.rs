//! The schema registry's REST API, the one call this plugin makes: `GET
//! /subjects/{subject}/versions/{version}`, which answers the schema, its id and its
//! version. Over http or https (the system's trusted roots), with basic or bearer
//! authentication. Called when a pipeline starts or reloads, and by the retry of a
//! schema that was not available; never per record.

use std::sync::OnceLock;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{ACCEPT, AUTHORIZATION};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::config::{RegistryAuth, RegistrySource};

/// A subject's version, as the registry answered it.
#[derive(Debug, serde::Deserialize)]
pub struct Fetched {
    pub id: u32,
    pub version: u32,
    pub schema: String,
    /// `AVRO` when absent.
    #[serde(rename = "schemaType", default)]
    pub schema_type: Option<String>,
    #[serde(default)]
    pub references: Vec<serde_json::Value>,
}

/// The most bytes of an answer read: schemas are small; a registry that sends more is
/// not one.
const MAX_ANSWER: usize = 16 << 20;

/// What a subject name may keep unescaped in a URL path.
const SUBJECT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// One client for every fetch: its trusted roots are read once.
fn client() -> Result<&'static HttpsClient, String> {
    static CLIENT: OnceLock<Result<HttpsClient, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let provider = rustls::crypto::aws_lc_rs::default_provider();
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(provider)
                .map_err(|e| format!("cannot read the system's trusted certificates: {e}"))?
                .https_or_http()
                .enable_http1()
                .build();
            Ok(Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The subject's version that `source` names; the error says what went wrong, for the
/// log and `/status`.
pub async fn fetch(source: &RegistrySource) -> Result<Fetched, String> {
    let version = source
        .version
        .map_or_else(|| "latest".to_owned(), |v| v.to_string());
    let subject = utf8_percent_encode(&source.subject, SUBJECT);
    let url = format!("{}/subjects/{subject}/versions/{version}", source.url);
    let mut request = hyper::Request::get(&url).header(
        ACCEPT,
        "application/vnd.schemaregistry.v1+json, application/json",
    );
    match &source.auth {
        Some(RegistryAuth::Basic { username, password }) => {
            let pair =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            request = request.header(AUTHORIZATION, format!("Basic {pair}"));
        }
        Some(RegistryAuth::Bearer(token)) => {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        None => {}
    }
    let request = request
        .body(Empty::new())
        .map_err(|e| format!("cannot ask {url}: {e}"))?;
    let answer = async {
        let response = client()?
            .request(request)
            .await
            .map_err(|e| format!("cannot reach {}: {}", source.url, causes(&e)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("{url}: the answer broke off: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    let (status, body) = tokio::time::timeout(source.timeout, answer)
        .await
        .map_err(|_| format!("{url} did not answer within {:?}", source.timeout))??;
    if !status.is_success() {
        return Err(format!("{url} answered {status}: {}", message_of(&body)));
    }
    let fetched: Fetched = serde_json::from_slice(&body)
        .map_err(|e| format!("{url} answered what is not a schema version: {e}"))?;
    if !fetched.references.is_empty() {
        return Err(format!(
            "{} version {} refers to other schemas; references are not supported",
            source.subject, fetched.version
        ));
    }
    Ok(fetched)
}

/// The registry's error message (`{"error_code": 40401, "message": "…"}`), or the text.
fn message_of(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct RegistryError {
        message: String,
    }
    match serde_json::from_slice::<RegistryError>(body) {
        Ok(e) => e.message,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// An error and its sources, as `a: b: c` (hyper's own says only "client error").
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
