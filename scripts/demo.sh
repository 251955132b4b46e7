#!/usr/bin/env bash
# Runs the broker with the bridge on an embedded Kafka (librdkafka's mock cluster) and
# prints every record that lands in it. Installs what it needs first (idempotent).
# Extra arguments go to rmqttd.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
scripts/setup.sh wasm
# The example transforms the shipped plugin configuration uses.
(cd examples && cargo build --release --locked --target wasm32-unknown-unknown)
cargo build --release --locked -p rmqttd
exec target/release/rmqttd -f rmqtt.toml --demo "$@"
