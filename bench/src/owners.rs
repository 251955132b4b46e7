//! `--profile`: samples the broker's call stacks with `perf` in the middle of the
//! measured window and charges each sample to one owner (librdkafka, rmqtt's hook
//! machinery, the plugin, the transform, the broker itself), so that a configuration's
//! CPU per message splits by whose code spends it. The thread table cannot do that: the
//! tokio workers run rmqtt, the plugin, librdkafka's produce calls and the modules alike.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// perf's sampling rate: each sample stands for 1/999 s of one thread's CPU.
const HZ: u32 = 999;

/// The owners, in the order the report lists them.
pub const OWNERS: [&str; 10] = [
    "broker (rmqtt, tokio, kernel)",
    "rmqtt: publish hook dispatch",
    "rmqtt: ACL check for the bridge",
    "plugin: hook, records, reports",
    "plugin: transform host",
    "wasmtime and the module",
    "librdkafka: produce calls",
    "librdkafka: broker threads",
    "librdkafka: delivery reports",
    "stack not unwound",
];

/// The code that marks a stack as the plugin's, as perf names symbols: crate, modules
/// and items. A test checks that each still names a part of the source, so that a move
/// of the plugin's files cannot silently charge their samples to someone else.
const PLUGIN: &str = "rmqtt_bridge_egress_kafka::";
/// Where delivery reports are settled (on librdkafka's delivery-report thread).
const REPORTS: &str = "rmqtt_bridge_egress_kafka::delivery::ledger::Ledger::report";
/// The host side of transforms: the pool, the instances, the ABI's encoding.
const TRANSFORM_HOST: [&str; 2] = [
    "rmqtt_bridge_egress_kafka::transform::",
    "rmqtt_kafka_transform_abi::",
];
/// The publish hook, which asks rmqtt for the publisher's ACL.
const PUBLISH_HOOK: &str = "rmqtt_bridge_egress_kafka::hooks::PublishHook::forward";

/// The samples of one profile, by owner.
#[derive(Debug, Default)]
pub struct Profile {
    pub samples: BTreeMap<&'static str, u64>,
    /// The time profiled.
    pub seconds: f64,
}

impl Profile {
    /// Each owner's CPU in cores (samples ÷ rate ÷ time), in [`OWNERS`] order.
    pub fn cores(&self) -> Vec<(String, f64)> {
        let per_sample = 1.0 / f64::from(HZ) / self.seconds;
        OWNERS
            .iter()
            .map(|o| {
                let n = self.samples.get(o).copied().unwrap_or(0);
                (o.to_string(), n as f64 * per_sample)
            })
            .collect()
    }
}

/// A `perf record` of the broker running in the background.
pub struct Profiler {
    recording: JoinHandle<Result<()>>,
    file: PathBuf,
    length: Duration,
}

/// Fails unless `perf` can be run and this binary has line tables (without them, code
/// inlined into another owner's function is charged to that owner): checked before the
/// first run, not after its broker started.
pub fn check_perf() -> Result<()> {
    if env!("BRIDGE_BENCH_DEBUG_INFO") != "true" {
        bail!(
            "--profile needs line tables: build with `cargo build --profile profiling -p bridge-bench` (scripts/bench.sh does when given --profile)"
        );
    }
    let found = Command::new("perf").arg("--version").output();
    if !found.is_ok_and(|o| o.status.success()) {
        bail!("--profile needs `perf` (Debian: apt install linux-perf)");
    }
    Ok(())
}

