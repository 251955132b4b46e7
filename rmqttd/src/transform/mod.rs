//! `rmqttd transform …`, the transform author's entry point.
//!
//! `test` runs a built module on sample messages through the broker's own host runtime
//! (the same pool, limits and ABI checks as a running bridge) and prints what the
//! bridge would send to Kafka, one JSON object per line; `--expect` compares that with
//! a golden file. Exit status: 0 the output was printed (and matched the golden file),
//! 1 the output differs from the golden file, or with `--fail-on-error` the module
//! failed on a message, 2 bad arguments, input or module. `bench` times calls of a module, and of a floor module, through that pool;
//! `new` creates a transform crate.

mod bench;
mod config_args;
mod message;
mod new;
mod report;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use rmqtt_bridge_egress_kafka::config::TransformConfig;
use rmqtt_bridge_egress_kafka::transform::{
    Cause, TransformEngine, TransformModule, TransformPool,
};
use serde_json::{json, Value};

use config_args::ConfigArgs;
use message::{read_lines, Message, MessageArgs};

#[derive(Subcommand)]
pub enum TransformCommand {
    /// Runs a built module on sample messages and prints the records it makes.
    Test(TestArgs),
    /// Measures what a module costs per call, next to the host's floor.
    Bench(bench::BenchArgs),
    /// Creates a transform crate that builds and tests as generated.
    New(new::NewArgs),
}

#[derive(Args)]
pub struct TestArgs {
    /// The module, a `.wasm` file (or `.wat` text), or a JavaScript transform, a `.js` file.
    module: PathBuf,
    #[command(flatten)]
    message: MessageArgs,
    /// Messages, one JSON object per line, with the flags' fields (`topic`, `payload`,
    /// `payload_b64` or `payload_json`, `qos`, `retain`, `clientid`, `username`,
    /// `properties` as `[["name", "value"], …]`, `timestamp_ms`); the flags give the
    /// defaults.
    #[arg(long)]
    input: Option<PathBuf>,
    #[command(flatten)]
    config: ConfigArgs,
    /// `transform.timeout` (the broker's default if absent).
    #[arg(long)]
    timeout: Option<String>,
    /// `transform.max_memory` (the broker's default if absent).
    #[arg(long)]
    max_memory: Option<String>,
    /// A golden file: the output expected, one JSON object per line. Exits 1 and
    /// prints the differences if the output is not the same: each field that differs,
    /// per message and record, then both lines.
    #[arg(long)]
    expect: Option<PathBuf>,
    /// With `--expect`: an error matches on its cause alone, not its message (for a
    /// transform written again in another language, whose errors are worded otherwise).
    #[arg(long, requires = "expect")]
    ignore_messages: bool,
    /// Exits 1 when the module failed on any message (a smoke test); without it, a
    /// failure is an `error` line of the output like any other outcome.
    #[arg(long)]
    fail_on_error: bool,
}

/// Runs a `transform` subcommand; its exit status.
pub async fn run(command: TransformCommand) -> ExitCode {
    let (name, result) = match command {
        TransformCommand::Test(args) => ("test", test(&args).await),
        TransformCommand::Bench(args) => ("bench", bench::run(&args).await.map(|()| true)),
        TransformCommand::New(args) => ("new", new::run(&args).map(|()| true)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("rmqttd transform {name}: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Prints the output of every message; whether it matched `--expect` (if given).
async fn test(args: &TestArgs) -> Result<bool> {
    let timeout = args.timeout.as_deref();
    let pool = pool(
        &args.module,
        &args.config.entries()?,
        timeout,
        args.max_memory.as_deref(),
    )
    .await?;
    let defaults = args.message.message()?;
    let messages = match &args.input {
        Some(path) => read_lines(path, &defaults)?,
        None => vec![defaults],
    };
    let mut lines = Vec::new();
    let mut failed = 0;
    for (i, m) in messages.iter().enumerate() {
        failed += usize::from(!transform(&pool, i, m, &mut lines).await);
    }
    let mut out = std::io::stdout().lock();
    for line in &lines {
        writeln!(out, "{line}")?;
    }
    let matched = match &args.expect {
        Some(golden) => {
            let diff = report::compare(golden, &lines, args.ignore_messages)?;
            eprint!("{diff}");
            diff.is_empty()
        }
        None => true,
    };
    if args.fail_on_error && failed > 0 {
        let n = messages.len();
        eprintln!("rmqttd transform test: the module failed on {failed} of {n} messages");
        return Ok(false);
    }
    Ok(matched)
}

/// The instance pool of `code`, one instance, with the broker's defaults for what is
/// not given.
async fn pool(
    code: &Path,
    config: &[(String, String)],
    timeout: Option<&str>,
    max_memory: Option<&str>,
) -> Result<TransformPool> {
    let settings = settings(code, config, timeout, max_memory, 1)?;
    let module = load(&settings)?;
    start(module).await
}

/// An entry's transform settings: `code` is a script if its name ends in `.js`, else a
/// module; the broker's defaults for what is not given.
fn settings(
    code: &Path,
    config: &[(String, String)],
    timeout: Option<&str>,
    max_memory: Option<&str>,
    instances: usize,
) -> Result<TransformConfig> {
    let config: serde_json::Map<String, Value> = config
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    let kind = if is_script(code) { "script" } else { "module" };
    let mut settings = json!({kind: code, "config": config, "instances": instances});
    if let Some(t) = timeout {
        settings["timeout"] = t.into();
    }
    if let Some(m) = max_memory {
        settings["max_memory"] = m.into();
    }
    serde_json::from_value(settings).context("--timeout or --max-memory")
}

/// Whether `path` names a JavaScript transform.
fn is_script(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "js")
}

/// Compiles the settings' module (or prepares the JavaScript runtime with its script).
fn load(settings: &TransformConfig) -> Result<Arc<TransformModule>> {
    let engine = TransformEngine::new([settings]).map_err(|e| anyhow!(e))?;
    let module = TransformModule::load(&Arc::new(engine), settings, "rmqttd transform")
        .map_err(|e| anyhow!(e))?;
    Ok(Arc::new(module))
}

/// Creates the module's instances.
async fn start(module: Arc<TransformModule>) -> Result<TransformPool> {
    TransformPool::new(module).await.map_err(|f| match f.cause {
        // The module's own words (`init failed: …`).
        Cause::GuestError => anyhow!("{}", f.message),
        _ => anyhow!("the module could not be instantiated: {f}"),
    })
}

/// Runs the module on message `i` and adds its output lines; whether it succeeded.
async fn transform(
    pool: &TransformPool,
    i: usize,
    m: &Message,
    lines: &mut Vec<report::Line>,
) -> bool {
    let input = m.fields();
    match pool.run(&input).await {
        Err(failure) => {
            lines.push(report::error(i, &failure));
            return false;
        }
        Ok(out) if out.is_empty() => lines.push(report::filtered(i)),
        Ok(out) => lines.extend(out.records().map(|r| report::record(i, &r))),
    }
    true
}
