//! A minimal HTTP/1.0 client for talking to a broker's HTTP API in tests: HTTP/1.0 keeps
//! the answer unchunked and the connection closed after it, so reading to the end is
//! the whole response. Also: reading one sample out of a Prometheus text answer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A response: status code and body.
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Sends `method path` with an empty body to 127.0.0.1:`port`.
pub fn request(port: u16, method: &str, path: &str) -> Response {
    request_with(port, method, path, &[])
}

/// Sends `method path` with extra header lines (`("Authorization", "Bearer x")`).
pub fn request_with(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    send(port, method, path, headers, "")
}

/// POSTs `json` to `path`, with extra header lines.
pub fn post_json(port: u16, path: &str, headers: &[(&str, &str)], json: &str) -> Response {
    let mut headers = headers.to_vec();
    headers.push(("Content-Type", "application/json"));
    send(port, "POST", path, &headers, json)
}

fn send(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("HTTP API on port {port}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream
        .read_to_string(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {path}: reading the response: {e}"));
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: not an HTTP response:\n{raw}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status in {head:?}"));
    Response {
        status,
        body: body.to_owned(),
    }
}

/// The value of the Prometheus sample `rmqtt_kafka_bridge_{name}{{labels}}` in
/// `metrics`, with `labels` as Prometheus prints them (sorted by name); a missing
/// sample fails the test with the whole answer.
pub fn sample(metrics: &str, name: &str, labels: &str) -> f64 {
    let prefix = if labels.is_empty() {
        format!("rmqtt_kafka_bridge_{name} ")
    } else {
        format!("rmqtt_kafka_bridge_{name}{{{labels}}} ")
    };
    let line = metrics
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no sample {prefix:?} in:\n{metrics}"));
    line[prefix.len()..]
        .parse()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"))
}
