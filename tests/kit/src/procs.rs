//! Separate processes for tests: tansu (a Kafka-compatible broker) and helpers to run
//! and wait for processes. A missing dependency is a failure, never a skip.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::repo_root;

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
}

/// Starts tansu on a free port.
pub fn start_tansu() -> Tansu {
    let port = free_port();
    Tansu {
        proc: Some(spawn_tansu(port)),
        port,
        bootstrap: format!("127.0.0.1:{port}"),
    }
}

fn spawn_tansu(port: u16) -> Proc {
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
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child, "tansu");
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

    fn pid(&self) -> u32 {
        self.proc.as_ref().expect("tansu is running").0.id()
    }

    /// Starts a fresh broker on the same port.
    pub fn restart(&mut self) {
        self.proc = Some(spawn_tansu(self.port));
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
