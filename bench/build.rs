//! Tells the binary whether its cargo profile has line tables: `--profile` charges
//! inlined code to its owner through them, and the release profile leaves them out.

fn main() {
    // Cargo sets DEBUG for build scripts: "true" when the profile has any debug info.
    let debug_info = std::env::var("DEBUG").is_ok_and(|d| d == "true");
    println!("cargo:rustc-env=BRIDGE_BENCH_DEBUG_INFO={debug_info}");
}
