//! Compares storage candidates for the bridge's durable disk spool (a
//! per-bridge write-ahead log): a hand-written segment log, redb and fjall,
//! under the same group-commit, removal and recovery workloads.

mod fjall_store;
mod redb_store;
mod segment_log;
mod system;
mod workload;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use fjall_store::FjallStore;
use redb_store::RedbStore;
use segment_log::SegmentLog;
use system::{disk_usage, evict_page_cache, Counters, Usage};
use workload::{Options, Spool, Throughput};

#[derive(Parser)]
#[command(about = "Measures spool storage candidates side by side")]
struct Cli {
    /// Scratch directory on the disk under test (not tmpfs); each run uses a
    /// subdirectory that is deleted when the run ends.
    #[arg(long, default_value = "/work/tmp-spool-bench")]
    dir: PathBuf,
    /// Repetitions of every measurement (median and min–max are reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Seconds per group-commit and per removal run.
    #[arg(long, default_value_t = 2.0)]
    secs: f64,
    /// Records per commit in the group-commit runs.
    #[arg(long, value_delimiter = ',', default_value = "1,64,1024")]
    batches: Vec<usize>,
    /// Records per commit in the removal run.
    #[arg(long, default_value_t = 1024)]
    removal_batch: usize,
    /// The removal run acks the batch written this many commits earlier.
    #[arg(long, default_value_t = 8)]
    removal_lag: u64,
    /// Segment size of the segment log, in MiB.
    #[arg(long, default_value_t = 16)]
    segment_mib: u64,
    /// Records written before the recovery run (half are acked).
    #[arg(long, default_value_t = 1_000_000)]
    recovery_records: u64,
    /// Bytes per record value (256 B payload + ~40 B metadata).
    #[arg(long, default_value_t = 300)]
    value_bytes: usize,
    /// Workloads to run, in this order.
    #[arg(long, value_delimiter = ',', default_value = "commit,removal,recovery")]
    phases: Vec<Phase>,
    /// Storage candidates to measure.
    #[arg(long, value_delimiter = ',', default_value = "segment-log,redb,fjall")]
    candidates: Vec<Candidate>,
    /// Internal: fill a recovery store in --dir, then exit without closing it.
    #[arg(long, hide = true)]
    fill_and_crash: Option<Candidate>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Candidate {
    SegmentLog,
    Redb,
    Fjall,
}

#[derive(Clone, Copy, ValueEnum)]
enum Phase {
    Commit,
    Removal,
    Recovery,
}

impl Candidate {
    fn name(self) -> &'static str {
        match self {
            Candidate::SegmentLog => SegmentLog::NAME,
            Candidate::Redb => RedbStore::NAME,
            Candidate::Fjall => FjallStore::NAME,
        }
    }
}

/// Calls the generic function `$f::<Store>($args)` for a candidate.
macro_rules! dispatch {
    ($cand:expr, $f:ident($($arg:expr),*)) => {
        match $cand {
            Candidate::SegmentLog => $f::<SegmentLog>($($arg),*),
            Candidate::Redb => $f::<RedbStore>($($arg),*),
            Candidate::Fjall => $f::<FjallStore>($($arg),*),
        }
    };
}

/// One measurement, run for every candidate before the next one starts.
#[derive(Clone, Copy)]
enum Step {
    Append { batch: usize },
    Removal,
    Recovery,
}

fn main() -> io::Result<()> {
    let cli = Cli::parse();
    if let Some(cand) = cli.fill_and_crash {
        return dispatch!(cand, fill_and_crash(&cli));
    }
    fs::create_dir_all(&cli.dir)?;
    let steps = steps(&cli);
    let mut results = Results::default();
    for rep in 0..cli.reps {
        for &step in &steps {
            // Rotate the order each repetition so no candidate always runs
            // first (or right after another one's background work).
            let n = cli.candidates.len();
            for &cand in cli.candidates.iter().cycle().skip(rep % n).take(n) {
                let scratch = tempfile::Builder::new()
                    .prefix(cand.name())
                    .tempdir_in(&cli.dir)?;
                let run = Run {
                    cli: &cli,
                    dir: scratch.path(),
                    rep,
                    results: &mut results,
                };
                match step {
                    Step::Append { batch } => dispatch!(cand, append_step(run, batch))?,
                    Step::Removal => dispatch!(cand, removal_step(run))?,
                    Step::Recovery => dispatch!(cand, recovery_step(run))?,
                }
            }
        }
    }
    results.print(&cli);
    Ok(())
}