impl Profiler {
    /// Records process `pid` for `length`, starting `delay` from now, into `file`.
    pub fn start(pid: u32, delay: Duration, length: Duration, file: &Path) -> Result<Profiler> {
        let file = file.to_owned();
        let out = file.clone();
        let recording = std::thread::spawn(move || {
            std::thread::sleep(delay);
            let status = Command::new("perf")
                .args([
                    "record",
                    "-F",
                    &HZ.to_string(),
                    "--call-graph",
                    "dwarf,16384",
                ])
                .args(["-p", &pid.to_string(), "-o"])
                .arg(&out)
                .args(["--", "sleep", &length.as_secs_f64().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .context("running perf record")?;
            if !status.success() {
                bail!("perf record failed ({status}); is kernel.perf_event_paranoid above 1?");
            }
            Ok(())
        });
        Ok(Profiler {
            recording,
            file,
            length,
        })
    }

    /// Waits for the recording and charges its samples.
    pub fn finish(self) -> Result<Profile> {
        match self.recording.join() {
            Ok(done) => done?,
            Err(_) => bail!("the perf thread panicked"),
        }
        let script = Command::new("perf")
            .args(["script", "-F", "comm,ip,sym,dso", "-i"])
            .arg(&self.file)
            .stderr(Stdio::null())
            .output()
            .context("running perf script")?;
        if !script.status.success() {
            bail!("perf script failed on {}", self.file.display());
        }
        let text = String::from_utf8_lossy(&script.stdout);
        let mut profile = Profile {
            seconds: self.length.as_secs_f64(),
            ..Profile::default()
        };
        for (thread, frames) in samples(&text) {
            *profile.samples.entry(owner(thread, &frames)).or_default() += 1;
        }
        Ok(profile)
    }
}

/// One frame of a stack: its symbol and the object it is in.
#[derive(Debug, PartialEq)]
struct Frame<'a> {
    sym: &'a str,
    dso: &'a str,
}

/// The samples of `perf script -F comm,ip,sym,dso` output: the thread's name and the
/// stack, innermost frame first.
fn samples(text: &str) -> Vec<(&str, Vec<Frame<'_>>)> {
    let mut out: Vec<(&str, Vec<Frame<'_>>)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            out.push((line.trim_end(), Vec::new()));
        } else if let Some((_, frames)) = out.last_mut() {
            frames.push(frame(line.trim()));
        }
    }
    out
}

/// `80dc3a phn_prev_set (inlined) (/path/to/binary)`.
fn frame(line: &str) -> Frame<'_> {
    let rest = line.split_once(' ').map_or("", |(_ip, rest)| rest);
    match rest.rsplit_once(" (") {
        Some((sym, dso)) => Frame {
            sym,
            dso: dso.trim_end_matches(')'),
        },
        None => Frame { sym: rest, dso: "" },
    }
}

