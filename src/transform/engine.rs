//! The one wasmtime `Engine` of the plugin: pooling allocator sized from the entries'
//! transform settings, epoch interruption (the ticks: `ticker.rs`), a capped wasm stack,
//! and the import linker.

use std::sync::Arc;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig};

use super::state::HostState;
use super::ticker::{EpochState, EpochTicker};
use crate::config::TransformConfig;

/// The wasm stack limit of every instance.
pub const MAX_WASM_STACK: usize = 512 << 10;

pub struct TransformEngine {
    engine: Engine,
    linker: Linker<HostState>,
    ticker: EpochTicker,
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
        let ticker = EpochTicker::start(&engine)?;
        Ok(TransformEngine {
            engine,
            linker,
            ticker,
        })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }

    /// What guest calls on fibers tell the epoch's drivers.
    pub(crate) fn epoch(&self) -> &Arc<EpochState> {
        self.ticker.state()
    }
}
