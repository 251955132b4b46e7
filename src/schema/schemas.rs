//! Every entry's schemas, as one configuration names them. Files are read and compiled
//! when the configuration loads, so that a bad one refuses it. Registry schemas are
//! fetched when the pipeline starts or reloads, all at once:
//! - a schema that does not compile, or is of another format, refuses the start or the
//!   reload;
//! - a registry that does not answer leaves the entry without a schema (its records go
//!   to `remote.on_schema_error`), unless the running configuration has the same
//!   setting ready: a reload keeps that one. A retry fetches it in the background.
//!
//! Compiled schemas are cached by registry and id: a schema that another setting, or the
//! running configuration, already compiled is not compiled again.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;

use super::registry::{self, Fetched};
use super::{Encoder, SchemaSlot};
use crate::config::{
    entry_label, ConfigError, PluginConfig, RegistrySource, SchemaConfig, SchemaFormat,
    SchemaSource,
};

/// The schema settings of one entry.
#[derive(Clone, Default)]
pub struct EntrySchemas {
    pub value: Option<Arc<SchemaSlot>>,
    pub key: Option<Arc<SchemaSlot>>,
}

impl EntrySchemas {
    pub fn is_empty(&self) -> bool {
        self.value.is_none() && self.key.is_none()
    }

    pub fn slots(&self) -> impl Iterator<Item = &Arc<SchemaSlot>> {
        self.value.iter().chain(&self.key)
    }
}

#[derive(Default)]
pub struct Schemas {
    by_entry: HashMap<(usize, usize), EntrySchemas>,
    /// Background fetches of schemas that were not available, stopped with these.
    retries: Mutex<Vec<JoinHandle<()>>>,
}

impl Schemas {
    /// The schema settings of `config`'s enabled entries, files compiled.
    pub fn load(config: &PluginConfig) -> Result<Schemas, ConfigError> {
        let mut by_entry = HashMap::new();
        for (bi, b) in config.enabled_bridges() {
            for (ei, e) in b.entries.iter().enumerate() {
                let at = |(field, why): (String, String)| {
                    ConfigError::at((bi, &b.name), Some(ei), &field, why)
                };
                let schemas = EntrySchemas {
                    value: slot("remote.value_schema", &e.remote.value_schema).map_err(at)?,
                    key: slot("remote.key_schema", &e.remote.key_schema).map_err(at)?,
                };
                if !schemas.is_empty() {
                    by_entry.insert((bi, ei), schemas);
                }
            }
        }
        Ok(Schemas {
            by_entry,
            retries: Mutex::default(),
        })
    }

    /// The schemas of entry `ei` of bridge `bi`.
    pub fn get(&self, bi: usize, ei: usize) -> EntrySchemas {
        self.by_entry.get(&(bi, ei)).cloned().unwrap_or_default()
    }

    /// Fetches every registry schema not ready yet, all at once; see the module's doc
    /// for what a failure does. `running`: the schemas of the running configuration.
    pub async fn fetch(
        &self,
        config: &PluginConfig,
        running: Option<&Schemas>,
    ) -> Result<(), ConfigError> {
        let mut pending = Vec::new();
        for (bi, b) in config.enabled_bridges() {
            for (ei, slot, source) in self.registry_slots(bi, b.entries.len()) {
                let source = source.clone();
                let task = tokio::spawn(async move { registry::fetch(&source).await });
                pending.push(((bi, b.name.as_str()), ei, slot, task));
            }
        }
        for ((bi, name), ei, slot, task) in pending {
            let fetched = task
                .await
                .unwrap_or_else(|e| Err(format!("the fetch failed: {e}")));
            let label = format!("{}: {}", entry_label(name, ei), slot.field());
            match fetched {
                Ok(f) => {
                    let known = [Some(self), running];
                    let encoder = compiled(slot.config(), &f, known.into_iter().flatten())
                        .map_err(|why| ConfigError::at((bi, name), Some(ei), slot.field(), why))?;
                    slot.set(encoder, Some(f.version));
                }
                Err(why) => match running.and_then(|r| r.ready_for(slot.config())) {
                    Some((encoder, version)) => {
                        log::warn!("{label}: {why}; keeping schema id {} until the registry answers a reload", encoder.id());
                        slot.set(encoder, version);
                    }
                    None => {
                        log::error!("{label}: no schema, so its records go to remote.on_schema_error until it is fetched: {why}");
                        slot.failed(why);
                        self.retries
                            .lock()
                            .push(tokio::spawn(retry(Arc::downgrade(slot), label)));
                    }
                },
            }
        }
        Ok(())
    }

