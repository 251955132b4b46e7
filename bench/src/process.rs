//! Child processes (tansu, the broker), free ports and the broker's memory.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A child process that is killed if it is still running when dropped (an error path).
pub struct Proc {
    pub name: &'static str,
    child: Child,
}

impl Proc {
    /// Starts `cmd` with stderr appended to `log`, and stdout too unless `pipe_stdout`
    /// (then [`Proc::stdout`] reads it).
    pub fn spawn(
        name: &'static str,
        mut cmd: Command,
        log: &Path,
        pipe_stdout: bool,
    ) -> Result<Proc> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let stdout = if pipe_stdout {
            Stdio::piped()
        } else {
            Stdio::from(file.try_clone()?)
        };
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(file);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        Ok(Proc { name, child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Fails if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early ({status})", self.name);
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL if it is still running after `grace`.
    pub fn terminate(mut self, grace: Duration) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id())?;
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("  {} did not stop within {grace:?}; killing it", self.name);
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until something accepts TCP connections at `addr`.
pub fn wait_for_port(proc: &mut Proc, addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        proc.check_running()?;
        if Instant::now() > deadline {
            bail!("{} does not accept connections on {addr}", proc.name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Samples a process's resident set size every 100 ms until stopped.
pub struct RssSampler {
    pid: u32,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(f64, u64)>>,
}

/// What the sampler saw: peak RSS (VmHWM, the kernel's high-water mark) and the samples.
pub struct Rss {
    pub hwm_kb: u64,
    /// `(seconds since the sampler started, VmRSS in kB)`.
    pub samples: Vec<(f64, u64)>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut samples = Vec::new();
            while !s.load(Ordering::Relaxed) {
                if let Some(kb) = status_kb(pid, "VmRSS:") {
                    samples.push((start.elapsed().as_secs_f64(), kb));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        });
        RssSampler { pid, stop, thread }
    }

    /// VmRSS now, kB.
    pub fn current_kb(&self) -> u64 {
        status_kb(self.pid, "VmRSS:").unwrap_or(0)
    }

    /// Stops sampling; call while the process still runs (VmHWM is read last).
    pub fn finish(self) -> Rss {
        let hwm = status_kb(self.pid, "VmHWM:");
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.join().unwrap_or_default();
        let sampled_max = samples.iter().map(|&(_, kb)| kb).max().unwrap_or(0);
        Rss {
            hwm_kb: hwm.unwrap_or(0).max(sampled_max),
            samples,
        }
    }
}

/// A `kB` field of /proc/PID/status.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// CPU time (clock ticks) of the whole machine and of some processes at one instant.
pub struct CpuSnapshot {
    busy: u64,
    steal: u64,
    procs: Vec<u64>,
    /// The first process's threads, summed by kind (see [`thread_kind`]).
    first_threads: BTreeMap<String, u64>,
}

/// CPU use between two snapshots, in cores (CPU seconds per second).
#[derive(Debug)]
pub struct CpuUse {
    /// Per process, in the order given to [`CpuSnapshot::take`].
    pub procs: Vec<f64>,
    /// Everything else on the machine (other processes, the kernel's own threads).
    pub other: f64,
    /// Time the hypervisor gave to other guests while this one wanted to run.
    pub steal: f64,
    /// The first process's use by kind of thread, largest first; threads that ended
    /// between the snapshots are missing.
    pub first_threads: Vec<(String, f64)>,
}

impl CpuSnapshot {
    pub fn take(pids: &[u32]) -> CpuSnapshot {
        let (busy, steal) = machine_ticks().unwrap_or_default();
        CpuSnapshot {
            busy,
            steal,
            procs: pids
                .iter()
                .map(|&p| process_ticks(p).unwrap_or(0))
                .collect(),
            first_threads: pids.first().map(|&p| thread_ticks(p)).unwrap_or_default(),
        }
    }

    pub fn since(&self, earlier: &CpuSnapshot, seconds: f64) -> CpuUse {
        // SAFETY: sysconf has no memory effects.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let cores = |ticks: u64| ticks as f64 / hz / seconds;
        let procs: Vec<u64> = self
            .procs
            .iter()
            .zip(&earlier.procs)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        let busy = self.busy.saturating_sub(earlier.busy);
        let mut first_threads: Vec<(String, f64)> = self
            .first_threads
            .iter()
            .map(|(kind, &t)| {
                let before = earlier.first_threads.get(kind).copied().unwrap_or(0);
                (kind.clone(), cores(t.saturating_sub(before)))
            })
            .collect();
        first_threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        CpuUse {
            other: cores(busy.saturating_sub(procs.iter().sum())),
            steal: cores(self.steal.saturating_sub(earlier.steal)),
            procs: procs.into_iter().map(cores).collect(),
            first_threads,
        }
    }
}

/// Busy ticks of all CPUs (/proc/stat: user, nice, system, irq, softirq) and steal.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let busy = [0, 1, 2, 5, 6].iter().filter_map(|&i| fields.get(i)).sum();
    Some((busy, *fields.get(7)?))
}

/// utime + stime of a process, all threads (/proc/PID/stat fields 14 and 15).
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat_ticks(&stat)?.1)
}

/// A process's threads' utime + stime (/proc/PID/task/TID/stat), summed by kind.
fn thread_ticks(pid: u32) -> BTreeMap<String, u64> {
    let mut by_kind = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_kind;
    };
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        if let Some((name, ticks)) = stat_ticks(&stat) {
            *by_kind.entry(thread_kind(name).to_owned()).or_default() += ticks;
        }
    }
    by_kind
}

