//! Loading a module: compile once, check that it speaks ABI v1, and prepare it for fast
//! instantiation.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{ExternType, FuncType, InstancePre, Module, ValType};

use super::engine::TransformEngine;
use super::javascript;
use super::state::HostState;
use crate::config::{TransformCode, TransformConfig};
use crate::observe::LogLimiter;

/// A compiled, validated module, ready to be instantiated many times.
pub struct TransformModule {
    pub(crate) pre: InstancePre<HostState>,
    pub(crate) timeout: Duration,
    pub(crate) max_memory: usize,
    /// Instances in the entry's pool.
    pub(crate) instances: usize,
    /// `transform.max_records`.
    pub(crate) max_records: u32,
    /// `transform.state_max_keys` and `transform.state_max_bytes`.
    pub(crate) state_limits: (usize, usize),
    /// The config document handed to `rmqtt_transform_init`.
    pub(crate) config_doc: Vec<u8>,
    /// `bridge "x" entry N`, for log lines.
    pub(crate) label: Arc<str>,
    pub(crate) guest_log: Arc<LogLimiter>,
    /// The module's file, or the script's, as an absolute path.
    code: TransformCode,
    /// A digest of the module's bytes or the script's source: a reload tells a changed
    /// file by it.
    digest: u64,
    /// Instances of the module need their engine's epoch ticker.
    pub(crate) engine: Arc<TransformEngine>,
}

impl TransformModule {
    /// Compiles the entry's module (or, for a script, prepares the JavaScript runtime
    /// with the script) and checks it against the entry's settings.
    pub fn load(
        engine: &Arc<TransformEngine>,
        settings: &TransformConfig,
        label: &str,
    ) -> Result<TransformModule, String> {
        let path = settings.code.path();
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let mut pairs: BTreeMap<&str, &str> = settings
            .config
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (module, digest, source);
        match &settings.code {
            TransformCode::Module(_) => {
                let bytes = std::fs::read(&path)
                    .map_err(|e| format!("cannot read module {}: {e}", path.display()))?;
                module = compile(engine, &path, &bytes, settings.max_memory)?;
                digest = digest_of(&bytes);
            }
            TransformCode::Script(_) => {
                source = read_script(&path)?;
                module = javascript::runtime(engine)
                    .map_err(|e| format!("the JavaScript runtime: {e}"))?;
                check_memory(&module, settings.max_memory)
                    .map_err(|e| format!("the JavaScript runtime for {}: {e}", path.display()))?;
                digest = digest_of(source.as_bytes());
                pairs.insert(abi::script::SOURCE, &source);
                // Errors name the file alone, so they read the same wherever it lies.
                let name = path.file_name().and_then(|n| n.to_str());
                pairs.insert(abi::script::NAME, name.unwrap_or("script.js"));
            }
        }
        let pre = engine.linker().instantiate_pre(&module).map_err(|e| {
            format!("{}: {e:#} (a module may import only rmqtt.log, rmqtt.abort and the WASI subset in docs/abi.md)", path.display())
        })?;
        Ok(TransformModule {
            digest,
            engine: engine.clone(),
            pre,
            timeout: settings.timeout,
            max_memory: usize::try_from(settings.max_memory).unwrap_or(usize::MAX),
            instances: settings.instances,
            max_records: settings.max_records,
            state_limits: (
                settings.state_max_keys,
                usize::try_from(settings.state_max_bytes).unwrap_or(usize::MAX),
            ),
            config_doc: config_doc(&pairs),
            label: label.into(),
            guest_log: Arc::new(LogLimiter::default()),
            code: settings.code.at(path),
        })
    }

    /// The module or script it runs, by absolute path.
    pub fn code(&self) -> &TransformCode {
        &self.code
    }

    /// Whether `other` was compiled from the same bytes (for a script: the same source).
    pub fn same_code(&self, other: &TransformModule) -> bool {
        self.digest == other.digest
    }
}

/// The config document of `pairs` (sorted by key, as the ABI says).
fn config_doc(pairs: &BTreeMap<&str, &str>) -> Vec<u8> {
    let pairs = pairs.iter().map(|(k, v)| (*k, *v));
    let mut doc = vec![0; abi::config::encoded_len(pairs.clone())];
    abi::config::encode(pairs, &mut doc);
    doc
}

/// A digest of a module's bytes or a script's source: a reload tells a changed file by it.
fn digest_of(bytes: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(bytes, &mut hasher);
    std::hash::Hasher::finish(&hasher)
}

