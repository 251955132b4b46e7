//! `bridge-bench run`: every (load × configuration), each on a fresh tansu and broker.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use serde_json::{json, Value};

use crate::broker::PluginKind;
use crate::canary::Canary;
use crate::config::{plugin_config, Config, Settings, TOPIC};
use crate::kafka::{Drain, Reader, Tansu, Window};
use crate::load::{now_us, Load, Publishers};
use crate::owners::Profiler;
use crate::pin::CpuSet;
use crate::process::{CpuSnapshot, Proc, RssSampler};
use crate::report::{equal_load_table, median_runs, table, Measured, Metrics, RunResult};
use crate::RunArgs;

/// The partitions of the Kafka topic every bridge writes to.
const PARTITIONS: u32 = 4;

pub fn main(args: RunArgs) -> Result<()> {
    if !args.tansu.is_file() {
        bail!(
            "tansu not found at {} (scripts/setup.sh tansu installs it; scripts/tansu-path.sh prints its path)",
            args.tansu.display()
        );
    }
    if args.profile.is_some() {
        crate::owners::check_perf()?;
    }
    for c in &args.only {
        if let Some((module, _)) = c.transform() {
            let path = args.modules.join(module);
            if !path.is_file() {
                bail!(
                    "{} not found (build the examples: cd examples && cargo build --release --target wasm32-unknown-unknown)",
                    path.display()
                );
            }
        }
    }
    std::fs::create_dir_all(&args.logs)
        .with_context(|| format!("cannot create {}", args.logs.display()))?;
    let exe = std::env::current_exe()?;
    if let Some((_, broker_cpus)) = &args.pin_broker {
        // Before any thread or child starts: they inherit it.
        broker_cpus.complement()?.pin_this_thread()?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let header = format!(
        "{} publishers, {} s warmup, {} s steady state",
        args.publishers,
        args.warmup.as_secs_f64(),
        args.duration.as_secs_f64()
    ) + &median_of(args.repeat)
        + &args
            .pin_broker
            .as_ref()
            .map(|(cpus, _)| format!(", broker pinned to CPU {cpus}"))
            .unwrap_or_default()
        + &args
            .properties
            .iter()
            .map(|(k, v)| format!(", {k}={v}"))
            .collect::<String>();
    let started = Instant::now();
    let mut results = Vec::new();
    let mut tables = Vec::new();
    for &load in &args.loads {
        let first = results.len();
        for round in 1..=args.repeat {
            for &config in &args.only {
                wait_for_quiet(args.quiet_wait);
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "[{secs:>5.0} s] {load} {config} (run {round} of {})",
                    args.repeat
                );
                results.push(measure(&args, &exe, &runtime, config, load));
            }
        }
        let runs: Vec<&RunResult> = results[first..].iter().collect();
        let these = median_runs(&runs, args.rate.is_some());
        tables.push(match args.rate {
            Some(rate) => equal_load_table(load, rate, &these, &header),
            None => table(load, &these, &header),
        });
    }
    let elapsed = started.elapsed();
    write_json(&args, &results, elapsed)?;
    let by_load = crate::plot::median_runs_by_load(&results, args.rate.is_some());
    let title = match args.rate {
        Some(rate) => format!("bridge-bench at {rate} msg/s offered — {header}"),
        None => format!("bridge-bench at saturation — {header}"),
    };
    crate::plot::write_svg(&args.plot, &title, &by_load)?;
    println!("{header}; Kafka: tansu, topic of {PARTITIONS} partitions; ratios from this run\n");
    for t in &tables {
        println!("{t}");
    }
    println!(
        "total {:.0} s; raw results in {}, plot in {}",
        elapsed.as_secs_f64(),
        args.out.display(),
        args.plot.display()
    );
    Ok(())
}

/// `, median of N runs` when each configuration ran more than once.
fn median_of(repeat: u32) -> String {
    if repeat > 1 {
        format!(", median of {repeat} runs")
    } else {
        String::new()
    }
}

/// One run, reported as it ends.
fn measure(
    args: &RunArgs,
    exe: &Path,
    runtime: &tokio::runtime::Runtime,
    config: Config,
    load: Load,
) -> RunResult {
    let (metrics, error) = match one_run(args, exe, runtime, config, load) {
        Ok(m) => {
            eprintln!("  {}", m.summary());
            (Some(m), None)
        }
        Err(e) => {
            eprintln!("  failed: {e:#}");
            (None, Some(format!("{e:#}")))
        }
    };
    RunResult {
        config,
        load: load.to_string(),
        error,
        metrics,
    }
}

