//! `rmqttd transform bench`: what a module costs per call, measured through the
//! broker's own instance pool, next to a floor module that returns the payload without
//! looking at it (the host's part of every call: copy in, call, check the output).
//! Calls run one after the other on one instance, so the numbers are per call, not the
//! throughput of a broker with several instances.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use rmqtt_bridge_egress_kafka::config::parse_duration;
use rmqtt_bridge_egress_kafka::transform::TransformPool;

use super::config_args::ConfigArgs;
use super::message::{Message, MessageArgs};
use super::{load, pool, settings, start};

/// What a refusal suggests.
const BENCH_ANOTHER: &str = "bench a message it handles (see `rmqttd transform test`)";

/// The floor module, compiled from text at each run.
const BASELINE: &str = include_str!("baseline.wat");

#[derive(Args)]
pub struct BenchArgs {
    /// The module, a `.wasm` file (or `.wat` text), or a JavaScript transform, a `.js` file.
    module: PathBuf,
    #[command(flatten)]
    message: MessageArgs,
    #[command(flatten)]
    config: ConfigArgs,
    /// How long to call each module (after a warm-up of a tenth of it).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    duration: Duration,
    /// Instances to start, as an entry's `transform.instances`; the calls run on one
    /// at a time.
    #[arg(long, default_value_t = 8)]
    instances: usize,
}

/// Calls the floor and then the module on the message, and prints what each costs.
pub async fn run(args: &BenchArgs) -> Result<()> {
    let message = args.message.message()?;
    let dir = tempfile::tempdir()?;
    let floor_path = dir.path().join("baseline.wat");
    std::fs::write(&floor_path, BASELINE)?;
    let floor = pool(&floor_path, &[], None, None).await?;
    let module = started(args).await?;
    // One call first: a message the module fails on is refused at once, with its cause.
    if let Err(failure) = module.run(&message.fields()).await {
        bail!("the module failed on this message ({failure}); {BENCH_ANOTHER}");
    }
    let floor = measure(&floor, &message, args.duration).await;
    let timed = measure(&module, &message, args.duration).await;
    if timed.failed > 0 {
        bail!(
            "the module failed on this message ({} of {} calls); {BENCH_ANOTHER}",
            timed.failed,
            timed.calls
        );
    }
    println!(
        "{:<28}{:>12}{:>11}{:>10}{:>10}",
        "", "calls/s", "mean µs", "p50 µs", "p99 µs"
    );
    println!("{}", floor.row("floor (host only)"));
    let name = args
        .module
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    println!("{}", timed.row(&name));
    println!(
        "the module's own work: {:.2} µs per call ({:.1} × the floor); payload {} B",
        timed.mean_us() - floor.mean_us(),
        timed.mean_us() / floor.mean_us(),
        message.payload.len()
    );
    let memory = module
        .run(&message.fields())
        .await
        .map(|t| t.instance_memory());
    let mib = memory.unwrap_or(0) as f64 / f64::from(1 << 20);
    println!("linear memory of an instance after the calls: {mib:.2} MiB");
    Ok(())
}

/// The module's pool of `--instances`, started as the broker starts it; prints how long
/// compiling, compiling again (as a reload does) and starting the instances took.
async fn started(args: &BenchArgs) -> Result<TransformPool> {
    let config = args.config.entries()?;
    let settings = settings(&args.module, &config, None, None, args.instances)?;
    let clock = Instant::now();
    drop(load(&settings)?);
    let first = clock.elapsed();
    let clock = Instant::now();
    let module = load(&settings)?;
    let again = clock.elapsed();
    let clock = Instant::now();
    let pool = start(module).await?;
    let ready = clock.elapsed();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "start: compiled in {:.0} ms ({:.0} ms again, as at a reload); {} instances ready {:.1} ms after that",
        ms(first),
        ms(again),
        args.instances,
        ms(ready)
    );
    Ok(pool)
}

/// Calls of one module: how many, in how long, their sorted durations (ns).
struct Measured {
    calls: u64,
    failed: u64,
    elapsed: Duration,
    sorted_ns: Vec<u64>,
}

impl Measured {
    fn mean_us(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / self.calls.max(1) as f64
    }

    fn percentile_us(&self, p: f64) -> f64 {
        let i = ((self.sorted_ns.len() as f64 * p) as usize).min(self.sorted_ns.len() - 1);
        self.sorted_ns[i] as f64 / 1000.0
    }

    fn row(&self, name: &str) -> String {
        let rate = self.calls as f64 / self.elapsed.as_secs_f64();
        format!(
            "{name:<28}{rate:>12.0}{:>11.2}{:>10.2}{:>10.2}",
            self.mean_us(),
            self.percentile_us(0.5),
            self.percentile_us(0.99)
        )
    }
}

/// Calls `pool` on `message` for `duration`, after a warm-up of a tenth of it.
async fn measure(pool: &TransformPool, message: &Message, duration: Duration) -> Measured {
    let input = message.fields();
    let warm_up = Instant::now();
    while warm_up.elapsed() < duration / 10 {
        drop(pool.run(&input).await);
    }
    let mut sorted_ns = Vec::with_capacity(1 << 20);
    let mut failed = 0;
    let started = Instant::now();
    while started.elapsed() < duration {
        let call = Instant::now();
        // The instance goes back to the pool when the result is dropped: part of a call.
        failed += u64::from(pool.run(&input).await.is_err());
        sorted_ns.push(call.elapsed().as_nanos() as u64);
    }
    let elapsed = started.elapsed();
    sorted_ns.sort_unstable();
    Measured {
        calls: sorted_ns.len() as u64,
        failed,
        elapsed,
        sorted_ns,
    }
}
