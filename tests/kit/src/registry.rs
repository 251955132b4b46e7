//! A schema registry for tests, and decoding a topic with Confluent's own client:
//! `tests/registry/stub_registry.py` stands in for Confluent Schema Registry (none
//! installs from this machine's package sources) as a process of its own, and
//! `tests/registry/decode.py` reads records back through confluent-kafka's Avro, JSON
//! Schema and Protobuf deserializers. Both run on the venv's python, which
//! `scripts/setup.sh tansu` installs with confluent-kafka. A missing dependency is a
//! failure, never a skip.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::http::{self, Response};
use crate::procs::{free_port, lines_of, Proc};
use crate::repo_root;
use crate::tls::Certs;

/// The stub registry on 127.0.0.1, killed when dropped.
pub struct Registry {
    pub port: u16,
    /// `http://127.0.0.1:{port}`: what the plugin and [`decode`] are given.
    pub url: String,
    /// The `Authorization` header it requires, if any (the token's when it takes both).
    pub authorization: Option<String>,
    /// Its command line's options: authentication, https.
    auth_args: Vec<String>,
    proc: Option<Proc>,
    /// Where it keeps its schemas, so that they outlive [`Registry::restart`] as a real
    /// registry's do.
    state: tempfile::TempDir,
    /// Its stderr, a line per request: a pipe nobody reads would stall it once full.
    log: tempfile::NamedTempFile,
}

/// Starts the stub registry on a free port, with no authentication.
pub fn start_registry() -> Registry {
    start_registry_with_auth(None, None)
}

/// Starts the stub registry requiring HTTP Basic `(user, password)` or a bearer `token`
/// on every request (either, when both are given).
pub fn start_registry_with_auth(basic: Option<(&str, &str)>, token: Option<&str>) -> Registry {
    let mut auth_args = Vec::new();
    let mut authorization = None;
    if let Some((user, password)) = basic {
        let user_info = format!("{user}:{password}");
        authorization = Some(format!("Basic {}", base64(user_info.as_bytes())));
        auth_args.extend(["--basic".to_owned(), user_info]);
    }
    if let Some(token) = token {
        authorization = Some(format!("Bearer {token}"));
        auth_args.extend(["--token".to_owned(), token.to_owned()]);
    }
    let port = free_port();
    let mut registry = Registry {
        port,
        url: format!("http://127.0.0.1:{port}"),
        authorization,
        auth_args,
        proc: None,
        state: tempfile::tempdir().unwrap(),
        log: tempfile::NamedTempFile::new().unwrap(),
    };
    registry.restart();
    registry
}

impl Registry {
    /// Also serves https, with `certs`' server certificate, on a port of its own (the
    /// same schemas; [`Registry::register`] keeps to http): restarts the registry and
    /// returns the https URL.
    pub fn serve_https(&mut self, certs: &Certs) -> String {
        let port = free_port();
        self.auth_args.push("--tls".to_owned());
        self.auth_args.push(port.to_string());
        for pem in [&certs.cert, &certs.key] {
            self.auth_args.push(pem.display().to_string());
        }
        self.restart();
        format!("https://127.0.0.1:{port}")
    }

    /// Kills the registry: requests to it are refused until [`Registry::restart`].
    pub fn kill(&mut self) {
        self.proc = None;
    }