/// Who a sample's CPU belongs to: by its thread, then by whose code is on its stack,
/// in this order: librdkafka (called by the plugin), the ACL check the plugin asks for,
/// wasmtime and the module, the plugin's transform host, the plugin, rmqtt's dispatch
/// of the publish hook; the broker's otherwise.
fn owner(thread: &str, frames: &[Frame<'_>]) -> &'static str {
    let has = |part: &str| frames.iter().any(|f| f.sym.contains(part));
    if thread.starts_with("rdk:") {
        return OWNERS[7];
    }
    if thread.starts_with("producer pollin") {
        return if has(REPORTS) { OWNERS[3] } else { OWNERS[8] };
    }
    if frames.iter().all(|f| f.sym == "[unknown]") {
        return OWNERS[9];
    }
    let jit = |f: &Frame<'_>| f.dso.contains("perf-") || f.dso.starts_with("[JIT]");
    if has("rd_kafka_") {
        OWNERS[6]
    } else if has("message_publish_check_acl") && has(PUBLISH_HOOK) {
        OWNERS[2]
    } else if has("wasmtime") || frames.first().is_some_and(jit) {
        OWNERS[5]
    } else if TRANSFORM_HOST.iter().any(|p| has(p)) {
        OWNERS[4]
    } else if has(PLUGIN) {
        OWNERS[3]
    } else if has("DefaultHookManager::exec") && has("message_publish") {
        OWNERS[1]
    } else {
        OWNERS[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Excerpts of `perf script -F comm,ip,sym,dso` from a profile of c and e at
    /// 80,000 msg/s (stacks shortened).
    const SCRIPT: &str = "\
tokio-rt-worker 
\t 1530b6d rd_kafka_header_add (/b/bridge-bench)
\t  ad56af rmqtt_bridge_egress_kafka::pipeline::publish::PublishInfo::upstream_headers (inlined) (/b/bridge-bench)
\t  66e6a0 rmqtt::hook::DefaultHookManager::exec::{{closure}} (/b/bridge-bench)

tokio-rt-worker 
\t  7e359d dashmap::DashMap<K,V,S>::get (/b/bridge-bench)
\t  66e6a0 rmqtt::hook::DefaultHookManager::exec::{{closure}} (/b/bridge-bench)
\t  a1b2c3 <rmqtt::hook::DefaultHook as rmqtt::hook::Hook>::message_publish_check_acl::{{closure}} (/b/bridge-bench)
\t  ad0dbe rmqtt_bridge_egress_kafka::hooks::PublishHook::forward::{{closure}} (/b/bridge-bench)

tokio-rt-worker 
\t  66e6a0 rmqtt::hook::DefaultHookManager::exec::{{closure}} (/b/bridge-bench)
\t  689359 <rmqtt::hook::DefaultHookManager as rmqtt::hook::HookManager>::message_publish::{{closure}} (/b/bridge-bench)

tokio-rt-worker 
\t 7f8a478e9c9d key_headers::_::__rmqtt_transform (/tmp/perf-4242.map)

tokio-rt-worker 
\t  ac68ed rmqtt_bridge_egress_kafka::transform::slots::Slots<T>::give_back (/b/bridge-bench)
\t  ad0dbe rmqtt_bridge_egress_kafka::hooks::PublishHook::forward::{{closure}} (/b/bridge-bench)

tokio-rt-worker 
\t  ac68ed rmqtt_bridge_egress_kafka::pipeline::publish::PublishInfo::new (/b/bridge-bench)

tokio-rt-worker 
\tffffffff8226dbf9 _raw_spin_unlock_irqrestore ([kernel.kallsyms])
\t  16c5d23 rmqtt::server::listen_tcp::{{closure}}::{{closure}} (/b/bridge-bench)

tokio-rt-worker 
\t    7f8a478e9c9d [unknown] ([unknown])

rdk:broker111 
\t  5a5a5a rd_buf_write (/b/bridge-bench)

producer pollin 
\t  5a5a5b rmqtt_bridge_egress_kafka::delivery::ledger::Ledger::report (/b/bridge-bench)
\t  5a5a5c rdkafka::producer::base_producer::BaseProducer<C,Part>::poll (/b/bridge-bench)

producer pollin 
\t  5a5a5d _rjem_je_arena_ptr_array_flush (/b/bridge-bench)
\t  5a5a5c rdkafka::producer::base_producer::BaseProducer<C,Part>::poll (/b/bridge-bench)
";

    #[test]
    fn frames_keep_symbols_with_spaces_and_parentheses() {
        let f = frame("ad56af rmqtt::a::b (inlined) (/b/bridge-bench)");
        assert_eq!(
            f,
            Frame {
                sym: "rmqtt::a::b (inlined)",
                dso: "/b/bridge-bench"
            }
        );
        let f = frame("ffffffffffffffff [unknown] ([unknown])");
        assert_eq!((f.sym, f.dso), ("[unknown]", "[unknown]"));
    }

    #[test]
    fn each_sample_goes_to_one_owner() {
        let owners: Vec<&str> = samples(SCRIPT)
            .iter()
            .map(|(thread, frames)| owner(thread, frames))
            .collect();
        assert_eq!(
            owners,
            [
                "librdkafka: produce calls",
                "rmqtt: ACL check for the bridge",
                "rmqtt: publish hook dispatch",
                "wasmtime and the module",
                "plugin: transform host",
                "plugin: hook, records, reports",
                "broker (rmqtt, tokio, kernel)",
                "stack not unwound",
                "librdkafka: broker threads",
                "plugin: hook, records, reports",
                "librdkafka: delivery reports",
            ]
        );
    }

    /// perf itself, on a process that spins: about one core, all of it charged to an
    /// owner (a shell's loop has no symbols to match, so it is the broker's or
    /// unwound). scripts/setup.sh installs perf (`linux-perf`).
    #[test]
    fn a_real_profile_charges_every_sample() {
        check_perf().expect("perf, which scripts/setup.sh installs");
        let mut spin = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let file = std::env::temp_dir().join(format!("owners-{}.perf", std::process::id()));
        let profiler = Profiler::start(spin.id(), Duration::ZERO, Duration::from_secs(1), &file);
        let profile = profiler.and_then(Profiler::finish);
        let _ = spin.kill();
        let _ = spin.wait();
        let _ = std::fs::remove_file(&file);
        let profile = profile.unwrap();
        let cores: f64 = profile.cores().iter().map(|(_, c)| c).sum();
        assert!((0.2..1.3).contains(&cores), "{cores} cores: {profile:?}");
        let charged: u64 = [OWNERS[0], OWNERS[9]]
            .iter()
            .map(|o| profile.samples.get(o).copied().unwrap_or(0))
            .sum();
        assert_eq!(
            charged,
            profile.samples.values().sum::<u64>(),
            "{profile:?}"
        );
    }

    #[test]
    fn cores_are_samples_over_rate_and_time() {
        let mut p = Profile {
            seconds: 2.0,
            ..Profile::default()
        };
        p.samples.insert(OWNERS[6], 999);
        let cores = p.cores();
        assert_eq!(cores.len(), OWNERS.len());
        assert_eq!(cores[6], (OWNERS[6].to_string(), 0.5));
        assert_eq!(cores[0].1, 0.0);
    }

    /// The file or folder a symbol path names, from the workspace's root: the crate's
    /// source folder, then one level per module, and the items it names must be in it.
    fn source_of(path: &str) -> Result<PathBuf, String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut parts = path.trim_end_matches("::").split("::");
        let mut at = match parts.next() {
            Some("rmqtt_bridge_egress_kafka") => root.join("src"),
            Some("rmqtt_kafka_transform_abi") => root.join("guest-sdk/abi/src"),
            other => return Err(format!("{other:?} is not a crate of this workspace")),
        };
        let mut items = Vec::new();
        for part in parts {
            let lower = part.starts_with(|c: char| c.is_ascii_lowercase());
            if lower && items.is_empty() && at.is_dir() {
                let file = at.join(format!("{part}.rs"));
                at = if file.is_file() { file } else { at.join(part) };
                if !at.exists() {
                    return Err(format!("{path}: no module {}", at.display()));
                }
            } else {
                items.push(part);
            }
        }
        let text = if at.is_dir() {
            std::fs::read_to_string(at.join("mod.rs")).unwrap_or_default()
        } else {
            std::fs::read_to_string(&at).unwrap_or_default()
        };
        for item in &items {
            let declared = [format!("struct {item}"), format!("fn {item}")];
            if !declared.iter().any(|d| text.contains(d.as_str())) {
                return Err(format!("{path}: {item} is not in {}", at.display()));
            }
        }
        Ok(at)
    }

    #[test]
    fn every_path_that_marks_the_plugins_code_names_its_source() {
        for path in [PLUGIN, REPORTS, PUBLISH_HOOK]
            .into_iter()
            .chain(TRANSFORM_HOST)
        {
            assert!(source_of(path).is_ok(), "{:?}", source_of(path));
        }
        let moved = source_of("rmqtt_bridge_egress_kafka::kafka::ledger::Ledger::report");
        assert!(moved.is_err(), "a path that moved is caught: {moved:?}");
        let renamed = source_of("rmqtt_bridge_egress_kafka::delivery::ledger::Ledger::reports");
        assert!(
            renamed.is_err(),
            "a function renamed is caught: {renamed:?}"
        );
    }
}
