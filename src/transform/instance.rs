//! One instantiated module and the per-message call: write the input document into the
//! guest's buffer (the one copy in), call `rmqtt_transform` under a deadline, and read
//! the output document straight out of guest memory.

use std::sync::Arc;
use std::time::Duration;

use abi::output::{read_output, Output, Records};
use wasmtime::{Memory, ResourceLimiter, Result, Store, Trap, TypedFunc, UpdateDeadline};

use super::engine::EPOCH_TICK;
use super::failure::{Cause, DeadlineExceeded, Failure, GuestAbort, GuestExit};
use super::module::TransformModule;
use crate::stats::LogLimiter;

/// Store data of one instance.
pub(crate) struct HostState {
    pub(crate) limiter: MemoryCap,
    /// Epoch ticks the running call has left before it times out. Counting ticks (set
    /// per call, decremented by the epoch callback) costs no clock read per call.
    pub(crate) ticks_left: u64,
    /// The instance's memory, for host functions.
    pub(crate) memory: Option<Memory>,
    /// `bridge/entry N`, for log lines.
    pub(crate) label: Arc<str>,
    pub(crate) guest_log: Arc<LogLimiter>,
}

/// Caps linear memory at `transform.max_memory` and remembers when a guest hit the cap,
/// so that the trap that usually follows is reported as `memory`.
pub(crate) struct MemoryCap {
    max: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        if desired > self.max {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// An instance ready to transform messages.
pub(crate) struct GuestInstance {
    store: Store<HostState>,
    memory: Memory,
    reserve: TypedFunc<i32, i32>,
    transform: TypedFunc<(i32, i32), i64>,
    /// The guest buffer the host writes inputs into: `(ptr, capacity)`.
    input: Option<(u32, u32)>,
    timeout: Duration,
    /// Set by a failure that may have left the instance inconsistent.
    pub(crate) poisoned: bool,
}

impl GuestInstance {
    /// Instantiates the module and hands it its config through `rmqtt_transform_init`.
    pub(crate) async fn new(module: &TransformModule) -> Result<GuestInstance, Failure> {
        let state = HostState {
            limiter: MemoryCap {
                max: module.max_memory,
                hit: false,
            },
            ticks_left: ticks(module.timeout),
            memory: None,
            label: module.label.clone(),
            guest_log: module.guest_log.clone(),
        };
        let mut store = Store::new(module.pre.module().engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|mut ctx| {
            let left = &mut ctx.data_mut().ticks_left;
            *left = left.saturating_sub(1);
            if *left == 0 {
                Err(DeadlineExceeded.into())
            } else {
                // Give the broker's other tasks a turn, then carry on.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);
        let instance = match module.pre.instantiate_async(&mut store).await {
            Ok(i) => i,
            Err(e) => return Err(classify(&store, e, module.timeout)),
        };
        let export_err = |what: &str, e: wasmtime::Error| {
            Failure::new(Cause::Trap, format!("export `{what}`: {e}"))
        };
        let memory = instance
            .get_memory(&mut store, abi::EXPORT_MEMORY)
            .ok_or_else(|| Failure::new(Cause::Trap, "the module exports no memory"))?;
        store.data_mut().memory = Some(memory);
        let reserve = instance
            .get_typed_func(&mut store, abi::EXPORT_RESERVE)
            .map_err(|e| export_err(abi::EXPORT_RESERVE, e))?;
        let transform = instance
            .get_typed_func(&mut store, abi::EXPORT_TRANSFORM)
            .map_err(|e| export_err(abi::EXPORT_TRANSFORM, e))?;
        let init = match instance.get_func(&mut store, abi::EXPORT_INIT) {
            Some(f) => Some(
                f.typed::<(i32, i32), i64>(&store)
                    .map_err(|e| export_err(abi::EXPORT_INIT, e))?,
            ),
            None => None,
        };
        let mut inst = GuestInstance {
            store,
            memory,
            reserve,
            transform,
            input: None,
            timeout: module.timeout,
            poisoned: false,
        };
        if let Some(init) = init {
            let doc = &module.config_doc;
            let ptr = inst
                .write_input(doc.len(), |dst| dst.copy_from_slice(doc))
                .await?;
            let packed = Self::call_guest(
                &mut inst.store,
                &init,
                (ptr as i32, doc.len() as i32),
                inst.timeout,
            )
            .await?;
            match inst.read(packed)? {
                Output::Records(_) => {}
                Output::Error(msg) => {
                    return Err(Failure::new(
                        Cause::GuestError,
                        format!("init failed: {}", String::from_utf8_lossy(msg)),
                    ))
                }
            }
        }
        Ok(inst)
    }

    /// Transforms one message. The records borrow guest memory until the next call.
    pub(crate) async fn call<U: AsRef<[u8]>>(
        &mut self,
        input: &abi::input::InputFields<'_, U>,
    ) -> Result<Records<'_>, Failure> {
        let result = self.try_call(input).await;
        if let Err(f) = &result {
            self.poisoned |= f.poisons_instance();
        }
        let packed = result?;
        if let Err(f) = self.read(packed) {
            self.poisoned = true;
            return Err(f);
        }
        match self.read(packed)? {
            Output::Records(r) => Ok(r),
            Output::Error(msg) => Err(Failure::new(
                Cause::GuestError,
                String::from_utf8_lossy(msg),
            )),
        }
    }

    async fn try_call<U: AsRef<[u8]>>(
        &mut self,
        input: &abi::input::InputFields<'_, U>,
    ) -> Result<i64, Failure> {
        let len = input.encoded_len();
        let ptr = self.write_input(len, |dst| input.encode(dst)).await?;
        Self::call_guest(
            &mut self.store,
            &self.transform,
            (ptr as i32, len as i32),
            self.timeout,
        )
        .await
    }

    /// Writes `len` bytes into the guest's input buffer, reserving a larger one first
    /// when needed. Returns the buffer's address.
    async fn write_input(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<u32, Failure> {
        let len32 = u32::try_from(len)
            .map_err(|_| Failure::new(Cause::BadOutput, "input larger than 4 GiB"))?;
        let ptr = match self.input {
            Some((ptr, cap)) if cap >= len32 => ptr,
            _ => {
                let ptr = Self::call_guest(&mut self.store, &self.reserve, len as i32, self.timeout)
                    .await? as u32;
                if ptr == 0 {
                    return Err(Failure::new(
                        Cause::BadOutput,
                        format!("rmqtt_transform_reserve({len}) returned 0"),
                    ));
                }
                self.input = Some((ptr, len32));
                ptr
            }
        };
        let mem = self.memory.data_mut(&mut self.store);
        let dst = (ptr as usize)
            .checked_add(len)
            .and_then(|end| mem.get_mut(ptr as usize..end));
        match dst {
            Some(dst) => {
                fill(dst);
                Ok(ptr)
            }
            None => {
                self.input = None;
                Err(Failure::new(
                    Cause::BadOutput,
                    format!(
                        "rmqtt_transform_reserve returned {ptr}, outside linear memory of {} bytes",
                        mem.len()
                    ),
                ))
            }
        }
    }

    /// Calls a guest function under the deadline, classifying any failure.
    async fn call_guest<P, R>(
        store: &mut Store<HostState>,
        func: &TypedFunc<P, R>,
        params: P,
        timeout: Duration,
    ) -> Result<R, Failure>
    where
        P: wasmtime::WasmParams + Sync,
        R: wasmtime::WasmResults + Sync,
    {
        let state = store.data_mut();
        state.ticks_left = ticks(timeout);
        state.limiter.hit = false;
        store.set_epoch_deadline(1);
        match func.call_async(&mut *store, params).await {
            Ok(r) => Ok(r),
            Err(e) => Err(classify(store, e, timeout)),
        }
    }

    fn read(&self, packed: i64) -> Result<Output<'_>, Failure> {
        let (ptr, len) = abi::unpack(packed as u64);
        read_output(self.memory.data(&self.store), ptr, len)
            .map_err(|e| Failure::new(Cause::BadOutput, format!("invalid output document: {e}")))
    }
}

/// Epoch ticks that cover `timeout`, plus one: the first tick may come right after the
/// call starts.
fn ticks(timeout: Duration) -> u64 {
    (timeout.as_nanos() / EPOCH_TICK.as_nanos()) as u64 + 1
}

fn classify(store: &Store<HostState>, e: wasmtime::Error, timeout: Duration) -> Failure {
    if e.is::<DeadlineExceeded>() {
        return Failure::new(
            Cause::Timeout,
            format!("the call ran past its {timeout:?} deadline"),
        );
    }
    if let Some(GuestAbort(msg)) = e.downcast_ref::<GuestAbort>() {
        return Failure::new(Cause::Panic, msg.clone());
    }
    if store.data().limiter.hit {
        let max = store.data().limiter.max;
        return Failure::new(
            Cause::Memory,
            format!("the module tried to grow its memory beyond max_memory ({max} bytes)"),
        );
    }
    if let Some(exit) = e.downcast_ref::<GuestExit>() {
        return Failure::new(Cause::Trap, exit.to_string());
    }
    match e.downcast_ref::<Trap>() {
        Some(trap) => Failure::new(Cause::Trap, trap.to_string()),
        None => Failure::new(Cause::Trap, format!("{e:#}")),
    }
}