fn write_json(args: &RunArgs, results: &[RunResult], elapsed: Duration) -> Result<()> {
    let doc = json!({
        "settings": {
            "publishers": args.publishers,
            "rate_per_s": args.rate,
            "repeat": args.repeat,
            "warmup_s": args.warmup.as_secs_f64(),
            "duration_s": args.duration.as_secs_f64(),
            "drain_quiet_s": args.drain_quiet.as_secs_f64(),
            "drain_max_s": args.drain_max.as_secs_f64(),
            "kafka_partitions": PARTITIONS,
            "extra_properties": args.properties,
        },
        "elapsed_s": elapsed.as_secs_f64(),
        "results": results,
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("cannot write {}", args.out.display()))
}

/// Waits (up to `max`) until the machine is idle: other processes' CPU would distort
/// the run. Anything left over shows in the run's CPU columns and warnings.
fn wait_for_quiet(max: Duration) {
    let deadline = Instant::now() + max;
    let mut said = false;
    loop {
        let before = CpuSnapshot::take(&[]);
        std::thread::sleep(Duration::from_secs(1));
        let busy = CpuSnapshot::take(&[]).since(&before, 1.0).other;
        if busy < 0.15 || Instant::now() >= deadline {
            if said && busy >= 0.15 {
                eprintln!("  still {busy:.2} cores busy; going on");
            }
            return;
        }
        if !said {
            eprintln!("  waiting for other processes to go quiet ({busy:.2} cores busy)...");
            said = true;
        }
    }
}

/// The broker process and the lines it prints.
struct Broker {
    proc: Proc,
    lines: mpsc::Receiver<String>,
    addr: SocketAddr,
}

impl Broker {
    fn start(
        exe: &Path,
        plugin: PluginKind,
        config: Option<&Path>,
        cpus: Option<&CpuSet>,
        log: &Path,
        profiled: bool,
    ) -> Result<Broker> {
        let mut cmd = Command::new(exe);
        cmd.args(["broker", "--plugin", plugin.as_str(), "--port", "0"]);
        if profiled {
            // Names the modules' compiled code for perf.
            cmd.env("RMQTT_KAFKA_BRIDGE_PERF_MAP", "1");
        }
        if let Some(cpus) = cpus {
            cpus.pin_command(&mut cmd);
        }
        if let Some(c) = config {
            cmd.arg("--plugin-config").arg(c);
        }
        let mut proc = Proc::spawn("broker", cmd, log, true)?;
        let stdout = proc.stdout().ok_or_else(|| anyhow!("no broker stdout"))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Compiling the modules of d and e takes a moment.
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            match lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("listening ") {
                        break a.parse()?;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    proc.check_running()
                        .with_context(|| format!("see {}", log.display()))?;
                }
                Err(_) => bail!("the broker did not start (see {})", log.display()),
            }
        };
        Ok(Broker { proc, lines, addr })
    }

    /// Stops the broker; returns the plugin attrs it printed.
    fn stop(self) -> Result<Value> {
        self.proc.terminate(Duration::from_secs(15))?;
        let mut attrs = Value::Null;
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
            if let Some(a) = line.strip_prefix("attrs ") {
                attrs = serde_json::from_str(a)?;
            }
        }
        Ok(attrs)
    }
}

/// Rewrites the plugin's file with one librdkafka property changed (so that the reload
/// replaces every producer) and tells the broker to reload it.
fn reload(args: &RunArgs, config: Config, bootstrap: &str, file: &Path, pid: u32) -> Result<()> {
    let mut properties = args.properties.clone();
    properties.push(("statistics.interval.ms".into(), "5001".into()));
    let settings = Settings {
        properties: &properties,
        ..args.settings()
    };
    let text = plugin_config(
        config,
        bootstrap,
        &args.modules,
        &spool_dir(args, config),
        settings,
    );
    std::fs::write(file, text)?;
    signal(pid, "HUP")
}

/// `kill -<name> <pid>`.
fn signal(pid: u32, name: &str) -> Result<()> {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()?;
    anyhow::ensure!(sent.success(), "kill -{name} {pid}");
    Ok(())
}

/// Where f spools: next to the logs, on the disk the benchmark runs on.
fn spool_dir(args: &RunArgs, config: Config) -> PathBuf {
    args.logs.join(format!("spool-{}", config.letter()))
}

/// [`spool_dir`], emptied, so that no run replays another's records.
fn fresh_spool_dir(args: &RunArgs, config: Config) -> Result<PathBuf> {
    let dir = spool_dir(args, config);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(dir)
}

