//! Compiled code kept on disk between broker processes, for the JavaScript runtime: the
//! first start on a machine compiles it, later starts (and `rmqttd transform` runs) load
//! it in milliseconds.
//!
//! Loading compiled code runs it, so a file in the cache must be one this user wrote:
//! the directory is created private (0700) and is used only while it is owned by this
//! user and writable by nobody else. `RMQTT_KAFKA_BRIDGE_CODE_CACHE` names another
//! directory, or turns the cache off when empty; the default is
//! `$XDG_CACHE_HOME/rmqtt-bridge-egress-kafka` (else `~/.cache/...`).

use std::hash::{Hash, Hasher};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wasmtime::Engine;

const DIR_VAR: &str = "RMQTT_KAFKA_BRIDGE_CODE_CACHE";

/// Where the compiled form of `code` for `engine` is kept, if the cache is usable.
pub(crate) fn file_for(engine: &Engine, name: &str, code: &[u8]) -> Option<PathBuf> {
    let dir = private_dir()?;
    let mut hasher = std::hash::DefaultHasher::new();
    code.hash(&mut hasher);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    Some(dir.join(format!("{name}-{:016x}.cwasm", hasher.finish())))
}

/// The file's bytes, if it exists.
pub(crate) fn read(file: &Path) -> Option<Vec<u8>> {
    std::fs::read(file).ok()
}

/// Writes the file whole or not at all (a temporary file, then a rename); failing to
/// cache only costs the next start a compilation.
pub(crate) fn write(file: &Path, bytes: &[u8]) {
    let temp = file.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, bytes))
        .and_then(|()| std::fs::rename(&temp, file));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        log::debug!("compiled-code cache: cannot write {}: {e}", file.display());
    }
}

/// The cache directory, created private if missing; `None` when it is turned off, or
/// when another user owns it or may write to it.
fn private_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os(DIR_VAR) {
        Some(d) if d.is_empty() => return None,
        Some(d) => PathBuf::from(d),
        None => default_dir()?,
    };
    private(dir)
}

/// `dir`, created private if missing, if it is this user's alone.
fn private(dir: PathBuf) -> Option<PathBuf> {
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir);
    let meta = std::fs::metadata(&dir).ok()?;
    let private = meta.is_dir()
        && meta.uid() == rustix::process::getuid().as_raw()
        && meta.permissions().mode() & 0o022 == 0;
    if !private {
        log::warn!(
            "compiled-code cache {} is not private to this user; not used",
            dir.display()
        );
        return None;
    }
    Some(dir)
}

fn default_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    Some(base.join("rmqtt-bridge-egress-kafka"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_directory_private_to_this_user_is_used() {
        let root = tempfile::tempdir().unwrap();
        let made = root.path().join("made/here");
        assert_eq!(private(made.clone()), Some(made.clone()), "created private");
        let mode = std::fs::metadata(&made).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(private(shared), None, "others may write to it");
    }

    #[test]
    fn a_cached_file_is_written_whole_and_read_back() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("x.cwasm");
        write(&file, b"compiled");
        assert_eq!(read(&file).as_deref(), Some(&b"compiled"[..]));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(root.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }
}
