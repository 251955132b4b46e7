//! Logging as rmqtt.toml's `[log]` section says: to the console, a file, both, or off,
//! at `log.level`. `RUST_LOG`, when set, overrides the level.

use std::sync::OnceLock;

use anyhow::{Context, Result};
use flexi_logger::{DeferredNow, Duplicate, FileSpec, Logger, LoggerHandle, WriteMode};
use rmqtt_conf::logging::Log;

static HANDLE: OnceLock<LoggerHandle> = OnceLock::new();

pub fn init(conf: &Log) -> Result<()> {
    if conf.to.off() {
        return Ok(());
    }
    let mut logger = Logger::try_with_env_or_str(conf.level.as_str())?.format(line);
    if conf.to.file() {
        let file = conf.filename();
        logger = logger
            .log_to_file(
                FileSpec::try_from(file.as_str()).with_context(|| format!("log file {file}"))?,
            )
            .write_mode(WriteMode::BufferAndFlush);
        if conf.to.console() {
            logger = logger.duplicate_to_stderr(Duplicate::All);
        }
    } else {
        logger = logger.log_to_stderr();
    }
    let handle = logger.start().context("cannot start logging")?;
    let _ = HANDLE.set(handle);
    Ok(())
}

/// `2026-11-24T07:08:25.231Z INFO rmqtt_acl: message`
fn line(
    w: &mut dyn std::io::Write,
    now: &mut DeferredNow,
    record: &log::Record,
) -> std::io::Result<()> {
    write!(
        w,
        "{} {:<5} {}: {}",
        now.format_rfc3339(),
        record.level(),
        record.module_path().unwrap_or_default(),
        record.args()
    )
}
