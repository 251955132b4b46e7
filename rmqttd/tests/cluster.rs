//! `rmqttd` nodes in an RMQTT cluster, as processes, forwarding to one tansu: each
//! node forwards its own clients' publishes, so every message is in Kafka exactly once,
//! with the `from_node` of the node its client was on and that node's id in the Kafka
//! client ids; a subscriber on another node receives it too, which proves the cluster
//! formed. Broadcast (2 nodes) and Raft (3 nodes) clustering.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bridge_testkit::http::request;
use bridge_testkit::procs::{free_port, lines_of, require, signal, start_tansu, Proc, Tansu};
use bridge_testkit::rmqttd::{read_back, Site};
use bridge_testkit::V3Client;

const RMQTTD: &str = env!("CARGO_BIN_EXE_rmqttd");
const BROADCAST: &str = "rmqtt-cluster-broadcast";
const RAFT: &str = "rmqtt-cluster-raft";
/// Messages each node's publisher sends.
const PER_NODE: usize = 100;

/// Nodes 1..=n of a cluster of `kind`, each with its own working directory and ports.
struct Cluster {
    sites: Vec<Site>,
    /// Each node's plugin endpoint (`http_laddr`) port.
    http: Vec<u16>,
    nodes: Vec<Proc>,
}

/// `["1@127.0.0.1:p1", "2@127.0.0.1:p2", …]`.
fn addrs(ports: &[u16]) -> String {
    let list: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("\"{}@127.0.0.1:{p}\"", i + 1))
        .collect();
    format!("[{}]", list.join(", "))
}

/// One bridge, one entry (`t/#`, keyed by topic) plus `entry_extra`.
fn bridge_config(tansu: &Tansu, http: u16, entry_extra: &str) -> String {
    format!(
        "http_laddr = \"127.0.0.1:{http}\"\n[[bridges]]\nname = \"b1\"\nservers = \"{}\"\nclient_id_prefix = \"c\"\n[[bridges.entries]]\nlocal.topic_filter = \"t/#\"\nremote.topic = \"clustered\"\nremote.key = \"${{local.topic}}\"\n{entry_extra}",
        tansu.bootstrap
    )
}

impl Cluster {
    fn start(kind: &str, n: usize, tansu: &Tansu) -> Cluster {
        Cluster::start_with(kind, n, tansu, "")
    }

    fn start_with(kind: &str, n: usize, tansu: &Tansu, entry_extra: &str) -> Cluster {
        let grpc: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let raft: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let http: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut sites = Vec::new();
        for i in 0..n {
            let rpc = format!("rpc.server_addr = \"127.0.0.1:{}\"\n", grpc[i]);
            let bridge = bridge_config(tansu, http[i], entry_extra);
            let startup = format!(", \"{kind}\"");
            let site = Site::node(RMQTTD, i as u64 + 1, &bridge, &startup, &rpc);
            // A client moving from a dead node waits this long for the old session.
            let mut plugin = format!(
                "node_grpc_addrs = {}\nnode_grpc_client_timeout = \"3s\"\n",
                addrs(&grpc)
            );
            if kind == RAFT {
                let laddr = format!("laddr = \"127.0.0.1:{}\"\n", raft[i]);
                // Started together, nodes must agree on who bootstraps the cluster.
                plugin += &format!("raft_peer_addrs = {}\n{laddr}leader_id = 1\n", addrs(&raft));
            }
            site.write(&format!("plugins/{kind}.toml"), &plugin);
            sites.push(site);
        }
        // One after the other: node 1 bootstraps (Raft: `leader_id = 1`), the others
        // join it.
        let nodes = sites.iter().map(Site::start).collect();
        Cluster { sites, http, nodes }
    }

    /// SIGKILL to node `i`.
    fn kill(&self, i: usize) {
        signal(self.nodes[i].0.id(), "KILL");
    }

    fn addr(&self, node: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sites[node].port))
    }
}

/// `mosquitto_sub -t 't/#'` on a node, its lines read as they come.
struct Subscriber {
    _proc: Proc,
    lines: mpsc::Receiver<String>,
}

