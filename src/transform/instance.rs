//! One instantiated module and its calls: write the input document into the guest's
//! buffer (the one copy in), call the export under a deadline, and find the output
//! document in guest memory.

use std::sync::Arc;

use abi::output::{read_output, Output};
use abi::WireError;
use wasmtime::{Memory, Store, Trap, TypedFunc};

use super::failure::{Cause, Failure, Stopped};
use super::module::TransformModule;
use super::state::{Deadline, HostState, MemoryCap};
use super::state_store::StateStore;

type CallFunc = TypedFunc<(i32, i32), i64>;

/// An instance ready to transform messages.
pub(crate) struct GuestInstance {
    store: Store<HostState>,
    memory: Memory,
    reserve: TypedFunc<i32, i32>,
    transform: CallFunc,
    /// The guest buffer the host writes inputs into: `(ptr, capacity)`.
    input: Option<(u32, u32)>,
}

impl GuestInstance {
    /// Instantiates the module over the entry's state store and hands it its config
    /// through `rmqtt_transform_init`.
    pub(crate) async fn new(
        module: &TransformModule,
        store: &Arc<StateStore>,
    ) -> Result<GuestInstance, Failure> {
        let (mut instance, init) = Self::instantiate(module, store).await?;
        if let Some(init) = init {
            instance.init(&init, &module.config_doc).await?;
        }
        Ok(instance)
    }

    async fn instantiate(
        module: &TransformModule,
        store: &Arc<StateStore>,
    ) -> Result<(GuestInstance, Option<CallFunc>), Failure> {
        let state = HostState {
            memory_cap: MemoryCap::new(module.max_memory),
            deadline: Deadline::new(module.timeout),
            memory: None,
            label: module.label.clone(),
            guest_log: module.guest_log.clone(),
            epoch: module.engine.epoch().clone(),
            store: store.clone(),
        };
        let mut store = Store::new(module.pre.module().engine(), state);
        store.limiter(|s| &mut s.memory_cap);
        store.epoch_deadline_callback(|mut ctx| ctx.data_mut().deadline.tick());
        store.data_mut().start_call(true);
        store.set_epoch_deadline(1);
        let on_fiber = store.data().epoch.on_fiber();
        let instantiated = module.pre.instantiate_async(&mut store).await;
        drop(on_fiber);
        let instance = match instantiated {
            Ok(i) => i,
            Err(e) => return Err(classify(e, store.data())),
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
                f.typed(&store)
                    .map_err(|e| export_err(abi::EXPORT_INIT, e))?,
            ),
            None => None,
        };
        let instance = GuestInstance {
            store,
            memory,
            reserve,
            transform,
            input: None,
        };
        Ok((instance, init))
    }

    /// Runs `rmqtt_transform_init` with the config document.
    async fn init(&mut self, init: &CallFunc, doc: &[u8]) -> Result<(), Failure> {
        let ptr = self.buffer_on_fiber(doc.len()).await?;
        let ptr = self.fill_input(ptr, doc.len(), |dst| dst.copy_from_slice(doc))?;
        let params = (ptr as i32, doc.len() as i32);
        let packed = call_on_fiber(&mut self.store, init, params).await?;
        match self.output(packed as u64)? {
            Output::Records(_) => Ok(()),
            Output::Error(msg) | Output::Invalid(msg) => Err(Failure::new(
                Cause::GuestError,
                format!("init failed: {}", String::from_utf8_lossy(msg)),
            )),
        }
    }

    /// Transforms one message on a fiber, yielding to the broker's other tasks every
    /// tick; returns where the output document is (see [`Self::output`]).
    pub(crate) async fn call<U: AsRef<[u8]>>(
        &mut self,
        input: &abi::input::InputFields<'_, U>,
    ) -> Result<u64, Failure> {
        let len = input.encoded_len();
        let ptr = self.buffer_on_fiber(len).await?;
        let ptr = self.fill_input(ptr, len, |dst| input.encode(dst))?;
        let params = (ptr as i32, len as i32);
        Ok(call_on_fiber(&mut self.store, &self.transform, params).await? as u64)
    }

    /// Transforms one message with a plain call, which costs less than a fiber but cannot
    /// yield: a call still running at its second tick is stopped with `Err(None)`, and
    /// the instance must not be used again.
    pub(crate) fn call_fast<U: AsRef<[u8]>>(
        &mut self,
        input: &abi::input::InputFields<'_, U>,
    ) -> Result<u64, Option<Failure>> {
        let len = input.encoded_len();
        let ptr = match self.buffer_for(len)? {
            Buffer::Ready(ptr) => ptr,
            Buffer::Reserve(len) => {
                let ptr = call_fast(&mut self.store, &self.reserve, len)?;
                self.reserved(ptr, len)?
            }
        };
        let ptr = self.fill_input(ptr, len, |dst| input.encode(dst))?;
        let params = (ptr as i32, len as i32);
        Ok(call_fast(&mut self.store, &self.transform, params)? as u64)
    }

    /// The bytes of its linear memory.
    pub(crate) fn memory_size(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// Whether the last call was quick enough for the fast path.
    pub(crate) fn last_call_was_quick(&self) -> bool {
        self.store.data().deadline.fit_the_fast_path()
    }

    /// The output document of the last call; it borrows guest memory.
    pub(crate) fn output(&self, packed: u64) -> Result<Output<'_>, Failure> {
        let (ptr, len) = abi::unpack(packed);
        read_output(self.memory.data(&self.store), ptr, len).map_err(|e| {
            let why = match e {
                WireError::TooMany { field: "record count", count, max } => format!(
                    "the module returned {count} records for one message; transform.max_records cannot exceed {max}"
                ),
                e => format!("invalid output document: {e}"),
            };
            Failure::new(Cause::BadOutput, why)
        })
    }

    /// Where an input document of `len` bytes goes: the guest's buffer if it is large
    /// enough, otherwise the guest must reserve a larger one.
    fn buffer_for(&self, len: usize) -> Result<Buffer, Failure> {
        let len32 = u32::try_from(len).map_err(|_| {
            Failure::new(
                Cause::InputTooLarge,
                format!("the input document has {len} bytes, the ABI allows 4 GiB"),
            )
        })?;
        Ok(match self.input {
            Some((ptr, cap)) if cap >= len32 => Buffer::Ready(ptr),
            _ => Buffer::Reserve(len32 as i32),
        })
    }

    /// The input buffer for `len` bytes, reserving a larger one on a fiber when needed.
    async fn buffer_on_fiber(&mut self, len: usize) -> Result<u32, Failure> {
        match self.buffer_for(len)? {
            Buffer::Ready(ptr) => Ok(ptr),
            Buffer::Reserve(len) => {
                let ptr = call_on_fiber(&mut self.store, &self.reserve, len).await?;
                self.reserved(ptr, len)
            }
        }
    }

    /// Takes the buffer `rmqtt_transform_reserve(len)` returned.
    fn reserved(&mut self, ptr: i32, len: i32) -> Result<u32, Failure> {
        if ptr == 0 {
            return Err(Failure::new(
                Cause::Memory,
                format!("rmqtt_transform_reserve({len}) returned 0: the module could not allocate its input buffer"),
            ));
        }
        self.input = Some((ptr as u32, len as u32));
        Ok(ptr as u32)
    }

    /// Writes `len` bytes into the guest's input buffer at `ptr`; returns `ptr`.
    fn fill_input(
        &mut self,
        ptr: u32,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<u32, Failure> {
        let mem = self.memory.data_mut(&mut self.store);
        let mem_len = mem.len();
        match (ptr as usize)
            .checked_add(len)
            .and_then(|end| mem.get_mut(ptr as usize..end))
        {
            Some(dst) => {
                fill(dst);
                Ok(ptr)
            }
            None => {
                self.input = None;
                Err(Failure::new(
                    Cause::BadOutput,
                    format!("rmqtt_transform_reserve returned {ptr}, outside linear memory of {mem_len} bytes"),
                ))
            }
        }
    }
}

