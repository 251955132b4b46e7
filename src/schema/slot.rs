//! One schema setting of one entry, and whether its schema is ready. A schema from a
//! file is ready when the configuration loads; one from a registry when it was fetched,
//! perhaps only by a retry after the registry came back. Until then the entry's records
//! go to `remote.on_schema_error`, and `/health`, `/status` and `/metrics` say why.

use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::Encoder;
use crate::config::{SchemaConfig, SchemaSource};

pub struct SchemaSlot {
    /// `remote.value_schema` or `remote.key_schema`.
    field: &'static str,
    config: SchemaConfig,
    /// Set once: a slot's schema does not change (a reload makes new slots).
    ready: OnceLock<Ready>,
    /// Why it is not ready, while it is not.
    error: Mutex<Option<String>>,
}

/// A slot's schema, and the subject's version it is (from a registry).
struct Ready {
    encoder: Arc<Encoder>,
    version: Option<u32>,
}

impl SchemaSlot {
    pub(super) fn new(field: &'static str, config: SchemaConfig) -> SchemaSlot {
        SchemaSlot {
            field,
            config,
            ready: OnceLock::new(),
            error: Mutex::new(None),
        }
    }

    pub fn field(&self) -> &'static str {
        self.field
    }

    pub(super) fn config(&self) -> &SchemaConfig {
        &self.config
    }

    /// The compiled schema, once there is one: an atomic load.
    #[inline]
    pub fn encoder(&self) -> Option<&Encoder> {
        self.ready.get().map(|r| &*r.encoder)
    }

    /// The registry's version of the subject, once ready (`None` for a file).
    pub fn version(&self) -> Option<u32> {
        self.ready.get().and_then(|r| r.version)
    }

    pub(super) fn shared_encoder(&self) -> Option<&Arc<Encoder>> {
        self.ready.get().map(|r| &r.encoder)
    }

    pub(super) fn set(&self, encoder: Arc<Encoder>, version: Option<u32>) {
        let _ = self.ready.set(Ready { encoder, version });
        *self.error.lock() = None;
    }

    pub(super) fn failed(&self, why: String) {
        *self.error.lock() = Some(why);
    }

    /// Why the schema is not ready (`None` once it is).
    pub fn error(&self) -> Option<String> {
        match self.ready.get() {
            Some(_) => None,
            None => Some(
                self.error
                    .lock()
                    .clone()
                    .unwrap_or_else(|| "not fetched yet".into()),
            ),
        }
    }

    pub fn to_json(&self) -> Value {
        let source = match &self.config.source {
            SchemaSource::Registry(r) => json!({
                "registry": r.url,
                "subject": r.subject,
                "version": r.version.map_or(json!("latest"), Value::from),
            }),
            SchemaSource::File { path, .. } => json!({"file": path.display().to_string()}),
        };
        let encoder = self.encoder();
        json!({
            "format": self.config.format.as_str(),
            "source": source,
            "ready": encoder.is_some(),
            "id": encoder.map(Encoder::id),
            "version": self.version(),
            "error": self.error(),
        })
    }
}