impl Subscriber {
    fn start(port: u16) -> Subscriber {
        let mut child = Command::new(require("mosquitto_sub"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-q",
                "1",
                "-t",
                "t/#",
                "-v",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stdout.take().unwrap());
        Subscriber {
            _proc: Proc(child),
            lines,
        }
    }

    /// Publishes probes on `node` until one crosses the cluster to this subscriber:
    /// then routes and subscriptions have spread (Raft replicates them).
    fn wait_for_cluster(&self, runtime: &tokio::runtime::Runtime, cluster: &Cluster) {
        let probe = runtime.block_on(V3Client::connect(cluster.addr(0), "probe"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            runtime.block_on(probe.publish("t/probe", 1, "probe"));
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(300)) {
                assert_eq!(line, "t/probe probe");
                break;
            }
            assert!(Instant::now() < deadline, "the cluster did not form");
        }
        // Probes still on their way.
        while self.lines.recv_timeout(Duration::from_millis(500)).is_ok() {}
    }

    /// The next `n` lines.
    fn take(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                self.lines
                    .recv_timeout(Duration::from_secs(30))
                    .expect("a message through the cluster")
            })
            .collect()
    }
}

/// Publishes `PER_NODE` messages, QoS 1, from client `n<i>` on node i, and waits for
/// their PUBACKs.
async fn publish_on(cluster: &Cluster, node: usize) {
    let mut c = V3Client::connect(cluster.addr(node), &format!("n{}", node + 1)).await;
    for seq in 0..PER_NODE {
        c.publish(&format!("t/n{}", node + 1), 1, seq.to_string())
            .await;
    }
    for _ in 0..PER_NODE {
        c.next_ack(Duration::from_secs(30)).await.expect("a PUBACK");
    }
}

/// Every node's messages are in Kafka exactly once, in order, stamped with the node its
/// client was on.
fn each_message_once_from_its_node(n: usize, tansu: &Tansu) {
    let recs = read_back(&tansu.bootstrap, "clustered", n * PER_NODE);
    let probe = Some("t/probe");
    let recs: Vec<_> = recs
        .iter()
        .filter(|r| r.key_str().as_deref() != probe)
        .collect();
    let total = n * PER_NODE;
    assert_eq!(
        recs.len(),
        total,
        "each message once, none doubled by crossing nodes"
    );
    let mut by_client: BTreeMap<String, Vec<(String, usize)>> = BTreeMap::new();
    for r in recs {
        let node = r.header("from_node").unwrap();
        let seq = r.payload_str().parse().unwrap();
        by_client
            .entry(r.key_str().unwrap())
            .or_default()
            .push((node, seq));
    }
    assert_eq!(by_client.len(), n, "{:?}", by_client.keys());
    for node in 1..=n {
        let got = &by_client[&format!("t/n{node}")];
        let expected: Vec<_> = (0..PER_NODE).map(|s| (node.to_string(), s)).collect();
        assert_eq!(
            *got, expected,
            "node {node}'s client: from_node {node}, once each, in order"
        );
    }
}

/// Each node's Kafka client ids carry its node id.
fn client_ids_carry_the_node_id(cluster: &Cluster) {
    for (i, &port) in cluster.http.iter().enumerate() {
        let status = request(port, "GET", "/status");
        let doc: serde_json::Value = serde_json::from_str(&status.body).unwrap();
        let ids = &doc["bridges"][0]["entries"][0]["client_ids"];
        assert_eq!(ids[0], format!("c:b1:egress:{}:0:1", i + 1), "{doc}");
    }
}

fn run(kind: &str, n: usize) {
    let tansu = start_tansu();
    tansu.create_topic("clustered", 1);
    let cluster = Cluster::start(kind, n, &tansu);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // On the last node, for the first node's publishes: they cross the cluster.
    let subscriber = Subscriber::start(cluster.sites[n - 1].port);
    subscriber.wait_for_cluster(&runtime, &cluster);
    runtime.block_on(publish_on(&cluster, 0));
    // Each once; rmqtt's Raft cluster forwards between nodes out of order, which is
    // rmqtt's business: the order that matters here is Kafka's, checked below.
    let mut lines = subscriber.take(PER_NODE);
    lines.sort_by_key(|l| l[5..].parse::<usize>().unwrap_or(usize::MAX));
    let expected: Vec<String> = (0..PER_NODE).map(|s| format!("t/n1 {s}")).collect();
    assert_eq!(lines, expected, "node 1's messages on node {n}");
    runtime.block_on(async {
        for node in 1..n {
            publish_on(&cluster, node).await;
        }
    });
    each_message_once_from_its_node(n, &tansu);
    client_ids_carry_the_node_id(&cluster);
}

#[test]
fn a_broadcast_cluster_of_two_forwards_each_message_once() {
    run(BROADCAST, 2);
}

#[test]
fn a_raft_cluster_of_three_forwards_each_message_once() {
    run(RAFT, 3);
}

