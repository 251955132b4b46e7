//! One instantiated module and its calls: write the input document into the guest's
//! buffer (the one copy in), call the export under a deadline, and find the output
//! document in guest memory.

use abi::output::{read_output, Output};
use wasmtime::{Memory, Store, Trap, TypedFunc};

use super::failure::{Cause, DeadlineExceeded, Failure, GuestAbort, GuestExit};
use super::module::TransformModule;
use super::state::{Deadline, HostState, MemoryCap};

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
    /// Instantiates the module and hands it its config through `rmqtt_transform_init`.
    pub(crate) async fn new(module: &TransformModule) -> Result<GuestInstance, Failure> {
        let (mut instance, init) = Self::instantiate(module).await?;
        if let Some(init) = init {
            instance.init(&init, &module.config_doc).await?;
        }
        Ok(instance)
    }

    async fn instantiate(
        module: &TransformModule,
    ) -> Result<(GuestInstance, Option<CallFunc>), Failure> {
        let state = HostState {
            memory_cap: MemoryCap::new(module.max_memory),
            deadline: Deadline::new(module.timeout),
            memory: None,
            label: module.label.clone(),
            guest_log: module.guest_log.clone(),
        };
        let mut store = Store::new(module.pre.module().engine(), state);
        store.limiter(|s| &mut s.memory_cap);
        store.epoch_deadline_callback(|mut ctx| ctx.data_mut().deadline.tick());
        store.data_mut().start_call();
        store.set_epoch_deadline(1);
        let instance = match module.pre.instantiate_async(&mut store).await {
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
        let ptr = self
            .write_input(doc.len(), |dst| dst.copy_from_slice(doc))
            .await?;
        let packed = call_guest(&mut self.store, init, (ptr as i32, doc.len() as i32)).await?;
        match self.output(packed as u64)? {
            Output::Records(_) => Ok(()),
            Output::Error(msg) => Err(Failure::new(
                Cause::GuestError,
                format!("init failed: {}", String::from_utf8_lossy(msg)),
            )),
        }
    }

    /// Transforms one message; returns where the output document is (see [`Self::output`]).
    pub(crate) async fn call<U: AsRef<[u8]>>(
        &mut self,
        input: &abi::input::InputFields<'_, U>,
    ) -> Result<u64, Failure> {
        let len = input.encoded_len();
        let ptr = self.write_input(len, |dst| input.encode(dst)).await?;
        let packed = call_guest(&mut self.store, &self.transform, (ptr as i32, len as i32)).await?;
        Ok(packed as u64)
    }

    /// The output document of the last call; it borrows guest memory.
    pub(crate) fn output(&self, packed: u64) -> Result<Output<'_>, Failure> {
        let (ptr, len) = abi::unpack(packed);
        read_output(self.memory.data(&self.store), ptr, len)
            .map_err(|e| Failure::new(Cause::BadOutput, format!("invalid output document: {e}")))
    }

    /// Writes `len` bytes into the guest's input buffer, reserving a larger one first
    /// when needed. Returns the buffer's address.
    async fn write_input(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<u32, Failure> {
        let len32 = u32::try_from(len).map_err(|_| {
            Failure::new(
                Cause::InputTooLarge,
                format!("the input document has {len} bytes, the ABI allows 4 GiB"),
            )
        })?;
        let ptr = match self.input {
            Some((ptr, cap)) if cap >= len32 => ptr,
            _ => {
                let ptr = call_guest(&mut self.store, &self.reserve, len32 as i32).await? as u32;
                if ptr == 0 {
                    return Err(Failure::new(
                        Cause::Memory,
                        format!("rmqtt_transform_reserve({len}) returned 0: the module could not allocate its input buffer"),
                    ));
                }
                self.input = Some((ptr, len32));
                ptr
            }
        };
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

/// Calls a guest function under the deadline, classifying any failure.
async fn call_guest<P, R>(
    store: &mut Store<HostState>,
    func: &TypedFunc<P, R>,
    params: P,
) -> Result<R, Failure>
where
    P: wasmtime::WasmParams + Sync,
    R: wasmtime::WasmResults + Sync,
{
    store.data_mut().start_call();
    store.set_epoch_deadline(1);
    match func.call_async(&mut *store, params).await {
        Ok(r) => Ok(r),
        Err(e) => Err(classify(e, store.data())),
    }
}

/// Classifies an error that a guest call (or instantiation) returned.
fn classify(e: wasmtime::Error, state: &HostState) -> Failure {
    if e.is::<DeadlineExceeded>() {
        let timeout = state.deadline.timeout();
        return Failure::new(
            Cause::Timeout,
            format!("the call ran past its {timeout:?} deadline"),
        );
    }
    if let Some(GuestAbort(msg)) = e.downcast_ref::<GuestAbort>() {
        return Failure::new(Cause::Panic, msg.clone());
    }
    if state.memory_cap.was_hit() {
        let max = state.memory_cap.max();
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
