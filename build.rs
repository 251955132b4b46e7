//! Builds the JavaScript runtime (guest-sdk/js) for wasm32-wasip1 and puts it in OUT_DIR
//! for src/transform/javascript.rs to embed: a `transform.script` needs nothing but the
//! plugin. QuickJS-ng is C, compiled for wasm32 by clang with Debian's wasi-libc
//! (scripts/setup.sh installs both, and the wasm32-wasip1 Rust target).
//!
//! The nested build has its own workspace and uses `<target>/js-runtime`, shared by every
//! profile of this crate, so it runs once per change, not once per profile.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip1";
const ARTIFACT: &str = "rmqtt_kafka_transform_js.wasm";

fn main() {
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    for watched in [
        "guest-sdk/js/src",
        "guest-sdk/js/Cargo.toml",
        "guest-sdk/js/Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={watched}");
    }
    for watched in ["guest-sdk/src", "guest-sdk/abi/src", "guest-sdk/macros/src"] {
        println!("cargo:rerun-if-changed={watched}");
    }
    println!("cargo:rerun-if-env-changed=CC_wasm32_wasip1");
    let target_dir = shared_target_dir(&out).join("js-runtime");
    if let Err(why) = build(&root.join("guest-sdk/js/Cargo.toml"), &target_dir) {
        eprintln!("error: cannot build the JavaScript runtime (guest-sdk/js) for {TARGET}: {why}");
        std::process::exit(1);
    }
    let built = target_dir.join(TARGET).join("release").join(ARTIFACT);
    std::fs::copy(&built, out.join("js-runtime.wasm"))
        .unwrap_or_else(|e| panic!("cannot copy {}: {e}", built.display()));
}

/// `<target>` from `<target>[/<triple>]/<profile>/build/<crate>-<hash>/out`.
fn shared_target_dir(out: &Path) -> PathBuf {
    let build = out
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .expect("OUT_DIR lies under <target>/<profile>/build");
    let profile = build.parent().expect("<profile>/build");
    let above = profile.parent().expect("<target>/<profile>");
    // With --target, profiles sit one level deeper, under the triple.
    match env::var("TARGET") {
        Ok(t) if above.file_name().is_some_and(|n| n == t.as_str()) => {
            above.parent().unwrap_or(above).to_owned()
        }
        _ => above.to_owned(),
    }
}

fn build(manifest: &Path, target_dir: &Path) -> Result<(), String> {
    let cc = env::var("CC_wasm32_wasip1").unwrap_or_else(|_| "clang-14".into());
    if !runs(&cc) {
        return Err(format!("`{cc}` is not installed (apt install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32, or run scripts/setup.sh; CC_wasm32_wasip1 names another clang)"));
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--locked",
        "--target",
        TARGET,
        "--manifest-path",
    ])
    .arg(manifest)
    .arg("--target-dir")
    .arg(target_dir)
    // The outer build's settings are for the host, not for wasm32.
    .env_remove("RUSTFLAGS")
    .env_remove("CARGO_ENCODED_RUSTFLAGS")
    .env_remove("RUSTC_WRAPPER")
    .env_remove("RUSTC_WORKSPACE_WRAPPER")
    .env_remove("CARGO_TARGET_DIR")
    .env_remove("CARGO_BUILD_TARGET")
    // rquickjs-sys would download the WASI SDK; Debian's clang and wasi-libc do.
    .env("RQUICKJS_SYS_NO_WASI_SDK", "1")
    .env("CC_wasm32_wasip1", &cc)
    .env("AR_wasm32_wasip1", ar_for(&cc))
    // Debian's clang knows the wasi-libc sysroot by this triple's older name.
    .env("CFLAGS_wasm32_wasip1", "--target=wasm32-wasi");
    for (key, _) in env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| k.starts_with("CARGO_PROFILE_"))
        {
            cmd.env_remove(key);
        }
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo failed ({status}); if it says the target may not be installed, run `rustup target add {TARGET}` (scripts/setup.sh does)"
        ));
    }
    Ok(())
}

/// `llvm-ar-14` beside `clang-14`, else `llvm-ar`.
fn ar_for(cc: &str) -> String {
    let versioned = cc.strip_prefix("clang").filter(|v| v.starts_with('-'));
    match versioned {
        Some(v) if runs(&format!("llvm-ar{v}")) => format!("llvm-ar{v}"),
        _ => "llvm-ar".into(),
    }
}

/// Whether `program --version` runs.
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}
