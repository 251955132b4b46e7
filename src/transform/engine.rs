//! The one wasmtime `Engine` of the plugin: pooling allocator, epoch interruption driven
//! by a 1 ms ticker thread, capped wasm stack, and the import linker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig};

use super::instance::HostState;
use super::module::{ModuleSpec, TransformModule};

/// How often the epoch advances: the resolution of `transform.timeout` and the longest
/// a running module holds a broker thread before yielding.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The wasm stack limit of every instance.
pub const MAX_WASM_STACK: usize = 512 << 10;

/// What the pooling allocator must have room for.
#[derive(Debug, Clone, Copy)]
pub struct EngineLimits {
    /// Instances alive at once, across all entries.
    pub instances: u32,
    /// The largest `transform.max_memory` of any entry.
    pub max_memory: u64,
}

pub struct TransformEngine {
    engine: Engine,
    linker: Linker<HostState>,
    ticker: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl TransformEngine {
    pub fn new(limits: EngineLimits) -> Result<TransformEngine> {
        // Headroom for replacements created while a discarded instance is still being freed.
        let slots = limits.instances.saturating_mul(2).saturating_add(4);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(slots)
            .total_memories(slots)
            .total_tables(slots)
            .total_stacks(slots)
            .max_memory_size(usize::try_from(limits.max_memory).unwrap_or(usize::MAX));
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .max_wasm_stack(MAX_WASM_STACK)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)
            .map_err(|e| anyhow::anyhow!("cannot create the WebAssembly engine: {e}"))?;
        let mut linker = Linker::new(&engine);
        super::imports::define(&mut linker)?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .context("cannot start the epoch ticker thread")?
        };
        Ok(TransformEngine {
            engine,
            linker,
            ticker: Some((stop, ticker)),
        })
    }

    /// Compiles and validates a module.
    pub fn load(&self, spec: &ModuleSpec) -> Result<Arc<TransformModule>, String> {
        TransformModule::load(self, spec).map(Arc::new)
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }
}

impl Drop for TransformEngine {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.ticker.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
    }
}
