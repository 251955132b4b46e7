//! `bridge-bench`: runs one MQTT load against five broker configurations, with a real
//! Kafka-compatible broker (tansu) as a separate process, and reports what reached Kafka.
//!
//! - `bridge-bench run` drives everything: per configuration and load it starts a fresh
//!   tansu, a broker (`bridge-bench broker`, its own process so that its RSS is its own),
//!   the MQTT publishers and a Kafka reader, then prints a table and writes JSON.
//! - `bridge-bench broker` is that broker: RMQTT with no bridge, the upstream plugin or
//!   this plugin.

mod broker;
mod canary;
mod config;
mod kafka;
mod load;
mod owners;
mod pin;
mod plot;
mod process;
mod report;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::broker::PluginKind;
use crate::config::Config;
use crate::load::Load;

#[derive(Parser)]
#[command(
    name = "bridge-bench",
    about = "Benchmark of MQTT-to-Kafka bridging in RMQTT"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs an RMQTT broker (used by `run`; one process per measured configuration).
    Broker {
        /// Which bridge plugin to register as "rmqtt-bridge-egress-kafka".
        #[arg(long, value_enum)]
        plugin: PluginKind,
        /// The plugin's TOML configuration.
        #[arg(long, required_if_eq_any([("plugin", "upstream"), ("plugin", "ours")]))]
        plugin_config: Option<PathBuf>,
        /// TCP port on 127.0.0.1; 0 picks a free one. The bound address is printed on
        /// stdout as `listening <addr>`.
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Runs the benchmark and prints the results.
    Run(Box<RunArgs>),
    /// Draws the plot of a results file again (`run --out`): per load, each
    /// configuration's median run.
    Plot {
        /// The results file.
        results: PathBuf,
        /// Where to write the SVG.
        #[arg(long, default_value = "bench-plot.svg")]
        out: PathBuf,
    },
    /// Publishes at full speed to running brokers, the same publishers on each address
    /// (the nodes of a cluster, say), and prints how many were acknowledged.
    Load {
        #[arg(long, required = true)]
        addr: Vec<std::net::SocketAddr>,
        /// Publishers per address.
        #[arg(long, default_value_t = 2)]
        publishers: u32,
        #[arg(long, default_value = "qos1-256")]
        load: Load,
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
    },
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Steady-state measurement window of each run (e.g. 10s, 1500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load before the measurement window, not counted in rates or latencies.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Offered load in messages per second, in all, paced evenly across the publishers;
    /// every configuration gets the same. Adds the equal-load table: CPU per message and
    /// the differences between configurations. Without it, publishers go as fast as they
    /// can (saturation).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// Runs every configuration this many times, in rounds (a, c, d, … then again), and
    /// reports each configuration's median run: the run-to-run spread on a shared
    /// machine is larger than some of the differences measured.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// MQTT publishers (each its own connection).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub publishers: u32,
    /// Configurations to run: a (no bridge), b (upstream 0.24), c (this plugin),
    /// d (passthrough module), e (key_headers module), i (e's work as templates, no
    /// module), j (i's record shape with nothing looked up; not in the default set), f
    /// (disk spool, acknowledged when
    /// written), g (disk spool, acknowledged when synced), h (memory, acknowledged when
    /// Kafka has the record; not in the default set), k (e's work as a JavaScript
    /// transform, key-headers.js; not in the default set), l (c with values encoded as
    /// Avro in Confluent's framing; not in the default set).
    #[arg(long, value_delimiter = ',', default_value = "a,b,c,d,e,i,f,g")]
    pub only: Vec<Config>,
    /// Loads to run: qos0-256, qos0-4k, qos1-256, qos1-4k.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "qos0-256,qos0-4k,qos1-256,qos1-4k"
    )]
    pub loads: Vec<Load>,
    /// After the publishers stop, keep reading Kafka until nothing new arrived for this
    /// long...
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub drain_quiet: Duration,
    /// ...or until this much time passed.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub drain_max: Duration,
    /// An extra librdkafka property for every bridge (b to e alike), e.g.
    /// `--property linger.ms=20`; repeatable. The default is the seed's settings only.
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
    /// `remote.queue_timeout` of every bridge entry (b to e alike), e.g. `5s`. The default
    /// is the seed's, 0: a bridge with a full buffer drops rather than holding publishers.
    #[arg(long)]
    pub queue_timeout: Option<String>,
    /// Reloads the bridge's configuration this long into the measured window (SIGHUP to
    /// the broker), with one librdkafka property changed so that every producer is
    /// replaced: the heaviest reload. Reports the p99 of the records published within
    /// half a second of it, and leaves that second out of the other latencies.
    #[arg(long, value_parser = parse_duration)]
    pub reload_at: Option<Duration>,
    /// `buffer.flush_interval` of f and g (the longest a written record waits for its
    /// sync), e.g. `1s`; the plugin's default (100 ms) if absent.
    #[arg(long)]
    pub flush_interval: Option<String>,
    /// `max_inflight_messages` of this plugin's bridge (c to h); the plugin's default
    /// (100,000) if absent.
    #[arg(long)]
    pub max_inflight_messages: Option<u32>,
    /// Freezes Kafka (SIGSTOP to tansu) this long into the measured window, for
    /// `--stall-for`, then lets it go on (SIGCONT): a hung Kafka under load.
    #[arg(long, value_parser = parse_duration)]
    pub stall_at: Option<Duration>,
    /// How long `--stall-at` freezes Kafka.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub stall_for: Duration,
    /// Runs the broker on these CPUs alone (e.g. `1`), and tansu, the load and the
    /// Kafka reader on the others: a steadier CPU per message at equal load. Not for
    /// saturation, where it caps the broker.
    #[arg(long, value_name = "CPUS", value_parser = parse_cpus)]
    pub pin_broker: Option<(String, pin::CpuSet)>,
    /// Samples the broker's call stacks with `perf` for this long in the middle of each
    /// run's window (e.g. `3s`) and adds the table "broker µs/msg by owner": whose code
    /// (librdkafka, rmqtt's hooks, the plugin, the transform, the broker) spends the CPU.
    /// Needs `perf`; meant with `--rate`.
    #[arg(long, value_parser = parse_duration)]
    pub profile: Option<Duration>,
    /// Before each run, wait up to this long for the machine's CPU to be idle.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub quiet_wait: Duration,
    /// The tansu binary (scripts/tansu-path.sh prints it).
    #[arg(long, env = "TANSU")]
    pub tansu: PathBuf,
    /// Directory of the example modules built for wasm32-unknown-unknown.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/target/wasm32-unknown-unknown/release"))]
    pub modules: PathBuf,
    /// Where to draw the results (SVG): per load, delivered rate, broker CPU per message
    /// and p99, per configuration.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-plot.svg"))]
    pub plot: PathBuf,
    /// Where to write the raw results (JSON).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-results.json"))]
    pub out: PathBuf,
    /// Directory for the logs and generated configuration files of each run.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-logs"))]
    pub logs: PathBuf,
}