    /// Starts the registry (again, if it runs) on the same port, with the schemas
    /// registered before.
    pub fn restart(&mut self) {
        self.proc = None;
        let mut child = Command::new(venv_python())
            .arg(script("stub_registry.py"))
            .args(["--port", &self.port.to_string(), "--state"])
            .arg(self.state.path().join("state.json"))
            .args(&self.auth_args)
            .stdout(Stdio::piped())
            .stderr(
                OpenOptions::new()
                    .append(true)
                    .open(self.log.path())
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        let stdout = lines_of(child.stdout.take().unwrap());
        let proc = Proc(child);
        let started = stdout.recv_timeout(Duration::from_secs(30));
        let ready = format!("listening on {}", self.port);
        if started.as_deref() != Ok(ready.as_str()) {
            panic!(
                "the stub registry did not start ({started:?}); its log:\n{}",
                self.log()
            );
        }
        self.proc = Some(proc);
    }

    /// What the registry has logged so far: a line per request.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Registers `schema` ("AVRO", "JSON" or "PROTOBUF" as `schema_type`) under
    /// `subject` (as it goes in a URL path) and returns its id: the same schema keeps its
    /// id, a new one gets the next.
    pub fn register(&self, subject: &str, schema_type: &str, schema: &str) -> u32 {
        let body = serde_json::json!({"schema": schema, "schemaType": schema_type});
        let path = format!("/subjects/{subject}/versions");
        let answer = http::post_json(self.port, &path, &self.auth(), &body.to_string());
        assert_eq!(answer.status, 200, "POST {path}: {}", answer.body);
        let id = serde_json::from_str::<Value>(&answer.body).unwrap()["id"].as_u64();
        id.and_then(|id| u32::try_from(id).ok())
            .unwrap_or_else(|| panic!("POST {path}: no id in {}", answer.body))
    }

    /// GETs `path` (`/subjects/s/versions/latest`, say), authenticated as required.
    pub fn get(&self, path: &str) -> Response {
        http::request_with(self.port, "GET", path, &self.auth())
    }

    fn auth(&self) -> Vec<(&str, &str)> {
        let authorization = self.authorization.as_deref();
        authorization
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect()
    }
}

/// Reads `count` records of `topic` and decodes them with Confluent's own deserializers
/// (decode.py): values as `format` ("avro", "json" or "protobuf"), with `extra` flags of
/// decode.py's (`["--key-format", "avro"]`, `["--basic", "u:p"]`). One JSON object per
/// record, in partition and offset order: `{"partition", "offset", "key", "value",
/// "headers"}`, or `{"partition", "offset", "error"}` for one that did not decode.
/// Panics with decode.py's stderr if it fails, as when fewer than `count` records
/// arrive within its `--timeout` (30 s unless `extra` says).
pub fn decode(
    bootstrap: &str,
    topic: &str,
    count: usize,
    format: &str,
    registry: &str,
    extra: &[&str],
) -> Vec<Value> {
    let out = Command::new(venv_python())
        .arg(script("decode.py"))
        .args(["--bootstrap", bootstrap, "--topic", topic])
        .args(["--count", &count.to_string(), "--format", format])
        .args(["--registry", registry])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "decode.py {topic} ({}; scripts/setup.sh tansu installs confluent-kafka):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("decode.py: {l:?}: {e}")))
        .collect()
}

/// The venv's python, where scripts/setup.sh installed confluent-kafka.
fn venv_python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is required: run scripts/setup.sh tansu",
        python.display()
    );
    python
}

fn script(name: &str) -> PathBuf {
    repo_root().join("tests/registry").join(name)
}

/// Standard base64 with padding, for a Basic `Authorization` header.
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVRO_V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
    const AVRO_V2: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#;

    fn json(r: &Response) -> Value {
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
    }

    #[test]
    fn registers_versions_and_answers_as_confluent_does() {
        let mut registry = start_registry();
        let first = registry.register("t-value", "AVRO", AVRO_V1);
        assert_eq!(registry.register("t-value", "AVRO", AVRO_V1), first);
        let second = registry.register("t-value", "AVRO", AVRO_V2);
        assert!(second > first);

        let latest = json(&registry.get("/subjects/t-value/versions/latest"));
        assert_eq!(latest["version"], 2);
        assert_eq!(latest["id"], second);
        assert_eq!(latest["schema"], AVRO_V2);
        assert!(latest.get("schemaType").is_none(), "left out for AVRO");
        assert_eq!(
            json(&registry.get("/subjects/t-value/versions")),
            serde_json::json!([1, 2])
        );
        assert_eq!(
            json(&registry.get(&format!("/schemas/ids/{first}")))["schema"],
            AVRO_V1
        );

        for (path, code) in [
            ("/subjects/nope/versions/latest", 40401),
            ("/subjects/t-value/versions/3", 40402),
            ("/schemas/ids/99", 40403),
        ] {
            let answer = registry.get(path);
            assert_eq!(answer.status, 404, "{path}");
            assert_eq!(json(&answer)["error_code"], code, "{path}");
        }

        // Down, then back with what was registered.
        registry.kill();
        assert!(std::net::TcpStream::connect(("127.0.0.1", registry.port)).is_err());
        registry.restart();
        assert_eq!(
            json(&registry.get("/subjects/t-value/versions/2"))["id"],
            second
        );
        assert!(registry.log().contains("GET /subjects/t-value/versions/2"));
    }

    #[test]
    fn refuses_requests_without_the_token() {
        let registry = start_registry_with_auth(None, Some("s3cret"));
        let id = registry.register("t-value", "AVRO", AVRO_V1);
        for authorization in [None, Some("Bearer wrong")] {
            let headers: Vec<_> = authorization
                .map(|a| ("Authorization", a))
                .into_iter()
                .collect();
            let answer = http::request_with(registry.port, "GET", "/subjects", &headers);
            assert_eq!(answer.status, 401, "{authorization:?}");
            assert_eq!(json(&answer)["error_code"], 401);
        }
        assert_eq!(
            json(&registry.get(&format!("/schemas/ids/{id}")))["schema"],
            AVRO_V1
        );
    }

    #[test]
    fn takes_basic_credentials() {
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        let registry = start_registry_with_auth(Some(("user", "pa:ss")), None);
        registry.register("t-value", "AVRO", AVRO_V1);
        assert_eq!(http::request(registry.port, "GET", "/subjects").status, 401);
    }
}
