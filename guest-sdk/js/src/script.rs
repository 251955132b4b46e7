//! One instance's JavaScript: the runtime, the script's top-level code (run once, in
//! [`Script::start`]) and its `transform`, called once per message.

use rmqtt_kafka_transform::{abi, Config, Error, Message, Outcome};
use rquickjs::context::EvalOptions;
use rquickjs::{
    Array, CatchResultExt, CaughtError, Context, Ctx, Function, Object, Persistent, Runtime,
    String as JsString, TypedArray, Value,
};

use crate::bytes::{text, with_bytes};
use crate::exception::describe;
use crate::payload::CurrentPayload;
use crate::records::{self, Invalid, Members};

const PRELUDE: &str = include_str!("prelude.js");

/// A script, started. Its fields drop in order: the function the script's values hang
/// from before its context, the context before the runtime.
pub struct Script {
    run: Persistent<Function<'static>>,
    members: Members,
    payload: CurrentPayload,
    context: Context,
    _runtime: Runtime,
}

impl Script {
    /// Runs the script's top-level code with the entry's config, and finds `transform`.
    pub fn start(cfg: &Config) -> Result<Script, Error> {
        let source = cfg.get(abi::script::SOURCE).ok_or_else(|| {
            Error::msg(format_args!(
                "no script: the host passes none under `{}`",
                abi::script::SOURCE
            ))
        })?;
        let name = cfg.get(abi::script::NAME).unwrap_or("script.js");
        let runtime = Runtime::new().map_err(Error::msg)?;
        let context = Context::full(&runtime).map_err(Error::msg)?;
        let payload = CurrentPayload::default();
        let run = context.with(|ctx| {
            let runner = prelude(&ctx, &payload)
                .map_err(|e| Error::msg(format_args!("the runtime's prelude failed: {e}")))?;
            let config = config_object(&ctx, cfg).map_err(Error::msg)?;
            crate::state::define(&ctx).map_err(Error::msg)?;
            run_top_level(&ctx, source, name)?;
            let transform = find_transform(&ctx, name)?;
            let run: Function = runner.call((transform, config)).map_err(Error::msg)?;
            let members = Members::new(&ctx).map_err(Error::msg)?;
            Ok::<_, Error>((Persistent::save(&ctx, run), members))
        })?;
        Ok(Script {
            run: run.0,
            members: run.1,
            payload,
            context,
            _runtime: runtime,
        })
    }

    /// Calls `transform(msg, config)` and reads the records it returned.
    pub fn transform<'m>(&self, msg: &'m Message<'m>) -> Result<Outcome<'m>, Error> {
        self.context.with(|ctx| {
            let call_number = self.payload.begin(msg.payload());
            let returned = call(&ctx, &self.run, call_number, msg);
            self.payload.end();
            let returned = returned.catch(&ctx).map_err(|e| failed(&ctx, e))?;
            match records::outcome(&ctx, &self.members, returned, msg) {
                // A record Kafka cannot take (an invalid topic name) is the script's
                // output at fault, as the host counts a module's.
                Ok(outcome) => match outcome.validate() {
                    Ok(()) => Ok(outcome),
                    Err(e) => Err(Error::invalid_output(e.message())),
                },
                Err(Invalid::Shape(text)) => Err(Error::invalid_output(text)),
                Err(Invalid::Threw(e)) => Err(failed(&ctx, CaughtError::from_error(&ctx, e))),
            }
        })
    }
}

/// `run(call, topic, flags, clientId, username, properties, timestamp)`, with the QoS
/// and the retain flag in `flags` (`qos | retain << 2`); the payload is the call's
/// [`CurrentPayload`].
fn call<'js>(
    ctx: &Ctx<'js>,
    run: &Persistent<Function<'static>>,
    call: u32,
    msg: &Message<'_>,
) -> rquickjs::Result<Value<'js>> {
    let run = run.clone().restore(ctx)?;
    let flags = i32::from(msg.qos()) | i32::from(msg.retain()) << 2;
    let properties = match msg.user_properties().next() {
        None => None,
        Some(_) => Some(properties(ctx, msg)?),
    };
    let timestamp = msg.timestamp_ms() as f64;
    run.call((
        call,
        msg.topic(),
        flags,
        msg.client_id(),
        msg.username(),
        properties,
        timestamp,
    ))
}

/// The MQTT v5 user properties as `[name, value]` pairs, in the order sent.
fn properties<'js>(ctx: &Ctx<'js>, msg: &Message<'_>) -> rquickjs::Result<Array<'js>> {
    let list = Array::new(ctx.clone())?;
    for (i, (name, value)) in msg.user_properties().enumerate() {
        let pair = Array::new(ctx.clone())?;
        pair.set(0, name)?;
        pair.set(1, value)?;
        list.set(i, pair)?;
    }
    Ok(list)
}

