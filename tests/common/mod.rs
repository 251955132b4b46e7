//! Real parts for the integration tests: an in-process RMQTT broker with the plugin on an
//! ephemeral port, librdkafka's mock cluster on a thread of its own, a Kafka reader, and
//! rumqttc clients.
#![allow(dead_code)]

pub mod procs;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};
use rmqtt::context::ServerContext;
use rmqtt::net::Builder;
use rmqtt::node::Node;
use rmqtt::server::MqttServer;
use rmqtt_bridge_egress_kafka::PLUGIN_NAME;
use serde_json::Value;

pub const ACL_PLUGIN: &str = "rmqtt-acl";

/// An in-process broker with the bridge (and optionally rmqtt-acl) started.
pub struct Broker {
    pub scx: ServerContext,
    pub addr: SocketAddr,
}

impl Broker {
    pub async fn start(plugin_toml: &str) -> Broker {
        Broker::try_start(plugin_toml, None).await.unwrap()
    }

    pub async fn start_with_acl(plugin_toml: &str, acl_toml: &str) -> Broker {
        Broker::try_start(plugin_toml, Some(acl_toml))
            .await
            .unwrap()
    }

    pub async fn try_start(plugin_toml: &str, acl_toml: Option<&str>) -> anyhow::Result<Broker> {
        let mut builder = ServerContext::new()
            .node(Node::new(1, 100.0, 100.0, Duration::from_secs(5)))
            .plugins_config_map_add(PLUGIN_NAME, plugin_toml);
        if let Some(acl) = acl_toml {
            builder = builder.plugins_config_map_add(ACL_PLUGIN, acl);
        }
        let scx = builder.build().await;
        if acl_toml.is_some() {
            rmqtt_acl::register_named(&scx, ACL_PLUGIN, true, false).await?;
        }
        rmqtt_bridge_egress_kafka::register_named(&scx, PLUGIN_NAME, true, false).await?;
        let listener = Builder::new()
            .name("test/tcp")
            .laddr(([127, 0, 0, 1], 0).into())
            .allow_anonymous(true)
            .max_inflight(std::num::NonZeroU16::new(64).unwrap())
            .bind()?
            .tcp()?;
        let addr = listener.local_addr()?;
        MqttServer::new(scx.clone())
            .listener(listener)
            .build()
            .start();
        Ok(Broker { scx, addr })
    }

    /// The plugin's `attrs()`.
    pub async fn attrs(&self) -> Value {
        let entry = self
            .scx
            .plugins
            .get(PLUGIN_NAME)
            .expect("plugin registered");
        let info = entry.to_info(PLUGIN_NAME).await.unwrap();
        info.to_json().unwrap()["attrs"].clone()
    }

    /// Stats of `bridges[b].entries[e]`.
    pub async fn entry_stats(&self, b: usize, e: usize) -> Value {
        self.attrs().await["bridges"][b]["entries"][e]["stats"].clone()
    }