fn one_run(
    args: &RunArgs,
    exe: &Path,
    runtime: &tokio::runtime::Runtime,
    config: Config,
    load: Load,
) -> Result<Metrics> {
    let tag = format!("{load}-{}", config.letter());
    let log = |what: &str| -> Result<PathBuf> {
        let p = args.logs.join(format!("{tag}.{what}"));
        if p.exists() {
            std::fs::remove_file(&p)?;
        }
        Ok(p)
    };
    let tansu = Tansu::start(&args.tansu, &log("tansu.log")?)?;
    tansu.create_topic(&args.tansu, TOPIC, PARTITIONS)?;
    let has_bridge = config.plugin() != PluginKind::None;
    let plugin_file = if has_bridge {
        let f = log("plugin.toml")?;
        std::fs::write(
            &f,
            plugin_config(
                config,
                &tansu.bootstrap,
                &args.modules,
                &fresh_spool_dir(args, config)?,
                args.settings(),
            ),
        )?;
        Some(f)
    } else {
        None
    };
    let broker = Broker::start(
        exe,
        config.plugin(),
        plugin_file.as_deref(),
        args.pin_broker.as_ref().map(|(_, cpus)| cpus),
        &log("broker.log")?,
        args.profile.is_some(),
    )?;
    let rss = RssSampler::start(broker.proc.pid());
    // Without a bridge nothing arrives in Kafka: no need to wait for stragglers.
    let drain = Drain {
        quiet: if has_bridge {
            args.drain_quiet
        } else {
            Duration::ZERO
        },
        max: args.drain_max,
    };
    let reader = Reader::start(&tansu.bootstrap, TOPIC, PARTITIONS, drain)?;
    let mut publishers = runtime.block_on(Publishers::connect(
        broker.addr,
        "bench-pub",
        args.publishers,
        load,
    ))?;

    let start_us = now_us() + args.warmup.as_micros() as u64;
    let window = Window {
        start_us,
        end_us: start_us + args.duration.as_micros() as u64,
        reload_us: args.reload_at.map(|at| start_us + at.as_micros() as u64),
    };
    reader.begin(window)?;
    let stop = Arc::new(AtomicBool::new(false));
    let pids = [broker.proc.pid(), tansu.pid(), std::process::id()];
    let canary = Canary::start(args.warmup, args.duration);
    let profiler = match args.profile {
        // In the middle of the window.
        Some(length) => Some(Profiler::start(
            broker.proc.pid(),
            args.warmup + args.duration.saturating_sub(length) / 2,
            length.min(args.duration),
            &log("perf")?,
        )?),
        None => None,
    };
    let (window_s, ingest_in_window, cpu, published) = runtime.block_on(async {
        let t0 = tokio::time::Instant::now();
        publishers.start(&stop, args.rate);
        tokio::time::sleep_until(t0 + args.warmup).await;
        let (c1, w1, cpu1) = (publishers.done(), Instant::now(), CpuSnapshot::take(&pids));
        if let (Some(at), Some(file)) = (args.reload_at, &plugin_file) {
            tokio::time::sleep_until(t0 + args.warmup + at).await;
            reload(args, config, &tansu.bootstrap, file, broker.proc.pid())?;
        }
        if let Some(at) = args.stall_at {
            tokio::time::sleep_until(t0 + args.warmup + at).await;
            signal(tansu.pid(), "STOP")?;
            tokio::time::sleep(args.stall_for).await;
            signal(tansu.pid(), "CONT")?;
        }
        tokio::time::sleep_until(t0 + args.warmup + args.duration).await;
        let (c2, w2, cpu2) = (publishers.done(), Instant::now(), CpuSnapshot::take(&pids));
        stop.store(true, Ordering::Relaxed);
        let published = publishers.finish(Duration::from_secs(10)).await;
        let window_s = (w2 - w1).as_secs_f64();
        anyhow::Ok((window_s, c2 - c1, cpu2.since(&cpu1, window_s), published))
    })?;
    let canary_us = canary.finish();
    let owner_cores = match profiler {
        Some(p) => p.finish()?.cores(),
        None => Vec::new(),
    };
    let load_end_us = now_us();
    let rss_end_of_load_kb = rss.current_kb();
    let received = reader.finish()?;
    let rss = rss.finish();
    let plugin_attrs = broker.stop()?;
    tansu.stop()?;
    Ok(Metrics::compute(Measured {
        window_s,
        ingest_in_window,
        cpu,
        published,
        received,
        load_end_us,
        has_bridge,
        peak_rss_kb: rss.hwm_kb,
        rss_end_of_load_kb,
        rss_samples: rss.samples,
        plugin_attrs,
        canary_us,
        owner_cores,
    }))
}
