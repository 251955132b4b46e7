//! `transform.config` on the command line: `--config name=value` entries, and
//! `--config-file`, a file of such lines (a golden directory's `config`), so that a
//! README's command and the golden files read the same config.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::message::key_value;

#[derive(Args)]
pub struct ConfigArgs {
    /// An entry of `transform.config`, `name=value`; repeatable. Added after
    /// `--config-file`'s, and wins over them.
    #[arg(long = "config", value_name = "NAME=VALUE", value_parser = key_value)]
    config: Vec<(String, String)>,
    /// Entries of `transform.config`, one `name=value` per line (blank lines and lines
    /// starting with `#` are skipped), such as a golden directory's `config` file.
    #[arg(long, value_name = "FILE")]
    config_file: Option<PathBuf>,
}

impl ConfigArgs {
    /// The file's entries, then the flags'.
    pub fn entries(&self) -> Result<Vec<(String, String)>> {
        let mut entries = Vec::new();
        if let Some(path) = &self.config_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--config-file {}", path.display()))?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                match key_value(line) {
                    Ok(entry) => entries.push(entry),
                    Err(e) => bail!("{} line {}: {e}", path.display(), i + 1),
                }
            }
        }
        entries.extend(self.config.iter().cloned());
        Ok(entries)
    }
}