    /// Waits until an entry has no record in flight, then returns its stats.
    pub async fn settled_stats(&self, b: usize, e: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.entry_stats(b, e).await;
            if s["in_flight"] == 0 || Instant::now() > deadline {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop_plugin(&self) {
        self.scx.plugins.stop(PLUGIN_NAME).await.unwrap();
    }
}

/// Sum of an entry's outcome counters.
pub fn outcome_total(stats: &Value) -> u64 {
    stats["outcomes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

enum Cmd {
    CreateTopic(String, i32),
    BrokerDown(i32),
    BrokerUp(i32),
    RequestErrors(RDKafkaApiKey, Vec<RDKafkaRespErr>),
    TopicError(String, RDKafkaRespErr),
    PartitionLeader(String, i32, i32),
    Rtt(i32, Duration),
}

/// librdkafka's mock cluster. It is not `Send`, so it lives on a thread of its own and
/// takes commands over a channel.
pub struct MockKafka {
    pub bootstrap: String,
    tx: mpsc::Sender<(Cmd, mpsc::Sender<()>)>,
}

impl MockKafka {
    pub fn start(brokers: i32) -> MockKafka {
        let (boot_tx, boot_rx) = mpsc::channel();
        let (tx, rx) = mpsc::channel::<(Cmd, mpsc::Sender<()>)>();
        std::thread::spawn(move || {
            let cluster = MockCluster::new(brokers).expect("mock cluster");
            boot_tx.send(cluster.bootstrap_servers()).unwrap();
            for (cmd, done) in rx {
                match cmd {
                    Cmd::CreateTopic(t, p) => cluster.create_topic(&t, p, 1).unwrap(),
                    Cmd::BrokerDown(b) => cluster.broker_down(b).unwrap(),
                    Cmd::BrokerUp(b) => cluster.broker_up(b).unwrap(),
                    Cmd::RequestErrors(k, e) => cluster.request_errors(k, &e),
                    Cmd::TopicError(t, e) => cluster.topic_error(&t, e).unwrap(),
                    Cmd::PartitionLeader(t, p, b) => {
                        cluster.partition_leader(&t, p, Some(b)).unwrap()
                    }
                    Cmd::Rtt(b, d) => cluster.broker_round_trip_time(b, d).unwrap(),
                }
                let _ = done.send(());
            }
        });
        MockKafka {
            bootstrap: boot_rx.recv().unwrap(),
            tx,
        }
    }

    fn run(&self, cmd: Cmd) {
        let (done_tx, done_rx) = mpsc::channel();
        self.tx.send((cmd, done_tx)).unwrap();
        done_rx.recv().unwrap();
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) {
        self.run(Cmd::CreateTopic(topic.into(), partitions));
    }
    pub fn broker_down(&self, id: i32) {
        self.run(Cmd::BrokerDown(id));
    }
    pub fn broker_up(&self, id: i32) {
        self.run(Cmd::BrokerUp(id));
    }
    pub fn request_errors(&self, api: RDKafkaApiKey, errors: &[RDKafkaRespErr]) {
        self.run(Cmd::RequestErrors(api, errors.to_vec()));
    }
    pub fn topic_error(&self, topic: &str, error: RDKafkaRespErr) {
        self.run(Cmd::TopicError(topic.into(), error));
    }
    pub fn partition_leader(&self, topic: &str, partition: i32, broker: i32) {
        self.run(Cmd::PartitionLeader(topic.into(), partition, broker));
    }
    pub fn round_trip_time(&self, broker: i32, d: Duration) {
        self.run(Cmd::Rtt(broker, d));
    }
}

/// A record read back from Kafka.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    /// The first header with this name, as text (`None` if absent or null).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_ref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(k, _)| k == name)
    }

    pub fn payload_str(&self) -> String {
        String::from_utf8_lossy(self.payload.as_deref().unwrap_or_default()).into_owned()
    }

    pub fn key_str(&self) -> Option<String> {
        self.key
            .as_ref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
    }
}

/// Reads every record of `topic` from the beginning, until `want` arrived (then for
/// `quiet` more, to catch extras) or `timeout` passed. Assigns partitions directly:
/// no consumer group is involved.
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    want: usize,
    timeout: Duration,
    quiet: Duration,
) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let partitions = loop {
        let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
        if let Ok(meta) = meta {
            let n = meta.topics().first().map_or(0, |t| {
                if t.error().is_none() {
                    t.partitions().len()
                } else {
                    0
                }
            });
            if n > 0 {
                break n;
            }
        }
        if Instant::now() > deadline {
            return Vec::new();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut stop_at = deadline;
    while Instant::now() < stop_at {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(Record {
                topic: m.topic().to_owned(),
                partition: m.partition(),
                offset: m.offset(),
                timestamp: m.timestamp().to_millis(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().map(<[u8]>::to_vec),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
            if out.len() == want {
                stop_at = Instant::now() + quiet;
            }
        }
    }
    out
}

/// [`read_topic`] off the async threads.
pub async fn read(bootstrap: &str, topic: &str, want: usize) -> Vec<Record> {
    let (b, t) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        read_topic(
            &b,
            &t,
            want,
            Duration::from_secs(20),
            Duration::from_millis(300),
        )
    })
    .await
    .unwrap()
}

/// Checks that nothing arrives in `topic` for a while.
pub async fn read_none(bootstrap: &str, topic: &str) -> Vec<Record> {
    let (b, t) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        read_topic(&b, &t, usize::MAX, Duration::from_secs(2), Duration::ZERO)
    })
    .await
    .unwrap()
}

/// An MQTT 3.1.1 client (rumqttc) whose event loop runs in the background and reports
/// acknowledgements.
pub struct V3Client {
    pub client: rumqttc::AsyncClient,
    acks: tokio::sync::mpsc::UnboundedReceiver<u16>,
    pub disconnects: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl V3Client {
    pub async fn connect(addr: SocketAddr, id: &str) -> V3Client {
        V3Client::connect_with(addr, id, None, true).await
    }

    pub async fn connect_with(
        addr: SocketAddr,
        id: &str,
        user: Option<(&str, &str)>,
        clean: bool,
    ) -> V3Client {
        let mut opts = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        opts.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(clean);
        if let Some((u, p)) = user {
            opts.set_credentials(u, p);
        }
        let (client, mut el) = rumqttc::AsyncClient::new(opts, 1000);
        let (tx, acks) = tokio::sync::mpsc::unbounded_channel();
        let (conn_tx, conn_rx) = tokio::sync::oneshot::channel();
        let disconnects = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let d = disconnects.clone();
        tokio::spawn(async move {
            let mut conn_tx = Some(conn_tx);
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        if let Some(t) = conn_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(a))) => {
                        let _ = tx.send(a.pkid);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubRec(a))) => {
                        let _ = tx.send(a.pkid);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        d.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), conn_rx)
            .await
            .expect("connack")
            .unwrap();
        V3Client {
            client,
            acks,
            disconnects,
        }
    }

    pub async fn publish(&self, topic: &str, qos: u8, payload: impl Into<Vec<u8>>) {
        let qos = rumqttc::qos(qos).unwrap();
        self.client
            .publish(topic, qos, false, payload.into())
            .await
            .unwrap();
    }

    /// Waits for the next PUBACK/PUBREC (its packet id), if one comes within `timeout`.
    pub async fn next_ack(&mut self, timeout: Duration) -> Option<u16> {
        tokio::time::timeout(timeout, self.acks.recv())
            .await
            .ok()
            .flatten()
    }
}

