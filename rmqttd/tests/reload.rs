//! The three reload triggers on the `rmqttd` process, under a steady keyed load, with
//! tansu as Kafka: SIGHUP, rmqtt's HTTP API (`PUT …/config/reload`) and the plugin's own
//! `POST /reload` each move `remote.topic` between two publishes, so every message is in
//! Kafka exactly once, the four topics taking turns. Refused reloads, through SIGHUP and
//! `POST /reload`, leave the process and its configuration running.

use std::net::SocketAddr;
use std::time::Duration;

use bridge_testkit::http::request;
use bridge_testkit::load::{exactly_once_in_turn, seqs, KeyedLoad, Seqs};
use bridge_testkit::procs::{free_port, signal, start_tansu};
use bridge_testkit::read_topic;
use bridge_testkit::rmqttd::{plugin_request, settled_status, status_when, Site};

const RMQTTD: &str = env!("CARGO_BIN_EXE_rmqttd");
const TOKEN: &str = "reload-token";
/// Messages per publisher between two reloads (about 0.8 s of load).
const STRETCH: u64 = 800;

fn plugin_config(own_port: u16, bootstrap: &str, topic: &str) -> String {
    format!(
        r#"http_laddr = "127.0.0.1:{own_port}"
http_bearer_token = "{TOKEN}"
[[bridges]]
name = "b1"
servers = "{bootstrap}"
concurrent_client_limit = 2
[[bridges.entries]]
local.topic_filter = "load/+"
remote.topic = "{topic}"
remote.key = "${{clientid}}"
"#
    )
}

/// Waits until the running entry forwards to `topic`.
fn wait_for_topic(own_port: u16, topic: &str) {
    status_when(own_port, TOKEN, &format!("no switch to {topic}"), |doc| {
        doc["bridges"][0]["entries"][0]["remote_topic"] == topic
    });
}

fn read_all(bootstrap: &str, topic: &str) -> Seqs {
    let recs = read_topic(
        bootstrap,
        topic,
        usize::MAX,
        Duration::from_secs(5),
        Duration::ZERO,
    );
    seqs(&recs)
}

#[test]
fn sighup_the_http_api_and_post_reload_each_switch_cleanly_under_load() {
    let tansu = start_tansu();
    let topics = ["t1", "t2", "t3", "t4"];
    for t in topics {
        tansu.create_topic(t, 4);
    }
    let (api_port, own_port) = (free_port(), free_port());
    let config = |topic| plugin_config(own_port, &tansu.bootstrap, topic);
    let site = Site::with(RMQTTD, &config("t1"), ", \"rmqtt-http-api\"", "");
    let api = format!("http_laddr = \"127.0.0.1:{api_port}\"\n");
    site.write("plugins/rmqtt-http-api.toml", &api);
    let mut rmqttd = site.start();
    let plugin_file = "plugins/rmqtt-bridge-egress-kafka.toml";
    let pid = rmqttd.0.id();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], site.port));

    let sent = runtime.block_on(async {
        let load = KeyedLoad::start(addr);
        load.run_for(STRETCH).await;
        site.write(plugin_file, &config("t2"));
        signal(pid, "HUP");
        wait_for_topic(own_port, "t2");

        load.run_for(STRETCH).await;
        site.write(plugin_file, &config("t3"));
        let put = request(
            api_port,
            "PUT",
            "/api/v1/plugins/1/rmqtt-bridge-egress-kafka/config/reload",
        );
        assert_eq!((put.status, put.body.as_str()), (200, "true"));

        load.run_for(STRETCH).await;
        site.write(plugin_file, &config("t4"));
        let post = plugin_request(own_port, TOKEN, "POST", "/reload");
        assert_eq!(post.status, 200, "{}", post.body);
        let answer: serde_json::Value = serde_json::from_str(&post.body).unwrap();
        assert_eq!(
            answer["changes"]["entries_changed"][0], "b1/0:load/+",
            "{answer}"
        );

        site.write(
            plugin_file,
            &config("t5").replace("remote.topic", "remote.topik"),
        );
        let refused = plugin_request(own_port, TOKEN, "POST", "/reload");
        assert_eq!(refused.status, 422, "{}", refused.body);
        assert!(
            refused.body.contains("field `remote.topik`"),
            "{}",
            refused.body
        );
        signal(pid, "HUP");
        load.finish_after(STRETCH).await
    });

    assert!(rmqttd.0.try_wait().unwrap().is_none(), "rmqttd still runs");
    wait_for_topic(own_port, "t4");
    // Every message the broker acknowledged was forwarded and delivered, by the
    // plugin's own count; what Kafka holds is checked below.
    let doc = settled_status(own_port, TOKEN);
    let stats = &doc["bridges"][0]["entries"][0]["stats"];
    let total: u64 = sent.iter().sum();
    assert_eq!(
        (
            stats["matched"].as_u64(),
            stats["outcomes"]["delivered"].as_u64()
        ),
        (Some(total), Some(total)),
        "sent {sent:?}; {stats}"
    );
    let parts: Vec<Seqs> = topics
        .iter()
        .map(|t| read_all(&tansu.bootstrap, t))
        .collect();
    let parts: Vec<&Seqs> = parts.iter().collect();
    exactly_once_in_turn(&sent, &parts);
}
