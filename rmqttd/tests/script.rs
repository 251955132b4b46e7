//! A JavaScript transform (`transform.script`) end to end: the `rmqttd` process with a
//! script entry, a steady keyed load, tansu as Kafka. The script keys and routes every
//! record and adds headers; the script is edited three times under load, picked up by
//! each reload trigger in turn (the plugin's `POST /reload`, SIGHUP, rmqtt's HTTP API),
//! and every message is in Kafka exactly once, each version's records before the next
//! one's.

use std::net::SocketAddr;
use std::time::Duration;

use bridge_testkit::http::request;
use bridge_testkit::load::{exactly_once_in_turn, seqs, KeyedLoad, Seqs};
use bridge_testkit::procs::{free_port, signal, start_tansu};
use bridge_testkit::rmqttd::{plugin_request, settled_status, status_when, Site};
use bridge_testkit::{header_map, read_topic};

const RMQTTD: &str = env!("CARGO_BIN_EXE_rmqttd");
const TOKEN: &str = "script-token";
/// Messages per publisher between two reloads.
const STRETCH: u64 = 800;

/// A script that routes to `js-<version>`, keys by device and names the version and the
/// sequence number in headers.
fn script(version: &str) -> String {
    format!(
        r#"const version = "{version}";
const prefix = config.prefix;
function transform(msg) {{
  const reading = msg.json();
  return {{
    topic: `${{prefix}}-${{version}}`,
    key: reading.device_id,
    headers: {{ version, seq: reading.seq, client: msg.clientId }},
  }};
}}
"#
    )
}

fn plugin_config(own_port: u16, bootstrap: &str, script: &str) -> String {
    format!(
        r#"http_laddr = "127.0.0.1:{own_port}"
http_bearer_token = "{TOKEN}"
[[bridges]]
name = "b1"
servers = "{bootstrap}"
[[bridges.entries]]
local.topic_filter = "load/+"
remote.topic = "unused"
transform.script = "{script}"
transform.config = {{ prefix = "js" }}
transform.instances = 2
"#
    )
}

fn read_all(bootstrap: &str, topic: &str) -> (Seqs, Vec<bridge_testkit::Record>) {
    let recs = read_topic(
        bootstrap,
        topic,
        usize::MAX,
        Duration::from_secs(5),
        Duration::ZERO,
    );
    (seqs(&recs), recs)
}

#[test]
fn a_script_entry_shapes_every_record_and_an_edited_script_takes_over_at_a_reload() {
    let tansu = start_tansu();
    let topics = ["js-v1", "js-v2", "js-v3", "js-v4"];
    for t in topics {
        tansu.create_topic(t, 4);
    }
    let (own_port, api_port) = (free_port(), free_port());
    let site = Site::with(RMQTTD, "", ", \"rmqtt-http-api\"", "");
    let api = format!("http_laddr = \"127.0.0.1:{api_port}\"\n");
    site.write("plugins/rmqtt-http-api.toml", &api);
    let script_path = site.path().join("route.js");
    site.write("route.js", &script("v1"));
    let config = plugin_config(own_port, &tansu.bootstrap, script_path.to_str().unwrap());
    site.write("plugins/rmqtt-bridge-egress-kafka.toml", &config);
    let mut rmqttd = site.start();
    let pid = rmqttd.0.id();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], site.port));

    let sent = runtime.block_on(async {
        let load = KeyedLoad::start(addr);
        load.run_for(STRETCH).await;
        site.write("route.js", &script("v2"));
        let post = plugin_request(own_port, TOKEN, "POST", "/reload");
        assert_eq!(post.status, 200, "{}", post.body);
        let answer: serde_json::Value = serde_json::from_str(&post.body).unwrap();
        assert_eq!(
            answer["changes"]["entries_changed"][0], "b1/0:load/+",
            "{answer}"
        );
        load.run_for(STRETCH).await;
        site.write("route.js", &script("v3"));
        signal(pid, "HUP");
        status_when(own_port, TOKEN, "no second reload", |doc| {
            doc["reloads"]["applied"] == 2
        });
        load.run_for(STRETCH).await;
        site.write("route.js", &script("v4"));
        let put = request(
            api_port,
            "PUT",
            "/api/v1/plugins/1/rmqtt-bridge-egress-kafka/config/reload",
        );
        assert_eq!((put.status, put.body.as_str()), (200, "true"));
        load.finish_after(STRETCH).await
    });

    assert!(rmqttd.0.try_wait().unwrap().is_none(), "rmqttd still runs");
    let total: u64 = sent.iter().sum();
    let doc = settled_status(own_port, TOKEN);
    let entry = &doc["bridges"][0]["entries"][0];
    let stats = &entry["stats"];
    assert_eq!(
        (
            stats["matched"].as_u64(),
            stats["outcomes"]["delivered"].as_u64()
        ),
        (Some(total), Some(total)),
        "sent {sent:?}; {stats}"
    );
    assert!(
        entry["transform"].to_string().contains("route.js"),
        "{entry}"
    );
    let read: Vec<_> = topics
        .iter()
        .map(|t| read_all(&tansu.bootstrap, t))
        .collect();
    let parts: Vec<&Seqs> = read.iter().map(|(seqs, _)| seqs).collect();
    exactly_once_in_turn(&sent, &parts);
    for ((_, records), topic) in read.iter().zip(topics) {
        let version = topic.trim_start_matches("js-");
        for r in records.iter() {
            let doc: serde_json::Value =
                serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
            let device = doc["device_id"].as_str().unwrap();
            assert_eq!(
                r.key.as_deref(),
                Some(device.as_bytes()),
                "keyed by the script"
            );
            let headers = header_map(r);
            let header = |name: &str| headers.get(name).cloned().flatten();
            assert_eq!(header("version").as_deref(), Some(version), "{r:?}");
            assert_eq!(header("seq"), Some(doc["seq"].to_string()), "{r:?}");
            assert_eq!(
                header("client").as_deref(),
                Some(device),
                "the client id is the device's"
            );
        }
    }
}
