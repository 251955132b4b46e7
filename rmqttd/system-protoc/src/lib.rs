//! The API of crates.io's `protobuf-src` that rmqtt-protobuf-build calls, answered with
//! the system's `protoc` instead of one compiled from source. rmqtt-protobuf-build asks
//! only when no usable `protoc` is on `PATH` (or in `$PROTOC`), so reaching this means
//! protoc is missing: the build stops saying how to install it.

use std::path::PathBuf;

/// The `protoc` on `PATH`; panics (in a build script, where it is called) when there is
/// none, naming the package that provides it.
pub fn protoc() -> PathBuf {
    find_on_path("protoc").unwrap_or_else(|| {
        panic!(
            "protoc (>= 3.1) is needed to build rmqtt-cluster-raft: install Debian's \
             protobuf-compiler (scripts/setup.sh build does), or set PROTOC"
        )
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_program_on_path_and_not_a_missing_one() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("no-such-program-here").is_none());
    }
}