/// Evaluates the prelude and returns its `runner`.
fn prelude<'js>(ctx: &Ctx<'js>, payload: &CurrentPayload) -> rquickjs::Result<Function<'js>> {
    let setup: Function = ctx.eval_with_options(PRELUDE, options("<prelude>"))?;
    let decode = Function::new(ctx.clone(), decode_utf8)?;
    let encode = Function::new(ctx.clone(), encode_utf8)?;
    let (p, q, r) = (payload.clone(), payload.clone(), payload.clone());
    let bytes = Function::new(ctx.clone(), move |ctx, call| p.bytes(ctx, call))?;
    let text = Function::new(ctx.clone(), move |ctx, call| q.text(ctx, call))?;
    let json = Function::new(ctx.clone(), move |ctx, call| r.json(ctx, call))?;
    setup.call((decode, encode, bytes, text, json))
}

fn options(name: &str) -> EvalOptions {
    let mut options = EvalOptions::default();
    options.global = true;
    options.strict = false;
    options.backtrace_barrier = true;
    options.filename = Some(name.to_owned());
    options
}

/// The entry's `transform.config` as a frozen object of strings, also the global `config`.
fn config_object<'js>(ctx: &Ctx<'js>, cfg: &Config) -> rquickjs::Result<Object<'js>> {
    let config = Object::new(ctx.clone())?;
    for (k, v) in cfg.iter().filter(|(k, _)| !abi::script::is_reserved(k)) {
        config.set(k, v)?;
    }
    let object: Object = ctx.globals().get("Object")?;
    let freeze: Function = object.get("freeze")?;
    let config: Object = freeze.call((config,))?;
    ctx.globals().set("config", config.clone())?;
    Ok(config)
}

fn run_top_level(ctx: &Ctx<'_>, source: &str, name: &str) -> Result<(), Error> {
    ctx.eval_with_options::<(), _>(source, options(name))
        .catch(ctx)
        .map_err(|e| failed(ctx, e))
}

fn find_transform<'js>(ctx: &Ctx<'js>, name: &str) -> Result<Function<'js>, Error> {
    let value: Value = ctx.globals().get("transform").map_err(Error::msg)?;
    match value.into_function() {
        Some(f) => Ok(f),
        None => Err(Error::msg(format_args!(
            "{name} defines no function `transform`: a script must define `function transform(msg, config)`"
        ))),
    }
}

/// What the script threw, as the call's error. The engine's own out-of-memory error
/// ends the call as a trap instead: the heap is full, so the instance is better replaced
/// (the host counts it `memory`, as it found the memory limit hit).
fn failed<'js>(ctx: &Ctx<'js>, e: CaughtError<'js>) -> Error {
    if is_out_of_memory(&e) {
        out_of_memory();
    }
    Error::msg(match e {
        CaughtError::Exception(ex) => describe(ctx, ex.into_value()),
        CaughtError::Value(v) => describe(ctx, v),
        CaughtError::Error(e) => e.to_string(),
    })
}

fn is_out_of_memory(e: &CaughtError<'_>) -> bool {
    let CaughtError::Exception(ex) = e else {
        return false;
    };
    let name: Option<String> = ex.get("name").ok();
    name.as_deref() == Some("InternalError") && ex.message().as_deref() == Some("out of memory")
}

#[cfg(target_arch = "wasm32")]
fn out_of_memory() {
    std::process::abort();
}

/// Natively (in tests) the error is reported like any other.
#[cfg(not(target_arch = "wasm32"))]
fn out_of_memory() {}

/// `decodeUtf8(bytes, fatal)`: the text of a `Uint8Array` or `ArrayBuffer`.
fn decode_utf8<'js>(
    ctx: Ctx<'js>,
    bytes: Value<'js>,
    fatal: bool,
) -> rquickjs::Result<JsString<'js>> {
    match with_bytes(&bytes, |b| text(&ctx, b, fatal)) {
        Some(decoded) => decoded,
        None => Err(rquickjs::Exception::throw_type(
            &ctx,
            "expected a Uint8Array or an ArrayBuffer",
        )),
    }
}

/// `encodeUtf8(text)`: a new `Uint8Array` of the text's UTF-8 bytes.
fn encode_utf8<'js>(ctx: Ctx<'js>, text: String) -> rquickjs::Result<TypedArray<'js, u8>> {
    TypedArray::new(ctx, text.into_bytes())
}
