//! Test certificates made with Debian's `openssl` command line: a CA and a server
//! certificate for `localhost` and 127.0.0.1 that it signed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::procs::require;

/// PEM files in the directory given to [`make_certs`].
pub struct Certs {
    /// The CA's certificate, for clients (`mosquitto_pub --cafile`).
    pub ca: PathBuf,
    /// The server's certificate and key, for a TLS listener's `cert` and `key`.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Writes a fresh CA and a server certificate valid for a day into `dir`.
pub fn make_certs(dir: &Path) -> Certs {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = DNS:localhost, IP:127.0.0.1\nbasicConstraints = CA:FALSE\n\
         keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    let openssl = |args: &str| {
        let out = Command::new(require("openssl"))
            .args(args.split_whitespace())
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl("req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=bridge-test-CA -keyout ca.key -out ca.pem");
    openssl("req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr");
    openssl("x509 -req -days 1 -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -extfile server.ext -out server.pem");
    Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}
