#!/usr/bin/env bash
# A local 3-node rmqttd cluster in one command, every node forwarding to the same
# Kafka: a tansu process started here. Working directories, logs and ports live under
# target/cluster/. Ctrl-C stops everything.
#   scripts/cluster.sh              Raft clustering (rmqtt-cluster-raft)
#   scripts/cluster.sh broadcast    broadcast clustering (rmqtt-cluster-broadcast)
# Node i serves MQTT on 1883+i, its /metrics on 9464+i, node-to-node gRPC on 5363+i,
# Raft on 6003+i; tansu listens on 9092.
set -euo pipefail
cd "$(dirname "$0")/.."

kind="${1:-raft}"
case "$kind" in
    raft | broadcast) plugin="rmqtt-cluster-$kind" ;;
    *) echo "usage: scripts/cluster.sh [raft|broadcast]" >&2; exit 2 ;;
esac
scripts/setup.sh >&2
tansu_bin="$(scripts/tansu-path.sh)"
cargo build --release --locked -p rmqttd
root="$PWD/target/cluster"
rm -rf "$root"
mkdir -p "$root"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$tansu_bin" broker --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
    --storage-engine memory://tansu/ >"$root/tansu.log" 2>&1 &
pids+=($!)
sleep 1
"$tansu_bin" topic create clustered --broker tcp://127.0.0.1:9092 --partitions 3 >/dev/null

list() { local out=() i; for i in 1 2 3; do out+=("\"$i@127.0.0.1:$(($1 + i))\""); done; (IFS=,; echo "[${out[*]}]"); }
for i in 1 2 3; do
    dir="$root/node$i"
    mkdir -p "$dir/plugins"
    cat >"$dir/rmqtt.toml" <<TOML
node.id = $i
log.to = "console"
log.level = "info"
rpc.server_addr = "127.0.0.1:$((5363 + i))"
plugins.dir = "plugins/"
plugins.default_startups = ["rmqtt-acl", "$plugin", "rmqtt-bridge-egress-kafka"]
listener.tcp.external.addr = "127.0.0.1:$((1883 + i))"
listener.tcp.external.allow_anonymous = true
TOML
    cp plugins/rmqtt-acl.toml "$dir/plugins/"
    {
        echo "node_grpc_addrs = $(list 5363)"
        echo 'node_grpc_client_timeout = "5s"'
        if [ "$kind" = raft ]; then
            echo "raft_peer_addrs = $(list 6003)"
            echo "laddr = \"127.0.0.1:$((6003 + i))\""
            echo "leader_id = 1"
        fi
    } >"$dir/plugins/$plugin.toml"
    cat >"$dir/plugins/rmqtt-bridge-egress-kafka.toml" <<TOML
http_laddr = "127.0.0.1:$((9464 + i))"
[[bridges]]
name = "cluster"
servers = "127.0.0.1:9092"
[[bridges.entries]]
local.topic_filter = "#"
remote.topic = "clustered"
remote.key = "\${clientid}"
TOML
    (cd "$dir" && exec "$OLDPWD/target/release/rmqttd" -f rmqtt.toml >"$dir/log" 2>&1) &
    pids+=($!)
    # Node 1 bootstraps the cluster; the others join it.
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$((1883 + i))") 2>/dev/null && break
        sleep 0.1
    done
done

cat <<TEXT

=== a $kind cluster of 3 rmqttd nodes, each forwarding its own clients' publishes to
    Kafka topic "clustered" on tansu (127.0.0.1:9092); files in target/cluster/ ===
TEXT
for i in 1 2 3; do
    echo "  node $i: MQTT 127.0.0.1:$((1883 + i))   metrics http://127.0.0.1:$((9464 + i))/metrics   log target/cluster/node$i/log"
done
cat <<TEXT

Try: mosquitto_sub -h 127.0.0.1 -p 1886 -t 'demo/#' -v &
     mosquitto_pub -h 127.0.0.1 -p 1884 -q 1 -t demo/hello -m from-node-1
Stop with Ctrl-C.
TEXT
wait
