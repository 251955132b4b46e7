//! The one wasmtime `Engine` of the plugin: pooling allocator sized from the entries'
//! transform settings, epoch interruption (the ticks: `ticker.rs`), a capped wasm stack,
//! the import linker, and on request a perf map that names the modules' functions.

use std::sync::Arc;

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig, ProfilingStrategy,
};

use super::state::HostState;
use super::ticker::{EpochState, EpochTicker};
use crate::config::TransformConfig;

/// The wasm stack limit of every instance.
pub const MAX_WASM_STACK: usize = 512 << 10;

/// Set to `1`, the engine writes `/tmp/perf-<pid>.map` naming the compiled functions of
/// every module, so that `perf report` shows a module's own functions where it would
/// show bare addresses (docs/writing-transforms.md, "Where the time goes").
const PERF_MAP_VAR: &str = "RMQTT_KAFKA_BRIDGE_PERF_MAP";

/// Whether [`PERF_MAP_VAR`] asks for a perf map.
fn perf_map_requested() -> Result<bool, String> {
    perf_map_setting(std::env::var(PERF_MAP_VAR))
}

/// `1` asks for a perf map, `0` or nothing does not, anything else is an error.
fn perf_map_setting(value: Result<String, std::env::VarError>) -> Result<bool, String> {
    match value.as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("0") => Ok(false),
        Ok("1") => Ok(true),
        Ok(v) => Err(format!("{PERF_MAP_VAR} must be 1 or 0, not {v:?}")),
        Err(e) => Err(format!("{PERF_MAP_VAR}: {e}")),
    }
}

pub struct TransformEngine {
    engine: Engine,
    linker: Linker<HostState>,
    ticker: EpochTicker,
}

impl TransformEngine {
    /// An engine with room for the instances of every transform in `transforms`, with a
    /// perf map if [`PERF_MAP_VAR`] asks for one.
    pub fn new<'a>(
        transforms: impl IntoIterator<Item = &'a TransformConfig>,
    ) -> Result<TransformEngine, String> {
        Self::with_perf_map(transforms, perf_map_requested()?)
    }

    /// An engine with room for the instances of every transform in `transforms`; with
    /// `perf_map`, one that names the functions it compiles in `/tmp/perf-<pid>.map`.
    pub fn with_perf_map<'a>(
        transforms: impl IntoIterator<Item = &'a TransformConfig>,
        perf_map: bool,
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
        if perf_map {
            config.profiler(ProfilingStrategy::PerfMap);
        }
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

#[cfg(test)]
mod tests {
    use std::env::VarError;

    use super::*;

    #[test]
    fn the_perf_map_switch_takes_1_or_0_and_names_itself_otherwise() {
        assert_eq!(perf_map_setting(Err(VarError::NotPresent)), Ok(false));
        assert_eq!(perf_map_setting(Ok("0".into())), Ok(false));
        assert_eq!(perf_map_setting(Ok("1".into())), Ok(true));
        let e = perf_map_setting(Ok("yes".into())).unwrap_err();
        assert_eq!(
            e,
            r#"RMQTT_KAFKA_BRIDGE_PERF_MAP must be 1 or 0, not "yes""#
        );
    }
}
