//! The example transform modules (`examples/`, a wasm32 workspace of its own), built from
//! source once per process.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use abi::input::InputFields;

use crate::repo_root;

/// An example module, built from source for wasm32-unknown-unknown (once per process).
pub fn example_module(name: &str) -> PathBuf {
    example_module_for(name, "wasm32-unknown-unknown")
}

/// An example module built for `target` (`wasm32-unknown-unknown` or `wasm32-wasip1`).
pub fn example_module_for(name: &str, target: &'static str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<&'static str, Result<PathBuf, String>>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    let dir = built.entry(target).or_insert_with(|| {
        let root = repo_root().join("examples");
        let out = std::process::Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", target])
            .current_dir(&root)
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "building the example modules for {target} failed (is the target installed? run scripts/setup.sh wasm):\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(root.join("target").join(target).join("release"))
    });
    match dir {
        Ok(d) => d.join(format!("{}.wasm", name.replace('-', "_"))),
        Err(e) => panic!("{e}"),
    }
}

/// The input of a QoS 1 publish from client `c1` on `topic`, as the host hands it to a
/// module: for driving a transform pool directly.
pub fn publish_input<'a>(topic: &'a [u8], payload: &'a [u8]) -> InputFields<'a, &'static [u8]> {
    InputFields {
        qos: 1,
        retain: false,
        dup: false,
        timestamp_ms: 1_700_000_000_000,
        node_id: 1,
        topic,
        payload,
        client_id: b"c1",
        username: None,
        peer_addr: Some(b"127.0.0.1:50000"),
        properties: None,
    }
}