/// Where the next input document goes.
enum Buffer {
    Ready(u32),
    Reserve(i32),
}

/// Calls a guest function on a fiber under the deadline, classifying any failure.
async fn call_on_fiber<P, R>(
    store: &mut Store<HostState>,
    func: &TypedFunc<P, R>,
    params: P,
) -> Result<R, Failure>
where
    P: wasmtime::WasmParams + Sync,
    R: wasmtime::WasmResults + Sync,
{
    store.data_mut().start_call(true);
    store.set_epoch_deadline(1);
    let _on_fiber = store.data().epoch.on_fiber();
    match func.call_async(&mut *store, params).await {
        Ok(r) => Ok(r),
        Err(e) => Err(classify(e, store.data())),
    }
}

/// Calls a guest function with a plain call under the deadline; `Err(None)` when it ran
/// past the fast path's ticks.
fn call_fast<P, R>(
    store: &mut Store<HostState>,
    func: &TypedFunc<P, R>,
    params: P,
) -> Result<R, Option<Failure>>
where
    P: wasmtime::WasmParams,
    R: wasmtime::WasmResults,
{
    store.data_mut().start_call(false);
    store.set_epoch_deadline(1);
    match func.call(&mut *store, params) {
        Ok(r) => Ok(r),
        Err(e) if matches!(e.downcast_ref(), Some(Stopped::NeedsFiber)) => Err(None),
        Err(e) => Err(Some(classify(e, store.data()))),
    }
}

/// Classifies an error that a guest call (or instantiation) returned.
fn classify(e: wasmtime::Error, state: &HostState) -> Failure {
    match e.downcast_ref::<Stopped>() {
        Some(Stopped::Deadline) => {
            let timeout = state.deadline.timeout();
            let why = format!("the call ran past its {timeout:?} deadline");
            return Failure::new(Cause::Timeout, why);
        }
        Some(Stopped::Abort(message)) => return Failure::new(Cause::Panic, message.clone()),
        _ => {}
    }
    if state.memory_cap.was_hit() {
        let max = state.memory_cap.max();
        return Failure::new(
            Cause::Memory,
            format!("the module tried to grow its memory beyond max_memory ({max} bytes)"),
        );
    }
    if let Some(exit @ Stopped::Exit(_)) = e.downcast_ref::<Stopped>() {
        return Failure::new(Cause::Trap, exit.to_string());
    }
    match e.downcast_ref::<Trap>() {
        Some(trap) => Failure::new(Cause::Trap, trap.to_string()),
        None => Failure::new(Cause::Trap, format!("{e:#}")),
    }
}
