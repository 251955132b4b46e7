//! Loading a module: compile once, check that it speaks ABI v1, and prepare it for fast
//! instantiation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{ExternType, FuncType, InstancePre, Module, ValType};

use super::engine::TransformEngine;
use super::instance::HostState;
use crate::stats::LogLimiter;

/// What an entry asks of its module.
#[derive(Debug, Clone)]
pub struct ModuleSpec {
    pub path: PathBuf,
    /// `bridge/entry N`, for log lines.
    pub label: String,
    pub timeout: Duration,
    pub max_memory: u64,
    pub config: BTreeMap<String, String>,
}

/// A compiled, validated module, ready to be instantiated many times.
pub struct TransformModule {
    pub(crate) pre: InstancePre<HostState>,
    pub(crate) timeout: Duration,
    pub(crate) max_memory: usize,
    /// The config document handed to `rmqtt_transform_init`.
    pub(crate) config_doc: Vec<u8>,
    pub(crate) label: Arc<str>,
    pub(crate) guest_log: Arc<LogLimiter>,
    path: PathBuf,
}

impl TransformModule {
    pub(crate) fn load(
        engine: &TransformEngine,
        spec: &ModuleSpec,
    ) -> Result<TransformModule, String> {
        let path = absolute(&spec.path);
        let bytes = std::fs::read(&path)
            .map_err(|e| format!("cannot read module {}: {e}", path.display()))?;
        // Binary modules, or WebAssembly text (`.wat`) for small hand-written ones.
        let module = Module::new(engine.engine(), &bytes).map_err(|e| {
            format!(
                "{} is not a valid WebAssembly module: {e:#}",
                path.display()
            )
        })?;
        check_exports(&module, spec.max_memory).map_err(|e| format!("{}: {e}", path.display()))?;
        let pre = engine.linker().instantiate_pre(&module).map_err(|e| {
            format!("{}: {e:#} (a module may import only rmqtt.log, rmqtt.abort and the WASI subset in docs/abi.md)", path.display())
        })?;
        let pairs = spec.config.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let mut config_doc = vec![0; abi::config::encoded_len(pairs.clone())];
        abi::config::encode(pairs, &mut config_doc);
        Ok(TransformModule {
            pre,
            timeout: spec.timeout,
            max_memory: usize::try_from(spec.max_memory).unwrap_or(usize::MAX),
            config_doc,
            label: spec.label.as_str().into(),
            guest_log: Arc::new(LogLimiter::default()),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

fn is(ty: &FuncType, params: &[ValType], results: &[ValType]) -> bool {
    let same = |a: &mut dyn ExactSizeIterator<Item = ValType>, b: &[ValType]| {
        a.len() == b.len() && a.zip(b).all(|(x, y)| ValType::eq(&x, y))
    };
    same(&mut ty.params(), params) && same(&mut ty.results(), results)
}

/// Checks the ABI marker, the signatures of the required exports, and that the
/// module's initial memory fits under `max_memory`.
fn check_exports(module: &Module, max_memory: u64) -> Result<(), String> {
    let mut versions: Vec<&str> = module
        .exports()
        .filter_map(|e| e.name().strip_prefix(abi::ABI_MARKER_PREFIX))
        .collect();
    versions.sort_unstable();
    let v1 = abi::EXPORT_ABI_MARKER.trim_start_matches(abi::ABI_MARKER_PREFIX);
    if !versions.contains(&v1) {
        return Err(match versions.as_slice() {
            [] => format!(
                "not a transform module: it does not export `{}`",
                abi::EXPORT_ABI_MARKER
            ),
            vs => format!(
                "the module targets transform ABI v{}, this host supports v{}",
                vs.join(", v"),
                abi::VERSION
            ),
        });
    }
    match module.get_export(abi::EXPORT_MEMORY) {
        Some(ExternType::Memory(m)) => {
            let needed = m.minimum().saturating_mul(m.page_size());
            if needed > max_memory {
                return Err(format!(
                    "the module needs at least {needed} bytes of memory, more than transform.max_memory ({max_memory} bytes)"
                ));
            }
        }
        Some(_) => return Err(format!("export `{}` must be a memory", abi::EXPORT_MEMORY)),
        None => {
            return Err(format!(
                "missing export `{}` required by transform ABI v1",
                abi::EXPORT_MEMORY
            ))
        }
    }
    let func = |name: &str, params: &[ValType], results: &[ValType], required: bool| {
        let sig = if params.len() == 1 {
            "(i32) -> i32"
        } else {
            "(i32, i32) -> i64"
        };
        match module.get_export(name) {
            Some(ExternType::Func(f)) if is(&f, params, results) => Ok(()),
            Some(_) => Err(format!("export `{name}` must be a function {sig}")),
            None if required => Err(format!(
                "missing export `{name}` {sig} required by transform ABI v1"
            )),
            None => Ok(()),
        }
    };
    func(abi::EXPORT_RESERVE, &[ValType::I32], &[ValType::I32], true)?;
    func(
        abi::EXPORT_TRANSFORM,
        &[ValType::I32, ValType::I32],
        &[ValType::I64],
        true,
    )?;
    func(
        abi::EXPORT_INIT,
        &[ValType::I32, ValType::I32],
        &[ValType::I64],
        false,
    )?;
    Ok(())
}