/// Publishes `t/<client>` messages one at a time, QoS 1, each waiting for its PUBACK,
/// until `stop`; when its node does not answer, it moves to the next node and sends the
/// unacknowledged message again. Returns the numbers that were acknowledged, and how
/// many of them after a move.
async fn publish_one_by_one(
    cluster: &Cluster,
    client: &str,
    mut node: usize,
    stop: &std::sync::atomic::AtomicBool,
) -> (Vec<usize>, usize) {
    let mut c = V3Client::connect(cluster.addr(node), client).await;
    let mut acked = Vec::new();
    let mut moved_at = None;
    let mut seq = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        c.publish(&format!("t/{client}"), 1, seq.to_string()).await;
        if c.next_ack(Duration::from_secs(2)).await.is_some() {
            acked.push(seq);
            seq += 1;
            continue;
        }
        // No PUBACK: the node is gone. Resend on the next one, as a new session (the
        // old one went with its node).
        node = (node + 1) % cluster.sites.len();
        c = V3Client::connect(cluster.addr(node), &format!("{client}-{node}")).await;
        moved_at.get_or_insert(acked.len());
    }
    let after_move = moved_at.map_or(0, |at| acked.len() - at);
    (acked, after_move)
}

#[test]
fn a_node_killed_mid_stream_loses_no_acknowledged_message() {
    let tansu = start_tansu();
    tansu.create_topic("clustered", 1);
    let ack_mode = "remote.ack_after_delivery = true\n";
    // Raft: a dead node costs the others nothing until a client of its needs it (a
    // broadcast cluster waits for it on every connect and forward).
    let cluster = Cluster::start_with(RAFT, 3, &tansu, ack_mode);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let ((on_killed, moved), (on_survivor, _)) = runtime.block_on(async {
        let killer = async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            cluster.kill(2);
            tokio::time::sleep(Duration::from_secs(4)).await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        };
        let (a, b, ()) = tokio::join!(
            publish_one_by_one(&cluster, "n3", 2, &stop),
            publish_one_by_one(&cluster, "n2", 1, &stop),
            killer
        );
        (a, b)
    });
    let recs = read_back(
        &tansu.bootstrap,
        "clustered",
        on_killed.len() + on_survivor.len(),
    );
    let seqs = |client: &str| -> Vec<usize> {
        recs.iter()
            .filter(|r| r.key_str() == Some(format!("t/{client}")))
            .map(|r| r.payload_str().parse().unwrap())
            .collect()
    };
    assert_eq!(
        seqs("n2"),
        on_survivor,
        "the survivor's client: all, once, in order"
    );
    let killed = seqs("n3");
    let missing: Vec<_> = on_killed.iter().filter(|s| !killed.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not in Kafka: {missing:?}\nKafka has {killed:?} from n3 (offset, from_node): {:?}\nthe killed node's log:\n{}\n{}",
        recs.iter()
            .filter(|r| r.key_str().is_some_and(|k| k.starts_with("t/n3")))
            .map(|r| (r.offset, r.header("from_node")))
            .take(5)
            .collect::<Vec<_>>(),
        cluster.sites[2].stderr(),
        tansu_errors(&tansu)
    );
    assert!(
        moved > 10,
        "n3 moved to another node and went on: {moved} after the move"
    );
}

/// The lines of tansu's log at WARN or ERROR.
fn tansu_errors(tansu: &Tansu) -> String {
    let log = tansu.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    format!("tansu's warnings and errors:\n{}", lines.join("\n"))
}

#[test]
fn ack_mode_waits_for_the_publishing_nodes_kafka_acknowledgement_only() {
    let tansu = start_tansu();
    tansu.create_topic("clustered", 1);
    let ack_mode = "remote.ack_after_delivery = true\n";
    let cluster = Cluster::start_with(BROADCAST, 2, &tansu, ack_mode);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut c = runtime.block_on(V3Client::connect(cluster.addr(0), "n1"));
    tansu.pause();
    runtime.block_on(c.publish("t/n1", 1, "held"));
    let early = runtime.block_on(c.next_ack(Duration::from_millis(1500)));
    assert_eq!(
        early, None,
        "no PUBACK while node 1's Kafka has not acknowledged"
    );
    tansu.resume();
    let ack = runtime.block_on(c.next_ack(Duration::from_secs(30)));
    assert!(ack.is_some(), "the PUBACK once Kafka acknowledged");
    let recs = read_back(&tansu.bootstrap, "clustered", 1);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].header("from_node").as_deref(), Some("1"));
    // Node 2's bridge never took it.
    let status = request(cluster.http[1], "GET", "/status");
    let doc: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(
        doc["bridges"][0]["entries"][0]["stats"]["matched"], 0,
        "{doc}"
    );
}
