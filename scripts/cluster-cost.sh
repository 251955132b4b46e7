#!/usr/bin/env bash
# What a cluster node spends per message: one rmqttd against two in a Raft cluster, on
# this one machine, with tansu as Kafka. `bridge-bench load` runs 4 publishers (QoS 1,
# 256 B) at full speed for D seconds: all on the single node, or 2 per node. Prints, per
# node, the records it delivered to Kafka, its CPU µs per record, and the total rate.
#   scripts/cluster-cost.sh [D]      (seconds, default 10)
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-10}"
scripts/setup.sh >&2
tansu_bin="$(scripts/tansu-path.sh)"
cargo build --release --locked --quiet -p rmqttd -p bridge-bench
root="$(mktemp -d)"
pids=()
rows=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$root"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Starts `nodes` rmqttd nodes (a Raft cluster when more than one); sets node_pids, node_ports.
start_nodes() {
    local nodes=$1 kafka=$2 i grpc=() raft=()
    node_pids=() node_ports=()
    for i in $(seq 1 "$nodes"); do grpc+=("$(free_port)"); raft+=("$(free_port)"); done
    for i in $(seq 1 "$nodes"); do
        local dir="$root/$nodes-node$i" port
        port="$(free_port)"
        mkdir -p "$dir/plugins"
        local startups='"rmqtt-bridge-egress-kafka"'
        [ "$nodes" -gt 1 ] && startups='"rmqtt-cluster-raft", "rmqtt-bridge-egress-kafka"'
        printf 'node.id = %s\nlog.to = "console"\nlog.level = "info"\nrpc.server_addr = "127.0.0.1:%s"\nplugins.dir = "plugins/"\nplugins.default_startups = [%s]\nlistener.tcp.external.addr = "127.0.0.1:%s"\nlistener.tcp.external.allow_anonymous = true\nlistener.tcp.external.max_inflight = 64\n' \
            "$i" "${grpc[$((i - 1))]}" "$startups" "$port" >"$dir/rmqtt.toml"
        local g="" r="" j
        for j in $(seq 1 "$nodes"); do g+="\"$j@127.0.0.1:${grpc[$((j - 1))]}\","; r+="\"$j@127.0.0.1:${raft[$((j - 1))]}\","; done
        printf 'node_grpc_addrs = [%s]\nraft_peer_addrs = [%s]\nladdr = "127.0.0.1:%s"\nleader_id = 1\n' "${g%,}" "${r%,}" "${raft[$((i - 1))]}" >"$dir/plugins/rmqtt-cluster-raft.toml"
        printf '[[bridges]]\nname = "cost"\nservers = "127.0.0.1:%s"\n[[bridges.entries]]\nlocal.topic_filter = "bench/#"\nremote.topic = "cost"\n' "$kafka" >"$dir/plugins/rmqtt-bridge-egress-kafka.toml"
        (cd "$dir" && exec "$OLDPWD/target/release/rmqttd" -f rmqtt.toml >"$dir/log" 2>&1) &
        pids+=($!) node_pids+=($!) node_ports+=("$port")
        for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    done
}

printf '| nodes | node | records delivered | CPU µs/record | total records/s |\n|---|---|---|---|---|\n'
for nodes in 1 2; do
    kafka="$(free_port)"
    "$tansu_bin" broker --listener-url "tcp://127.0.0.1:$kafka" --advertised-listener-url "tcp://127.0.0.1:$kafka" \
        --storage-engine memory://tansu/ >"$root/tansu-$nodes.log" 2>&1 &
    tansu=$!
    pids+=("$tansu")
    sleep 1
    "$tansu_bin" topic create cost --broker "tcp://127.0.0.1:$kafka" --partitions 4 >/dev/null
    start_nodes "$nodes" "$kafka"
    before=()
    for p in "${node_pids[@]}"; do before+=("$(cpu_ticks "$p")"); done
    start=$(date +%s.%N)
    addrs=()
    for port in "${node_ports[@]}"; do addrs+=(--addr "127.0.0.1:$port"); done
    target/release/bridge-bench load "${addrs[@]}" --publishers $((4 / nodes)) \
        --duration "${secs}s" >"$root/load-$nodes.out"
    # Stopping flushes: every record is settled once a node has exited.
    ticks=()
    for i in "${!node_pids[@]}"; do
        ticks+=($(($(cpu_ticks "${node_pids[$i]}") - before[i])))
        kill -TERM "${node_pids[$i]}"
    done
    for p in "${node_pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
    wall=$(echo "$(date +%s.%N) - $start" | bc)
    total=0
    for i in "${!node_pids[@]}"; do
        msgs=$(grep -ho 'delivered [0-9]*' "$root/$nodes-node$((i + 1))/log" | awk '{s += $2} END {print s + 0}')
        us=$(awk -v t="${ticks[$i]}" -v m="$msgs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", m ? t / hz * 1e6 / m : 0}')
        total=$((total + msgs))
        rows+=("$nodes|$((i + 1))|$msgs|$us")
    done
    for r in "${rows[@]}"; do
        IFS='|' read -r a b c d <<<"$r"
        printf '| %s | %s | %s | %s | %.0f |\n' "$a" "$b" "$c" "$d" "$(echo "$total / $wall" | bc -l)"
    done
    rows=()
    kill "$tansu"
done
