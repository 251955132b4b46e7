//! Separate processes for tests: tansu (a Kafka-compatible broker) and helpers to run
//! and wait for processes. A missing dependency is a failure, never a skip.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use crate::repo_root;

/// A TCP port on 127.0.0.1 for a server a test starts: free now, never handed out
/// before in this process (tests run in parallel threads and pick their ports before
/// their servers bind them), and below the kernel's ephemeral range, so that no
/// outgoing connection takes it as its source port in the meantime.
pub fn free_port() -> u16 {
    static HANDED_OUT: AtomicU32 = AtomicU32::new(0);
    let (lo, hi) = ports_for_servers();
    let span = u32::from(hi - lo);
    // Processes of an earlier test binary may still hold the ports they were given.
    let start = std::process::id() % span;
    loop {
        let n = HANDED_OUT.fetch_add(1, Ordering::Relaxed);
        assert!(n < span, "no free port left in {lo}..{hi}");
        let port = lo + ((start + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The ports below the ephemeral range (`ip_local_port_range`, 32768 by default) and
/// above the well-known and common registered ones.
fn ports_for_servers() -> (u16, u16) {
    let ephemeral_lo = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let lo = 10_000;
    assert!(
        ephemeral_lo > lo + 1000,
        "ip_local_port_range starts at {ephemeral_lo}: no room below it for test servers"
    );
    (lo, ephemeral_lo)
}

/// Waits until `child` listens on `port`; fails with its stderr if it exits first.
pub fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("{what} exited with {status} before listening:\n{err}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for `child` to exit, at most `guard` (a hang guard: past it the child is
/// killed and the test fails); returns its exit status and its captured stderr.
pub fn wait_exit(child: &mut Child, guard: Duration, what: &str) -> (ExitStatus, String) {
    let deadline = Instant::now() + guard;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: still running after {guard:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err).unwrap();
    }
    (status, err)
}

/// Sends `signal` (`"TERM"`, `"STOP"`, `"CONT"`) to the process `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// A dependency the test needs; missing is a failure, never a skip.
pub fn require(tool: &str) -> PathBuf {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .ok()
        .filter(|o| o.status.success());
    match found {
        Some(o) => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        None => panic!("{tool} is required (run scripts/setup.sh)"),
    }
}

/// `TANSU_BIN` (what scripts/test.sh sets), else where scripts/setup.sh installed it.
fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return p.into();
    }
    let out = Command::new(repo_root().join("scripts/tansu-path.sh"))
        .output()
        .unwrap();
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        out.status.success() && path.is_file(),
        "tansu is required: run scripts/setup.sh tansu (or set TANSU_BIN)"
    );
    path
}

/// The lines a child prints on `out` (its piped stdout, say), as they come, read on a
/// thread of their own so that a test can wait for them with a timeout.
pub fn lines_of(out: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tansu broker with in-memory storage, killed when dropped.
pub struct Tansu {
    proc: Option<Proc>,
    pub port: u16,
    pub bootstrap: String,
    /// Its output (stdout and stderr), in a file: a pipe nobody reads would stall it once
    /// full.
    log: tempfile::NamedTempFile,
}

/// Starts tansu on a free port.
pub fn start_tansu() -> Tansu {
    let port = free_port();
    let log = tempfile::NamedTempFile::new().unwrap();
    Tansu {
        proc: Some(spawn_tansu(port, &log)),
        port,
        bootstrap: format!("127.0.0.1:{port}"),
        log,
    }
}

fn append(log: &tempfile::NamedTempFile) -> std::fs::File {
    OpenOptions::new().append(true).open(log.path()).unwrap()
}

fn spawn_tansu(port: u16, log: &tempfile::NamedTempFile) -> Proc {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut child = Command::new(tansu_bin())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        // Its warnings and errors explain a failed test (it logs to stdout).
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(append(log))
        .stderr(append(log))
        .spawn()
        .unwrap();
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for_port(port, &mut child, "tansu")
    }));
    if started.is_err() {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        panic!("tansu did not start; its log:\n{text}");
    }
    Proc(child)
}

impl Tansu {
    /// Kills the broker (its memory storage goes with it).
    pub fn kill(&mut self) {
        self.proc = None;
    }

    /// Freezes the broker (SIGSTOP): its connections stay open and nothing answers, as
    /// when a Kafka hangs.
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    /// Resumes a paused broker (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }

    /// What tansu has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.proc.as_ref().expect("tansu is running").0.id()
    }

    /// Starts a fresh broker on the same port.
    pub fn restart(&mut self) {
        self.proc = Some(spawn_tansu(self.port, &self.log));
    }

    /// Creates a topic up front. tansu can lose records produced while it auto-creates
    /// a topic (NOTES.md measured it with the upstream plugin), so tests create theirs.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let status = Command::new(tansu_bin())
            .args([
                "topic",
                "create",
                topic,
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
            ])
            .args(["--partitions", &partitions.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "tansu topic create {topic}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_below_the_ephemeral_range() {
        let (lo, hi) = ports_for_servers();
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        assert!(ports.iter().all(|p| (lo..hi).contains(p)), "{ports:?}");
        // Free: a server can bind each.
        let bound: Vec<TcpListener> = ports
            .iter()
            .map(|p| TcpListener::bind(("127.0.0.1", *p)).unwrap())
            .collect();
        assert_eq!(bound.len(), 50);
    }
}
