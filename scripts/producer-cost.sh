#!/usr/bin/env bash
# What a bridge's producers cost: threads, resident memory and sockets of an idle
# rmqttd whose one bridge has N entries, in each producer_pool mode, against one tansu.
#   scripts/producer-cost.sh            N = 1, 10, 100
#   scripts/producer-cost.sh 1 50       other entry counts
# Each rmqttd gets 5 s to start and connect (producers connect at start) before it is
# measured from /proc.
set -euo pipefail
cd "$(dirname "$0")/.."

counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 10 100)
scripts/setup.sh >&2
tansu_bin="$(scripts/tansu-path.sh)"
echo "producer-cost: building rmqttd (release)" >&2
cargo build --release --locked --quiet -p rmqttd

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

kafka_port="$(free_port)"
"$tansu_bin" broker --listener-url "tcp://127.0.0.1:$kafka_port" \
    --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
    --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
pids+=($!)
sleep 2

printf '| producer_pool | entries | producers | threads | RSS MiB | sockets |\n|---|---|---|---|---|---|\n'
for pool in entry bridge; do
    for n in "${counts[@]}"; do
        site="$work/$pool-$n"
        mkdir -p "$site/plugins"
        mqtt_port="$(free_port)"
        printf 'node.id = 1\nlog.to = "console"\nlog.level = "warn"\nplugins.dir = "plugins/"\nplugins.default_startups = ["rmqtt-bridge-egress-kafka"]\nlistener.tcp.external.addr = "127.0.0.1:%s"\nlistener.tcp.external.allow_anonymous = true\n' \
            "$mqtt_port" >"$site/rmqtt.toml"
        {
            printf '[[bridges]]\nname = "b1"\nservers = "127.0.0.1:%s"\nconcurrent_client_limit = 3\nproducer_pool = "%s"\n' "$kafka_port" "$pool"
            for i in $(seq 1 "$n"); do
                printf '[[bridges.entries]]\nlocal.topic_filter = "site%s/#"\nremote.topic = "cost"\n' "$i"
            done
        } >"$site/plugins/rmqtt-bridge-egress-kafka.toml"
        (cd "$site" && exec "$OLDPWD/target/release/rmqttd" -f rmqtt.toml >"$site/log" 2>&1) &
        pid=$!
        pids+=("$pid")
        sleep 5
        kill -0 "$pid" || { cat "$site/log" >&2; exit 1; }
        threads=$(ls "/proc/$pid/task" | wc -l)
        rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
        sockets=$(find "/proc/$pid/fd" -lname 'socket:*' 2>/dev/null | wc -l)
        producers=3
        [ "$pool" = entry ] && producers=$((n * 3))
        printf '| %s | %s | %s | %s | %s | %s |\n' "$pool" "$n" "$producers" "$threads" $((rss_kb / 1024)) "$sockets"
        kill "$pid"
        wait "$pid" 2>/dev/null || true
    done
done