fn steps(cli: &Cli) -> Vec<Step> {
    let mut steps = Vec::new();
    for phase in &cli.phases {
        match phase {
            Phase::Commit => steps.extend(cli.batches.iter().map(|&batch| Step::Append { batch })),
            Phase::Removal => steps.push(Step::Removal),
            Phase::Recovery => steps.push(Step::Recovery),
        }
    }
    steps
}

/// One candidate's run of one step, in its own scratch directory.
struct Run<'a> {
    cli: &'a Cli,
    dir: &'a Path,
    rep: usize,
    results: &'a mut Results,
}

impl Run<'_> {
    fn opts(&self) -> Options {
        Options {
            segment_bytes: self.cli.segment_mib << 20,
        }
    }

    fn record<S: Spool>(&mut self, measurement: &str, value: f64) {
        eprintln!(
            "[rep {}] {:<11} {measurement}: {}",
            self.rep + 1,
            S::NAME,
            fmt(value)
        );
        self.results.add(measurement, S::NAME, value);
    }

    fn record_throughput<S: Spool>(&mut self, label: &str, t: &Throughput, u: &Usage) {
        self.record::<S>(&format!("{label}: records/s"), t.records_per_s);
        self.record::<S>(&format!("{label}: MB/s (payload)"), t.mb_per_s);
        self.record::<S>(&format!("{label}: mean commit ms"), t.mean_commit_ms);
        self.record::<S>(&format!("{label}: p99 commit ms"), t.p99_commit_ms);
        let cpu_us = u.cpu.as_secs_f64() * 1e6 / t.records as f64;
        self.record::<S>(&format!("{label}: CPU µs/record"), cpu_us);
        let amplification = u.own_written as f64 / t.payload_bytes as f64;
        self.record::<S>(&format!("{label}: bytes written / payload"), amplification);
        let others = u.others_bytes_per_s / 1e6;
        self.record::<S>(
            &format!("{label}: (context) other disk writes MB/s"),
            others,
        );
    }
}

fn append_step<S: Spool>(mut run: Run<'_>, batch: usize) -> io::Result<()> {
    let values = workload::make_values(batch, run.cli.value_bytes);
    let secs = Duration::from_secs_f64(run.cli.secs);
    let before = Counters::now(run.dir)?;
    let t = workload::group_commit::<S>(run.dir, &run.opts(), &values, secs)?;
    let usage = Counters::now(run.dir)?.since(&before);
    run.record_throughput::<S>(&format!("append, batch {batch}"), &t, &usage);
    Ok(())
}

fn removal_step<S: Spool>(mut run: Run<'_>) -> io::Result<()> {
    let (cli, dir) = (run.cli, run.dir);
    let values = workload::make_values(cli.removal_batch, cli.value_bytes);
    let secs = Duration::from_secs_f64(cli.secs);
    let before = Counters::now(dir)?;
    let (store, t) = workload::removal::<S>(dir, &run.opts(), &values, cli.removal_lag, secs)?;
    let usage = Counters::now(dir)?.since(&before);
    let label = format!(
        "append+remove, batch {}, lag {}",
        cli.removal_batch, cli.removal_lag
    );
    run.record_throughput::<S>(&label, &t, &usage);
    run.record::<S>(
        "disk after removal run, store open: MB",
        disk_usage(dir)? as f64 / 1e6,
    );
    drop(store);
    run.record::<S>(
        "disk after removal run, closed: MB",
        disk_usage(dir)? as f64 / 1e6,
    );
    Ok(())
}

