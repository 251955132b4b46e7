//! The one wasmtime `Engine` of the plugin: pooling allocator sized from the entries'
//! transform settings, epoch interruption driven by a 1 ms ticker thread, a capped wasm
//! stack, and the import linker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig};

use super::state::{HostState, EPOCH_TICK};
use crate::config::TransformConfig;

/// The wasm stack limit of every instance.
pub const MAX_WASM_STACK: usize = 512 << 10;

pub struct TransformEngine {
    engine: Engine,
    linker: Linker<HostState>,
    ticker: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl TransformEngine {
    /// An engine with room for the instances of every transform in `transforms`.
    pub fn new<'a>(
        transforms: impl IntoIterator<Item = &'a TransformConfig>,
    ) -> Result<TransformEngine, String> {
        let (mut instances, mut max_memory) = (0u32, 0u64);
        for t in transforms {
            instances = instances.saturating_add(t.instances as u32);
            max_memory = max_memory.max(t.max_memory);
        }
        // Headroom for replacements created while a discarded instance is still being freed.
        let slots = instances.saturating_mul(2).saturating_add(4);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(slots)
            .total_memories(slots)
            .total_tables(slots)
            .total_stacks(slots)
            .max_memory_size(usize::try_from(max_memory).unwrap_or(usize::MAX));
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .max_wasm_stack(MAX_WASM_STACK)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)
            .map_err(|e| format!("cannot create the WebAssembly engine: {e}"))?;
        let mut linker = Linker::new(&engine);
        super::imports::define(&mut linker)
            .map_err(|e| format!("cannot define the host functions: {e}"))?;
        let ticker = start_ticker(&engine)?;
        Ok(TransformEngine {
            engine,
            linker,
            ticker: Some(ticker),
        })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }
}

/// Advances the epoch every [`EPOCH_TICK`] until told to stop.
fn start_ticker(engine: &Engine) -> Result<(Arc<AtomicBool>, JoinHandle<()>), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let (engine, flag) = (engine.clone(), stop.clone());
    let handle = std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .map_err(|e| format!("cannot start the epoch ticker thread: {e}"))?;
    Ok((stop, handle))
}

impl Drop for TransformEngine {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.ticker.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
    }
}