/// An MQTT v5 client (rumqttc::v5) that reports acknowledgement reason codes.
pub struct V5Client {
    pub client: rumqttc::v5::AsyncClient,
    acks: tokio::sync::mpsc::UnboundedReceiver<(u16, u8)>,
}

impl V5Client {
    pub async fn connect(addr: SocketAddr, id: &str) -> V5Client {
        let mut opts = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = rumqttc::v5::AsyncClient::new(opts, 1000);
        let (tx, acks) = tokio::sync::mpsc::unbounded_channel();
        let (conn_tx, conn_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            use rumqttc::v5::mqttbytes::v5::Packet;
            use rumqttc::v5::Event;
            let mut conn_tx = Some(conn_tx);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(t) = conn_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(a))) => {
                        let _ = tx.send((a.pkid, puback_code(a.reason)));
                    }
                    Ok(_) => {}
                    // rumqttc reports a PUBACK with a failure reason as an error.
                    Err(rumqttc::v5::ConnectionError::MqttState(
                        rumqttc::v5::StateError::PubAckFail { reason },
                    )) => {
                        let _ = tx.send((0, puback_code(reason)));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), conn_rx)
            .await
            .expect("connack")
            .unwrap();
        V5Client { client, acks }
    }

    /// Waits for the next PUBACK: `(packet id, reason code)`.
    pub async fn next_ack(&mut self, timeout: Duration) -> Option<(u16, u8)> {
        tokio::time::timeout(timeout, self.acks.recv())
            .await
            .ok()
            .flatten()
    }
}

/// The MQTT v5 reason code of a PUBACK reason.
fn puback_code(reason: rumqttc::v5::mqttbytes::v5::PubAckReason) -> u8 {
    use rumqttc::v5::mqttbytes::v5::PubAckReason as R;
    match reason {
        R::Success => 0x00,
        R::NoMatchingSubscribers => 0x10,
        R::UnspecifiedError => 0x80,
        R::ImplementationSpecificError => 0x83,
        R::NotAuthorized => 0x87,
        R::TopicNameInvalid => 0x90,
        R::PacketIdentifierInUse => 0x91,
        R::QuotaExceeded => 0x97,
        R::PayloadFormatInvalid => 0x99,
    }
}

/// A plugin config with one bridge at `bootstrap` and the given entries (TOML tables).
pub fn bridge_config(bootstrap: &str, extra_bridge_keys: &str, entries: &str) -> String {
    format!(
        "[[bridges]]\nname = \"b1\"\nservers = \"{bootstrap}\"\nclient_id_prefix = \"test\"\n{extra_bridge_keys}\n[bridges.properties]\n\"message.timeout.ms\" = \"30000\"\n\"linger.ms\" = \"1\"\n{entries}"
    )
}

/// Where cargo puts this package's binaries.
pub fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rmqttd"))
        .parent()
        .unwrap()
        .to_owned()
}

/// An example module, built from source for wasm32-unknown-unknown (once per process).
pub fn example_module(name: &str) -> PathBuf {
    example_module_for(name, "wasm32-unknown-unknown")
}

/// An example module built for `target` (`wasm32-unknown-unknown` or `wasm32-wasip1`).
pub fn example_module_for(name: &str, target: &'static str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<HashMap<&'static str, Result<PathBuf, String>>>> =
        OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    let dir = built.entry(target).or_insert_with(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let out = std::process::Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", target])
            .current_dir(&root)
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "building the example modules for {target} failed (is the target installed? run scripts/setup.sh wasm):\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(root.join("target").join(target).join("release"))
    });
    match dir {
        Ok(d) => d.join(format!("{}.wasm", name.replace('-', "_"))),
        Err(e) => panic!("{e}"),
    }
}

/// Headers of a record as a map (first value of each name).
pub fn header_map(r: &Record) -> HashMap<String, Option<String>> {
    let mut m = HashMap::new();
    for (k, v) in &r.headers {
        m.entry(k.clone())
            .or_insert_with(|| v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()));
    }
    m
}