/// Fills the store in a child process that exits without closing it (a
/// simulated crash), then times recovery: after the crash, after a clean
/// close, both with the store's files evicted from the page cache, and warm.
fn recovery_step<S: Spool>(mut run: Run<'_>) -> io::Result<()> {
    let (cli, dir) = (run.cli, run.dir);
    let (write_secs, ack_secs) = spawn_fill(cli, S::NAME, dir)?;
    let n = cli.recovery_records;
    run.record::<S>(
        "recovery fill, batch 1024: write records/s",
        n as f64 / write_secs,
    );
    run.record::<S>(
        "recovery fill, batch 1024: ack records/s",
        (n / 2) as f64 / ack_secs,
    );
    run.record::<S>("recovery fill: disk MB", disk_usage(dir)? as f64 / 1e6);
    let opts = run.opts();
    evict_page_cache(dir)?;
    let secs = workload::recover::<S>(dir, &opts, n, cli.value_bytes)?;
    run.record::<S>("reopen+replay after crash, cold cache: s", secs);
    evict_page_cache(dir)?;
    let secs = workload::recover::<S>(dir, &opts, n, cli.value_bytes)?;
    run.record::<S>("reopen+replay after clean close, cold cache: s", secs);
    let secs = workload::recover::<S>(dir, &opts, n, cli.value_bytes)?;
    run.record::<S>("reopen+replay after clean close, warm cache: s", secs);
    Ok(())
}

/// Runs this binary with `--fill-and-crash`; returns its write and ack seconds.
fn spawn_fill(cli: &Cli, name: &str, dir: &Path) -> io::Result<(f64, f64)> {
    let out = Command::new(std::env::current_exe()?)
        .arg("--dir")
        .arg(dir)
        .args(["--fill-and-crash", name])
        .args(["--recovery-records", &cli.recovery_records.to_string()])
        .args(["--value-bytes", &cli.value_bytes.to_string()])
        .args(["--segment-mib", &cli.segment_mib.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut fields = stdout.split_whitespace().skip(1).map(str::parse::<f64>);
    match (out.status.success(), fields.next(), fields.next()) {
        (true, Some(Ok(w)), Some(Ok(a))) => Ok((w, a)),
        _ => Err(io::Error::other(format!(
            "fill of {name} failed: {} {stdout}",
            out.status
        ))),
    }
}

/// The child side of `spawn_fill`: fills, reports, and exits with the store
/// still open, so it is never closed cleanly.
fn fill_and_crash<S: Spool>(cli: &Cli) -> io::Result<()> {
    let values = workload::make_values(1024, cli.value_bytes);
    let opts = Options {
        segment_bytes: cli.segment_mib << 20,
    };
    let (store, write_secs, ack_secs) =
        workload::fill::<S>(&cli.dir, &opts, &values, cli.recovery_records)?;
    println!("fill {write_secs} {ack_secs}");
    let _never_closed = store;
    std::process::exit(0)
}

/// Every sample, by measurement (in first-seen order) and candidate.
#[derive(Default)]
struct Results {
    rows: Vec<(String, BTreeMap<&'static str, Vec<f64>>)>,
}

impl Results {
    fn add(&mut self, measurement: &str, candidate: &'static str, value: f64) {
        let index = match self.rows.iter().position(|(m, _)| m == measurement) {
            Some(i) => i,
            None => {
                self.rows.push((measurement.to_string(), BTreeMap::new()));
                self.rows.len() - 1
            }
        };
        self.rows[index].1.entry(candidate).or_default().push(value);
    }

    /// Prints a markdown table: median (min–max) per measurement and candidate.
    fn print(&self, cli: &Cli) {
        let names: Vec<&str> = cli.candidates.iter().map(|c| c.name()).collect();
        println!("\n{} repetitions; cells are median (min–max)\n", cli.reps);
        println!("| measurement | {} |", names.join(" | "));
        println!("|---|{}", "---|".repeat(names.len()));
        for (measurement, by_candidate) in &self.rows {
            let cells: Vec<String> = names
                .iter()
                .map(|n| by_candidate.get(n).map_or("–".to_string(), |v| summary(v)))
                .collect();
            println!("| {measurement} | {} |", cells.join(" | "));
        }
    }
}

fn summary(samples: &[f64]) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    };
    let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
    format!("{} ({}–{})", fmt(median), fmt(min), fmt(max))
}

/// Three significant digits or so, with k/M for large counts.
fn fmt(v: f64) -> String {
    match v.abs() {
        a if a >= 1e7 => format!("{:.1}M", v / 1e6),
        a if a >= 1e4 => format!("{:.0}k", v / 1e3),
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}