/// Compiles a module file's bytes (binary, or `.wat` text for small hand-written ones)
/// and checks its exports.
fn compile(
    engine: &TransformEngine,
    path: &Path,
    bytes: &[u8],
    max_memory: u64,
) -> Result<Module, String> {
    let shown = path.display();
    let module = Module::new(engine.engine(), bytes).map_err(|e| {
        match declared_memory(bytes) {
            // Valid, but refused by the pool's limit: say so in the limit's terms.
            Some(needed) if needed > max_memory => {
                format!("{shown}: {}", too_little_memory(needed, max_memory))
            }
            _ => format!("{shown} is not a valid WebAssembly module: {e:#}"),
        }
    })?;
    check_exports(&module, max_memory).map_err(|e| format!("{shown}: {e}"))?;
    Ok(module)
}

/// A script's source: a file of UTF-8 text.
fn read_script(path: &Path) -> Result<String, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read script {}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        format!(
            "script {} is not UTF-8 text (byte {at} is not)",
            path.display()
        )
    })
}

fn is(ty: &FuncType, params: &[ValType], results: &[ValType]) -> bool {
    let same = |a: &mut dyn ExactSizeIterator<Item = ValType>, b: &[ValType]| {
        a.len() == b.len() && a.zip(b).all(|(x, y)| ValType::eq(&x, y))
    };
    same(&mut ty.params(), params) && same(&mut ty.results(), results)
}

/// Checks the ABI marker, the memory, and the signatures of the exports.
fn check_exports(module: &Module, max_memory: u64) -> Result<(), String> {
    check_version(module)?;
    check_memory(module, max_memory)?;
    let (ptr_len, packed) = ([ValType::I32, ValType::I32], [ValType::I64]);
    check_func(
        module,
        abi::EXPORT_RESERVE,
        &[ValType::I32],
        &[ValType::I32],
        true,
    )?;
    check_func(module, abi::EXPORT_TRANSFORM, &ptr_len, &packed, true)?;
    check_func(module, abi::EXPORT_INIT, &ptr_len, &packed, false)
}

/// The module must declare ABI v1 through its marker export.
fn check_version(module: &Module) -> Result<(), String> {
    let mut versions: Vec<&str> = module
        .exports()
        .filter_map(|e| e.name().strip_prefix(abi::ABI_MARKER_PREFIX))
        .collect();
    versions.sort_unstable();
    let v1 = abi::EXPORT_ABI_MARKER.trim_start_matches(abi::ABI_MARKER_PREFIX);
    if versions.contains(&v1) {
        return Ok(());
    }
    Err(match versions.as_slice() {
        [] => format!(
            "not a transform module: it does not export `{}`",
            abi::EXPORT_ABI_MARKER
        ),
        vs => format!(
            "the module targets transform ABI v{}, this host supports v{}",
            vs.join(", v"),
            abi::VERSION
        ),
    })
}

/// The module must export its memory, and its declared minimum must fit `max_memory`.
fn check_memory(module: &Module, max_memory: u64) -> Result<(), String> {
    match module.get_export(abi::EXPORT_MEMORY) {
        Some(ExternType::Memory(m)) => {
            let needed = m.minimum().saturating_mul(m.page_size());
            if needed > max_memory {
                return Err(too_little_memory(needed, max_memory));
            }
            Ok(())
        }
        Some(_) => Err(format!("export `{}` must be a memory", abi::EXPORT_MEMORY)),
        None => Err(format!(
            "missing export `{}` required by transform ABI v1",
            abi::EXPORT_MEMORY
        )),
    }
}

fn too_little_memory(needed: u64, max_memory: u64) -> String {
    let iec = |n| bytesize::ByteSize(n).to_string_as(true);
    format!(
        "the module declares {} of memory at start, more than transform.max_memory ({}); raise it",
        iec(needed),
        iec(max_memory)
    )
}

/// The bytes of linear memory a valid module declares at start (its first memory), read
/// from its binary or text form without compiling it.
fn declared_memory(bytes: &[u8]) -> Option<u64> {
    let binary = wat::parse_bytes(bytes).ok()?;
    for payload in wasmparser::Parser::new(0).parse_all(&binary) {
        if let wasmparser::Payload::MemorySection(memories) = payload.ok()? {
            let memory = memories.into_iter().next()?.ok()?;
            let page = 1u64 << memory.page_size_log2.unwrap_or(16);
            return Some(memory.initial.saturating_mul(page));
        }
    }
    None
}

fn check_func(
    module: &Module,
    name: &str,
    params: &[ValType],
    results: &[ValType],
    required: bool,
) -> Result<(), String> {
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
}
