//! The transform modules a configuration names, compiled once when the configuration is
//! loaded, so that a bad module refuses the start (or a reload) before anything runs.

use std::collections::HashMap;
use std::sync::Arc;

use super::{TransformEngine, TransformModule};
use crate::config::{entry_label, ConfigError, PluginConfig};

/// Compiled modules by `(bridge index, entry index)`; each keeps its engine.
#[derive(Default, Clone)]
pub struct Modules {
    by_entry: HashMap<(usize, usize), Arc<TransformModule>>,
}

impl Modules {
    /// Compiles every module of the enabled bridges' entries.
    pub fn compile(config: &PluginConfig) -> Result<Modules, ConfigError> {
        let transforms: Vec<_> = config
            .enabled_bridges()
            .flat_map(|(bi, b)| {
                b.entries.iter().enumerate().filter_map(move |(ei, e)| {
                    e.transform.as_ref().map(|t| (bi, b.name.as_str(), ei, t))
                })
            })
            .collect();
        if transforms.is_empty() {
            return Ok(Modules::default());
        }
        let engine =
            TransformEngine::new(transforms.iter().map(|(.., t)| *t)).map_err(ConfigError::file)?;
        let engine = Arc::new(engine);
        let mut by_entry = HashMap::new();
        for (bi, name, ei, t) in transforms {
            let label = entry_label(name, ei);
            let module = TransformModule::load(&engine, t, &label)
                .map_err(|e| ConfigError::at((bi, name), Some(ei), t.code.field(), e))?;
            by_entry.insert((bi, ei), Arc::new(module));
        }
        Ok(Modules { by_entry })
    }

    /// The module of entry `entry` of bridge `bridge` (indexes in the file).
    pub fn get(&self, bridge: usize, entry: usize) -> Option<&Arc<TransformModule>> {
        self.by_entry.get(&(bridge, entry))
    }
}
