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
# The `demo` cargo profile (Cargo.toml): release at opt-level 1, the same broker built in
# less time; `cargo build --release -p rmqttd` is the production build.
cargo build --profile demo --locked -p rmqttd
exec target/demo/rmqttd -f rmqtt.toml --demo "$@"
