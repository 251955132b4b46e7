//! Configuration errors, located: file, bridge, entry and field.

use std::fmt;

use serde_path_to_error::Segment;

use super::CONFIG_FILE;

/// A configuration problem, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Index and name of the bridge, when the problem is inside one.
    pub bridge: Option<(usize, String)>,
    /// Index of the entry, when the problem is inside one.
    pub entry: Option<usize>,
    /// Dotted path of the field inside the bridge/entry (or from the top of the file).
    pub field: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{CONFIG_FILE}: ")?;
        match &self.bridge {
            Some((_, name)) if !name.is_empty() => write!(f, "bridge \"{name}\", ")?,
            Some((i, _)) => write!(f, "bridges[{i}], ")?,
            None => {}
        }
        if let Some(e) = self.entry {
            write!(f, "entry {e}, ")?;
        }
        if self.field.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "field `{}`: {}", self.field, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// A problem with the file as a whole.
    pub fn file(problem: impl Into<String>) -> ConfigError {
        ConfigError {
            bridge: None,
            entry: None,
            field: String::new(),
            problem: problem.into(),
        }
    }

    /// A problem with a top-level field of the file.
    pub fn field(field: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            bridge: None,
            entry: None,
            field: field.to_owned(),
            problem: problem.into(),
        }
    }

    /// A problem with a field of a bridge, or of one of its entries.
    pub fn at(
        bridge: (usize, &str),
        entry: Option<usize>,
        field: &str,
        problem: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            bridge: Some((bridge.0, bridge.1.to_owned())),
            entry,
            field: field.to_owned(),
            problem: problem.into(),
        }
    }

    /// A deserialization error at a serde path, with the config crate's own location
    /// suffix removed (the location is ours to report).
    pub(super) fn from_serde(
        path: &serde_path_to_error::Path,
        names: &[String],
        message: &str,
    ) -> ConfigError {
        let mut err = locate(path, names);
        err.problem = match message.rfind(" for key `") {
            Some(i) if message.ends_with('`') => message[..i].to_owned(),
            _ => message.to_owned(),
        };
        err
    }
}

pub(super) fn bridge_names(raw: &config::Value) -> Vec<String> {
    let Ok(table) = raw.clone().into_table() else {
        return Vec::new();
    };
    let Some(Ok(bridges)) = table.get("bridges").map(|b| b.clone().into_array()) else {
        return Vec::new();
    };
    bridges
        .into_iter()
        .map(|b| {
            b.into_table()
                .ok()
                .and_then(|t| t.get("name").and_then(|n| n.clone().into_string().ok()))
                .unwrap_or_default()
        })
        .collect()
}

/// Turns a serde path such as `bridges[1].entries[0].remote.topic` into a location.
fn locate(path: &serde_path_to_error::Path, names: &[String]) -> ConfigError {
    let segs: Vec<&Segment> = path.iter().collect();
    let mut err = ConfigError::file(String::new());
    let mut rest = segs.as_slice();
    if let [Segment::Map { key }, Segment::Seq { index }, tail @ ..] = rest {
        if key == "bridges" {
            err.bridge = Some((*index, names.get(*index).cloned().unwrap_or_default()));
            rest = tail;
            if let [Segment::Map { key }, Segment::Seq { index }, tail @ ..] = rest {
                if key == "entries" {
                    err.entry = Some(*index);
                    rest = tail;
                }
            }
        }
    }
    let mut field = String::new();
    for seg in rest {
        match seg {
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !field.is_empty() {
                    field.push('.');
                }
                if key.contains('.') {
                    field.push_str(&format!("\"{key}\""));
                } else {
                    field.push_str(key);
                }
            }
            Segment::Seq { index } => field.push_str(&format!("[{index}]")),
            Segment::Unknown => {}
        }
    }
    err.field = field;
    err
}
