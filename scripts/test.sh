#!/usr/bin/env bash
# Runs the whole test suite from a fresh machine: installs what it needs (idempotent),
# then checks formatting and lints and runs every test. A missing dependency fails.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
TANSU_BIN="$(scripts/tansu-path.sh)"
export TANSU_BIN

step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all --check
(cd examples && cargo fmt --all --check)

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The SDK's `json` feature: no workspace member turns it on.
cargo clippy -p rmqtt-kafka-transform --all-targets --features json --locked -- -D warnings
(cd examples && cargo clippy --all-targets --locked -- -D warnings)

step "example modules: native unit tests, then wasm32 builds"
(cd examples && cargo test --locked)
(cd examples && cargo build --release --locked --target wasm32-unknown-unknown)
(cd examples && cargo build --release --locked --target wasm32-wasip1)

step "tests"
cargo test --workspace --locked
cargo test -p rmqtt-kafka-transform --features json --locked

step "all tests passed"
