//! The front door: rmqtt's HTTP API and the bridge's own endpoint on a real `rmqttd`.
//! A started endpoint that listens beyond loopback without `http_bearer_token` is
//! warned about at start, naming the file; one with a token, or a plugin that is not
//! started, is not. With a token, an unauthenticated `POST /api/v1/mqtt/publish` is
//! refused and publishes nothing, and the same request with the token publishes, as
//! `mosquitto_sub` sees.

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use bridge_testkit::http::{post_json, request};
use bridge_testkit::procs::{free_port, lines_of, require, Proc};
use bridge_testkit::rmqttd::Site;

const RMQTTD: &str = env!("CARGO_BIN_EXE_rmqttd");
/// Added to plugins.default_startups to start rmqtt's HTTP API.
const API_STARTUP: &str = ", \"rmqtt-http-api\"";
const API_FILE: &str = "plugins/rmqtt-http-api.toml";
const BRIDGE_FILE: &str = "plugins/rmqtt-bridge-egress-kafka.toml";
/// What every exposure warning says.
const WARNING: &str = "is reachable beyond this host and no http_bearer_token is set";

/// The bridge's file: `http` (its endpoint's keys) and a disabled bridge, which needs
/// no Kafka and logs nothing.
fn bridge_config(http: &str) -> String {
    format!(
        "{http}[[bridges]]\nenable = false\nname = \"b1\"\nservers = \"127.0.0.1:1\"\n[[bridges.entries]]\nlocal.topic_filter = \"a/#\"\nremote.topic = \"t\"\n"
    )
}

/// The exposure warnings in rmqttd's log so far.
fn warnings(site: &Site) -> Vec<String> {
    let log = site.stderr();
    log.lines()
        .filter(|l| l.contains(WARNING))
        .map(str::to_owned)
        .collect()
}

#[test]
fn started_endpoints_beyond_loopback_without_a_token_are_warned_about() {
    let (api, own) = (free_port(), free_port());
    let bridge = bridge_config(&format!("http_laddr = \"0.0.0.0:{own}\"\n"));
    let site = Site::with(RMQTTD, &bridge, API_STARTUP, "");
    site.write(API_FILE, &format!("http_laddr = \"0.0.0.0:{api}\"\n"));
    let _rmqttd = site.start();
    let found = warnings(&site);
    assert_eq!(found.len(), 2, "one per endpoint: {found:#?}");
    for (file, port) in [(API_FILE, api), (BRIDGE_FILE, own)] {
        let says = format!(" WARN  rmqttd::exposure: {file}: http_laddr 0.0.0.0:{port} {WARNING}");
        assert!(
            found
                .iter()
                .any(|w| w.contains(&says) && w.contains("Set http_bearer_token")),
            "{says}\nin {found:#?}"
        );
    }
}

#[test]
fn a_token_or_a_plugin_not_started_is_not_warned_about() {
    let (api, own) = (free_port(), free_port());
    let guarded = format!("http_laddr = \"0.0.0.0:{own}\"\nhttp_bearer_token = \"t1\"\n");
    let site = Site::with(RMQTTD, &bridge_config(&guarded), API_STARTUP, "");
    let api_toml = format!("http_laddr = \"0.0.0.0:{api}\"\nhttp_bearer_token = \"t2\"\n");
    site.write(API_FILE, &api_toml);
    let rmqttd = site.start();
    // Both listen beyond loopback, behind their tokens.
    assert_eq!(request(api, "GET", "/api/v1/nodes").status, 401);
    assert_eq!(request(own, "GET", "/metrics").status, 401);
    assert_eq!(warnings(&site), Vec::<String>::new());
    drop(rmqttd);

    // Configured open, but not in plugins.default_startups: it does not listen.
    let api = free_port();
    let site = Site::new(RMQTTD, &bridge_config(""));
    site.write(API_FILE, &format!("http_laddr = \"0.0.0.0:{api}\"\n"));
    let _rmqttd = site.start();
    assert!(TcpStream::connect(("127.0.0.1", api)).is_err());
    assert_eq!(warnings(&site), Vec::<String>::new());
}

/// `mosquitto_sub` on `topic`, and the payloads it prints, one per line.
fn subscribe(port: u16, topic: &str) -> (Proc, Receiver<String>) {
    let mut child = Command::new(require("mosquitto_sub"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-q", "1", "-t", topic])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines_of(child.stdout.take().unwrap());
    (Proc(child), rx)
}

/// Publishes numbered probes with the token until the subscriber prints one: from
/// then on, whatever is published to the topic reaches it.
fn until_subscribed(api: u16, auth: &[(&str, &str)], rx: &Receiver<String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 0.. {
        let probe = format!(r#"{{"topic":"front/door","payload":"probe-{n}","qos":1}}"#);
        let r = post_json(api, "/api/v1/mqtt/publish", auth, &probe);
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "mosquitto_sub never got a probe");
    }
}

#[test]
fn with_a_token_an_unauthenticated_publish_is_refused_and_publishes_nothing() {
    let api = free_port();
    let site = Site::with(RMQTTD, &bridge_config(""), API_STARTUP, "");
    let api_toml = format!("http_laddr = \"127.0.0.1:{api}\"\nhttp_bearer_token = \"s3cret\"\n");
    site.write(API_FILE, &api_toml);
    let _rmqttd = site.start();
    let (_sub, rx) = subscribe(site.port, "front/door");
    let auth = [("Authorization", "Bearer s3cret")];
    until_subscribed(api, &auth, &rx);

    let publish =
        |payload: &str| format!(r#"{{"topic":"front/door","payload":"{payload}","qos":1}}"#);
    let path = "/api/v1/mqtt/publish";
    let wrong = [("Authorization", "Bearer s3cre")];
    for headers in [&[][..], &wrong[..]] {
        let refused = post_json(api, path, headers, &publish("forged"));
        assert_eq!(refused.status, 401, "{}", refused.body);
    }
    let sent = post_json(api, path, &auth, &publish("genuine"));
    assert_eq!((sent.status, sent.body.as_str()), (200, "ok"));

    // One subscriber sees one topic's messages in publish order: had a refused request
    // published, "forged" would come before "genuine".
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|p| p == "genuine") {
        let left = deadline.saturating_duration_since(Instant::now());
        seen.push(rx.recv_timeout(left).expect("the genuine publish arrives"));
    }
    // A late delivery of anything else would show up within this second.
    std::thread::sleep(Duration::from_secs(1));
    seen.extend(rx.try_iter());
    seen.retain(|p| !p.starts_with("probe-"));
    assert_eq!(seen, ["genuine"]);
}