/// The name (`comm`) and utime + stime of a `stat` line.
fn stat_ticks(stat: &str) -> Option<(&str, u64)> {
    let name = &stat[stat.find('(')? + 1..stat.rfind(')')?];
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((name, ticks))
}

/// A thread's kind: its name without the number that tells threads of a kind apart
/// (librdkafka's `rdk:broker1001` and `rdk:broker-1` are both `rdk:broker`).
fn thread_kind(name: &str) -> &str {
    name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_its_name_and_cpu_ticks() {
        let line = "4242 (rdk:broker1001) S 1 2 3 4 5 6 7 8 9 10 31 17 0 0 20 0";
        assert_eq!(stat_ticks(line), Some(("rdk:broker1001", 48)));
        // A name may hold spaces and parentheses; the last `)` ends it.
        let line = "7 (producer (x) 2) R 1 2 3 4 5 6 7 8 9 10 1 2 0 0";
        assert_eq!(stat_ticks(line), Some(("producer (x) 2", 3)));
    }

    #[test]
    fn threads_of_a_kind_share_a_name_without_their_number() {
        assert_eq!(thread_kind("rdk:broker1001"), "rdk:broker");
        assert_eq!(thread_kind("rdk:broker-1"), "rdk:broker");
        assert_eq!(thread_kind("tokio-rt-worker"), "tokio-rt-worker");
    }

    #[test]
    fn a_busy_thread_shows_under_its_kind() {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let spinner = std::thread::Builder::new()
            .name("bench-spin7".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
            .unwrap();
        let pid = std::process::id();
        let before = CpuSnapshot::take(&[pid]);
        let deadline = Instant::now() + Duration::from_secs(20);
        let spin = loop {
            std::thread::sleep(Duration::from_millis(50));
            let used = CpuSnapshot::take(&[pid]).since(&before, 1.0);
            let spin = used.first_threads.iter().find(|(k, _)| k == "bench-spin");
            let spin = spin.map_or(0.0, |(_, cores)| *cores);
            if spin > 0.0 || Instant::now() > deadline {
                break spin;
            }
        };
        stop.store(true, Ordering::Relaxed);
        spinner.join().unwrap();
        assert!(spin > 0.0, "the spinning thread's CPU time was never seen");
    }
}
