//! `remote.value_schema` and `remote.key_schema`: the schema a record's value or key is
//! encoded against, from a schema registry or from a file with a fixed id.

use std::path::PathBuf;
use std::time::Duration;

use super::units::duration;

/// One of the two schema settings of an entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "SchemaFields")]
pub struct SchemaConfig {
    pub format: SchemaFormat,
    pub source: SchemaSource,
    /// Protobuf's message type, `package.Type`.
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaFormat {
    Avro,
    /// JSON Schema.
    Json,
    Protobuf,
}

impl SchemaFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaFormat::Avro => "avro",
            SchemaFormat::Json => "json",
            SchemaFormat::Protobuf => "protobuf",
        }
    }

    /// The registry's `schemaType` (absent means AVRO).
    pub fn registry_type(self) -> &'static str {
        match self {
            SchemaFormat::Avro => "AVRO",
            SchemaFormat::Json => "JSON",
            SchemaFormat::Protobuf => "PROTOBUF",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaSource {
    Registry(RegistrySource),
    /// A schema file and the id its records carry. A relative path resolves against
    /// the broker's working directory.
    File {
        path: PathBuf,
        id: u32,
    },
}

/// A subject's version in a Confluent-compatible schema registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySource {
    /// `http://host:8081` or `https://…`, perhaps with a path prefix.
    pub url: String,
    /// Unset in the file: `<remote.topic>-value` or `-key`, Confluent's default
    /// (TopicNameStrategy), named when the configuration loads.
    pub subject: String,
    /// `None`: the latest, fetched again at every reload.
    pub version: Option<u32>,
    pub auth: Option<RegistryAuth>,
    /// How long one request to the registry may take.
    pub timeout: Duration,
}

#[derive(Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    Basic { username: String, password: String },
    Bearer(String),
}

impl std::fmt::Debug for RegistryAuth {
    /// Never shows the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryAuth::Basic { username, .. } => write!(f, "Basic({username}, <hidden>)"),
            RegistryAuth::Bearer(_) => f.write_str("Bearer(<hidden>)"),
        }
    }
}

/// The table as written, before its source is chosen.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFields {
    format: SchemaFormat,
    registry: Option<String>,
    subject: Option<String>,
    /// `"latest"` or a version number.
    version: Option<String>,
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    timeout: Duration,
    file: Option<PathBuf>,
    id: Option<u32>,
    message: Option<String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl TryFrom<SchemaFields> for SchemaConfig {
    type Error = String;

    fn try_from(f: SchemaFields) -> Result<SchemaConfig, String> {
        let source = match (f.registry, f.file) {
            (Some(url), None) => SchemaSource::Registry(registry(
                url,
                f.subject,
                f.version,
                auth(f.username, f.password, f.token)?,
                f.timeout,
            )?),
            (None, Some(path)) => {
                if f.subject.is_some() || f.version.is_some() {
                    return Err("`subject` and `version` go with `registry`, not `file`".into());
                }
                let id =
                    f.id.ok_or("a schema `file` needs the `id` its records carry")?;
                SchemaSource::File { path, id }
            }
            (Some(_), Some(_)) => {
                return Err("both `registry` and `file` are set; choose one".into())
            }
            (None, None) => {
                return Err("needs `registry` (with `subject`) or `file` (with `id`)".into())
            }
        };
        if matches!(source, SchemaSource::Registry(_)) && f.id.is_some() {
            return Err("`id` goes with `file`; a registry gives the id".into());
        }
        match (f.format, &f.message) {
            (SchemaFormat::Protobuf, None) => {
                return Err(
                    "a protobuf schema needs `message`, the type to encode (\"package.Type\")"
                        .into(),
                )
            }
            (SchemaFormat::Avro | SchemaFormat::Json, Some(_)) => {
                return Err("`message` is only for protobuf schemas".into())
            }
            _ => {}
        }
        Ok(SchemaConfig {
            format: f.format,
            source,
            message: f.message,
        })
    }
}

fn registry(
    url: String,
    subject: Option<String>,
    version: Option<String>,
    auth: Option<RegistryAuth>,
    timeout: Duration,
) -> Result<RegistrySource, String> {
    let parsed: hyper::Uri = url
        .parse()
        .map_err(|e| format!("`registry` {url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
        return Err(format!(
            "`registry` {url:?} is not an http:// or https:// URL with a host"
        ));
    }
    if subject.as_deref() == Some("") {
        return Err("`subject` is empty".into());
    }
    // Named after the topic when the configuration loads (`name_subjects`).
    let subject = subject.unwrap_or_default();
    let version = match version.as_deref() {
        None | Some("latest") => None,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                return Err(format!(
                    "`version` is \"latest\" or a number from 1, got {v:?}"
                ))
            }
        },
    };
    if timeout.is_zero() {
        return Err("`timeout` must be more than 0".into());
    }
    Ok(RegistrySource {
        url: url.trim_end_matches('/').to_owned(),
        subject,
        version,
        auth,
        timeout,
    })
}

fn auth(
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
) -> Result<Option<RegistryAuth>, String> {
    match (username, password, token) {
        (None, None, None) => Ok(None),
        (Some(username), Some(password), None) => {
            Ok(Some(RegistryAuth::Basic { username, password }))
        }
        (None, None, Some(t)) if !t.is_empty() => Ok(Some(RegistryAuth::Bearer(t))),
        (None, None, Some(_)) => Err("`token` is empty".into()),
        (_, _, Some(_)) => Err("`token` and `username`/`password` are both set; choose one".into()),
        _ => Err("basic authentication needs both `username` and `password`".into()),
    }
}

impl super::PluginConfig {
    /// Gives each registry schema without a `subject` Confluent's default,
    /// `<remote.topic>-value` (or `-key`), which needs a constant topic.
    pub(super) fn name_subjects(&mut self) -> Result<(), super::ConfigError> {
        for (bi, b) in self.bridges.iter_mut().enumerate() {
            for (ei, e) in b.entries.iter_mut().enumerate() {
                let r = &mut e.remote;
                let topic = r.topic.constant().map(str::to_owned);
                for (field, suffix, schema) in [
                    ("remote.value_schema", "value", &mut r.value_schema),
                    ("remote.key_schema", "key", &mut r.key_schema),
                ] {
                    let Some(SchemaSource::Registry(registry)) =
                        schema.as_mut().map(|s| &mut s.source)
                    else {
                        continue;
                    };
                    if !registry.subject.is_empty() {
                        continue;
                    }
                    let Some(topic) = &topic else {
                        let why = "needs `subject`: remote.topic is a template, so no one topic names it (the default is \"<topic>-value\" or \"<topic>-key\")";
                        return Err(super::ConfigError::at((bi, &b.name), Some(ei), field, why));
                    };
                    registry.subject = format!("{topic}-{suffix}");
                }
            }
        }
        Ok(())
    }
}