impl RunArgs {
    /// The bridge settings the command line gives every configuration.
    pub fn settings(&self) -> config::Settings<'_> {
        config::Settings {
            properties: &self.properties,
            queue_timeout: self.queue_timeout.as_deref(),
            flush_interval: self.flush_interval.as_deref(),
            max_inflight_messages: self.max_inflight_messages,
        }
    }
}

/// `10s`, `1500ms`, `2m` (the plugin's duration syntax), or a number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    match s.trim().parse() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => rmqtt_bridge_egress_kafka::config::parse_duration(s),
    }
}

fn parse_cpus(s: &str) -> Result<(String, pin::CpuSet), String> {
    pin::CpuSet::parse(s)
        .map(|set| (s.to_owned(), set))
        .map_err(|e| format!("{e:#}"))
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// The allocator rmqttd uses (jemalloc, also for librdkafka's C allocations), so that every
/// configuration runs on the same one.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Broker {
            plugin,
            plugin_config,
            port,
        } => broker::main(plugin, plugin_config, port),
        Command::Run(args) => run::main(*args),
        Command::Plot { results, out } => plot::main(&results, &out),
        Command::Load {
            addr,
            publishers,
            load,
            duration,
        } => load::main(&addr, publishers, load, duration),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bridge-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("s").is_err());
        assert_eq!(
            parse_property("linger.ms=20"),
            Ok(("linger.ms".into(), "20".into()))
        );
        assert!(parse_property("=1").is_err());
    }
}