    /// Stops the background fetches (the plugin stopped).
    pub fn stop(&self) {
        for task in self.retries.lock().drain(..) {
            task.abort();
        }
    }

    /// The not-ready registry slots of bridge `bi`'s entries, with their registries.
    fn registry_slots(
        &self,
        bi: usize,
        entries: usize,
    ) -> Vec<(usize, &Arc<SchemaSlot>, &RegistrySource)> {
        (0..entries)
            .filter_map(|ei| self.by_entry.get(&(bi, ei)).map(|s| (ei, s)))
            .flat_map(|(ei, s)| s.slots().map(move |slot| (ei, slot)))
            .filter(|(_, slot)| slot.encoder().is_none())
            .filter_map(|(ei, slot)| match &slot.config().source {
                SchemaSource::Registry(r) => Some((ei, slot, r)),
                SchemaSource::File { .. } => None,
            })
            .collect()
    }

    /// A ready schema of a setting equal to `config`, and its version.
    fn ready_for(&self, config: &SchemaConfig) -> Option<(Arc<Encoder>, Option<u32>)> {
        self.by_entry
            .values()
            .flat_map(EntrySchemas::slots)
            .filter(|s| s.config() == config)
            .find_map(|s| Some((s.shared_encoder()?.clone(), s.version())))
    }

    /// A compiled schema of id `id` from the registry at `url`, for `format` (and
    /// Protobuf's `message`).
    fn cached(
        &self,
        url: &str,
        format: SchemaFormat,
        message: Option<&str>,
        id: u32,
    ) -> Option<Arc<Encoder>> {
        self.by_entry
            .values()
            .flat_map(EntrySchemas::slots)
            .filter(|s| {
                let c = s.config();
                let same_registry = matches!(&c.source, SchemaSource::Registry(r) if r.url == url);
                same_registry && c.format == format && c.message.as_deref() == message
            })
            .filter_map(|s| s.shared_encoder())
            .find(|e| e.id() == id)
            .cloned()
    }
}

impl Drop for Schemas {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A schema setting's slot, its file's schema compiled; the error names the field.
fn slot(
    field: &'static str,
    config: &Option<SchemaConfig>,
) -> Result<Option<Arc<SchemaSlot>>, (String, String)> {
    let Some(config) = config else {
        return Ok(None);
    };
    let slot = SchemaSlot::new(field, config.clone());
    if let SchemaSource::File { path, id } = &config.source {
        let failed = |why: String| {
            (
                format!("{field}.file"),
                format!("{}: {why}", path.display()),
            )
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| failed(format!("cannot read it: {e}")))?;
        let encoder = Encoder::compile(config.format, &text, config.message.as_deref(), *id)
            .map_err(failed)?;
        slot.set(Arc::new(encoder), None);
    }
    Ok(Some(Arc::new(slot)))
}

/// The compiled schema of what the registry answered: one of `known` already compiled
/// it, or it is compiled now.
fn compiled<'a>(
    config: &SchemaConfig,
    f: &Fetched,
    mut known: impl Iterator<Item = &'a Schemas>,
) -> Result<Arc<Encoder>, String> {
    let found = f.schema_type.as_deref().unwrap_or("AVRO");
    let wanted = config.format.registry_type();
    if found != wanted {
        return Err(format!(
            "version {} of the subject is a {found} schema, not {wanted}",
            f.version
        ));
    }
    let SchemaSource::Registry(registry) = &config.source else {
        unreachable!("only registry schemas are fetched")
    };
    let message = config.message.as_deref();
    if let Some(encoder) = known.find_map(|k| k.cached(&registry.url, config.format, message, f.id))
    {
        return Ok(encoder);
    }
    let encoder = Encoder::compile(config.format, &f.schema, message, f.id)
        .map_err(|why| format!("schema id {} (version {}): {why}", f.id, f.version))?;
    Ok(Arc::new(encoder))
}

/// The longest wait between two fetches of a schema that is not available.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

