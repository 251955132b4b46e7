//! `rmqttd` as a separate process for its own tests: a working directory with
//! `rmqtt.toml` and `plugins/`, the seed's configuration pointed at a test Kafka, and
//! Debian's `mosquitto_pub` as the publisher.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http::{request_with, Response};
use crate::procs::{free_port, require, wait_exit, wait_for_port, Proc};
use crate::{read_topic, Record};

const SEED: &str = include_str!("../../fixtures/seed-bridge-egress-kafka.toml");

/// A working directory with rmqtt.toml and plugins/ for one rmqttd: the ACL allows
/// everything, and the bridge's file is the test's.
pub struct Site {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The MQTT TCP listener's port.
    pub port: u16,
    /// Environment variables rmqttd starts with, besides the test's.
    env: Vec<(String, String)>,
}

impl Site {
    /// `bin` is rmqttd (`env!("CARGO_BIN_EXE_rmqttd")` in its tests).
    pub fn new(bin: &str, plugin_toml: &str) -> Site {
        Site::with(bin, plugin_toml, "", "")
    }

    /// `startup` (`, "name"`) is added to plugins.default_startups, `extra` to rmqtt.toml.
    pub fn with(bin: &str, plugin_toml: &str, startup: &str, extra: &str) -> Site {
        Site::node(bin, 1, plugin_toml, startup, extra)
    }

    /// [`Site::with`] for node `node_id` of a cluster.
    pub fn node(bin: &str, node_id: u64, plugin_toml: &str, startup: &str, extra: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::create_dir(dir.path().join("plugins")).unwrap();
        let site = Site {
            dir,
            bin: bin.into(),
            port,
            env: Vec::new(),
        };
        site.write(
            "rmqtt.toml",
            &format!(
                "node.id = {node_id}\nlog.to = \"console\"\nlog.level = \"info\"\nplugins.dir = \"plugins/\"\nplugins.default_startups = [\"rmqtt-acl\", \"rmqtt-bridge-egress-kafka\"{startup}]\nlistener.tcp.external.addr = \"127.0.0.1:{port}\"\nlistener.tcp.external.allow_anonymous = true\n{extra}"
            ),
        );
        site.write("plugins/rmqtt-acl.toml", "rules = [[\"allow\", \"all\"]]\n");
        site.write("plugins/rmqtt-bridge-egress-kafka.toml", plugin_toml);
        site
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Starts rmqttd with `key=value` in its environment (`SSL_CERT_FILE`, say).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Writes `file`, relative to the working directory.
    pub fn write(&self, file: &str, text: &str) {
        std::fs::write(self.dir.path().join(file), text).unwrap();
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c.args(["-f", "rmqtt.toml"]).current_dir(self.dir.path());
        // The HTTP API's error answers then carry the error (salvo hides it by default).
        c.env("SALVO_STATUS_ERROR", "force_detail");
        // The level is rmqtt.toml's: the start is seen in the log at info.
        c.env_remove("RUST_LOG");
        c
    }

    /// Starts rmqttd, its stderr (the log) going to a file (a pipe nobody reads would
    /// stall a chatty node once full); [`Site::stderr`] reads it.
    pub fn spawn(&self) -> Child {
        let log = std::fs::File::create(self.dir.path().join("stderr.log")).unwrap();
        self.command()
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// What rmqttd has written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Starts rmqttd and waits until it listens for MQTT.
    pub fn start(&self) -> Proc {
        let mut child = self.spawn();
        self.wait_until_listening(&mut child);
        Proc(child)
    }

    /// Waits until rmqttd listens for MQTT; fails with its log if it exits first. The
    /// port answering is not enough: it must be this rmqttd that says it listens.
    pub fn wait_until_listening(&self, child: &mut Child) {
        let said_so = |site: &Site| site.stderr().contains("rmqttd listening on");
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for_port(self.port, child, "rmqttd");
            let deadline = Instant::now() + Duration::from_secs(10);
            while !said_so(self) {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("rmqttd exited with {status} before listening");
                }
                assert!(
                    Instant::now() < deadline,
                    "rmqttd did not log that it listens"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        })) {
            panic!("{}\nrmqttd's log:\n{}", panic_text(&e), self.stderr());
        }
    }

    /// Runs rmqttd expecting it to refuse the start: exit status 1, no panic. Returns
    /// its stderr.
    pub fn refused(&self) -> String {
        let mut child = self.spawn();
        let (status, _) = wait_exit(&mut child, Duration::from_secs(30), "a refused rmqttd");
        let err = self.stderr();
        assert_eq!(status.code(), Some(1), "exit status; stderr:\n{err}");
        assert!(
            !err.contains("panicked") && !err.contains("stack backtrace"),
            "a panic:\n{err}"
        );
        err
    }
}

/// The seed's configuration verbatim, only `servers` changed.
pub fn seed_for(bootstrap: &str) -> String {
    let config = SEED.replace(
        "servers = \"127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094\"",
        &format!("servers = \"{bootstrap}\""),
    );
    assert_ne!(config, SEED, "only `servers` changes");
    config
}

/// Runs `mosquitto_pub -h 127.0.0.1 -p port args…`, which must succeed.
pub fn mosquitto_pub(port: u16, args: &[&str]) {
    let status = Command::new(require("mosquitto_pub"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "mosquitto_pub {args:?}");
}

/// Reads `want` records of `topic` (30 s at most, then 0.5 s more for extra ones).
pub fn read_back(bootstrap: &str, topic: &str, want: usize) -> Vec<Record> {
    read_topic(
        bootstrap,
        topic,
        want,
        Duration::from_secs(30),
        Duration::from_millis(500),
    )
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// A request to the plugin's own endpoint (`http_laddr` port `port`) with bearer `token`.
pub fn plugin_request(port: u16, token: &str, method: &str, path: &str) -> Response {
    let auth = format!("Bearer {token}");
    request_with(port, method, path, &[("Authorization", auth.as_str())])
}

/// The plugin's `GET /status` once `ready` holds for it (a SIGHUP answers nobody, and a
/// reload or the last delivery reports land a moment later); fails after 30 s naming
/// `what`.
pub fn status_when(
    port: u16,
    token: &str,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = plugin_request(port, token, "GET", "/status");
        assert_eq!(r.status, 200, "GET /status: {}", r.body);
        let doc: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        if ready(&doc) {
            return doc;
        }
        assert!(Instant::now() < deadline, "{what} after 30 s: {doc}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET /status` once the first entry of the first bridge has nothing in flight: counts
/// read the moment a load ends can miss its last delivery reports.
pub fn settled_status(port: u16, token: &str) -> serde_json::Value {
    status_when(port, token, "records still in flight", |doc| {
        doc["bridges"][0]["entries"][0]["stats"]["in_flight"].as_u64() == Some(0)
    })
}