/// Fetches the slot's schema until it is ready or the slot is gone, waiting 1 s, then
/// twice as long each time, up to [`MAX_RETRY_WAIT`].
async fn retry(slot: Weak<SchemaSlot>, label: String) {
    let mut wait = Duration::from_secs(1);
    loop {
        tokio::time::sleep(wait).await;
        let Some(slot) = slot.upgrade() else { return };
        let SchemaSource::Registry(source) = &slot.config().source else {
            return;
        };
        let result = match registry::fetch(source).await {
            Ok(f) => compiled(slot.config(), &f, std::iter::empty()).map(|e| (e, f.version)),
            Err(why) => Err(why),
        };
        match result {
            Ok((encoder, version)) => {
                log::info!(
                    "{label}: schema id {} fetched; the entry's records are encoded from now on",
                    encoder.id()
                );
                slot.set(encoder, Some(version));
                return;
            }
            Err(why) => {
                log::warn!("{label}: still no schema: {why}");
                slot.failed(why);
            }
        }
        wait = (wait * 2).min(MAX_RETRY_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(schema: &str) -> PluginConfig {
        PluginConfig::from_toml(&format!(
            "[[bridges]]\nname = \"b1\"\nservers = \"k\"\n[[bridges.entries]]\nlocal.topic_filter = \"a\"\nremote.topic = \"t\"\n[[bridges.entries]]\nlocal.topic_filter = \"b\"\nremote.topic = \"t\"\nremote.key_schema = {schema}\n"
        ))
        .unwrap()
    }

    #[test]
    fn a_schema_file_is_compiled_when_the_configuration_loads() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key.avsc");
        std::fs::write(&file, r#""string""#).unwrap();
        let schema = format!(
            "{{ format = \"avro\", file = {:?}, id = 9 }}",
            file.display().to_string()
        );
        let schemas = Schemas::load(&config_with(&schema)).unwrap();
        assert!(schemas.get(0, 0).is_empty(), "an entry without schemas");
        let key = schemas.get(0, 1).key.unwrap();
        assert_eq!(key.encoder().map(Encoder::id), Some(9));
        assert_eq!(key.error(), None);
    }

    #[test]
    fn a_schema_file_that_does_not_compile_refuses_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key.avsc");
        std::fs::write(&file, r#"{"type": "record"}"#).unwrap();
        for path in [file.clone(), dir.path().join("absent.avsc")] {
            let schema = format!(
                "{{ format = \"avro\", file = {:?}, id = 9 }}",
                path.display().to_string()
            );
            let e = Schemas::load(&config_with(&schema)).err().unwrap();
            let text = e.to_string();
            assert!(
                text.starts_with("rmqtt-bridge-egress-kafka.toml: bridge \"b1\", entry 1, field `remote.key_schema.file`: "),
                "{text}"
            );
            assert!(text.contains(&path.display().to_string()), "{text}");
        }
    }

    #[test]
    fn compiled_registry_schemas_are_found_by_registry_and_id() {
        let schema = r#"{ format = "avro", registry = "http://r:1", subject = "s" }"#;
        let schemas = Schemas::load(&config_with(schema)).unwrap();
        let slot = schemas.get(0, 1).key.unwrap();
        let encoder = Encoder::compile(SchemaFormat::Avro, r#""long""#, None, 5).unwrap();
        let encoder = Arc::new(encoder);
        slot.set(encoder.clone(), Some(2));
        let hit = schemas.cached("http://r:1", SchemaFormat::Avro, None, 5);
        assert!(Arc::ptr_eq(&hit.unwrap(), &encoder));
        for (url, format, id) in [
            ("http://other:1", SchemaFormat::Avro, 5),
            ("http://r:1", SchemaFormat::Json, 5),
            ("http://r:1", SchemaFormat::Avro, 6),
        ] {
            assert!(
                schemas.cached(url, format, None, id).is_none(),
                "{url} {id}"
            );
        }
        assert_eq!(slot.version(), Some(2));
    }

    #[test]
    fn a_registry_schema_waits_for_its_fetch() {
        let schema = r#"{ format = "json", registry = "http://127.0.0.1:9", subject = "s" }"#;
        let schemas = Schemas::load(&config_with(schema)).unwrap();
        let key = schemas.get(0, 1).key.unwrap();
        assert!(key.encoder().is_none());
        assert_eq!(key.error().as_deref(), Some("not fetched yet"));
    }
}
