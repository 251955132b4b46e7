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
(cd guest-sdk/js && cargo fmt --check)

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The SDK's `json` feature: no workspace member turns it on.
cargo clippy -p rmqtt-kafka-transform --all-targets --features json --locked -- -D warnings
(cd examples && cargo clippy --all-targets --locked -- -D warnings)
(cd guest-sdk/js && cargo clippy --all-targets --locked -- -D warnings)
# The demo builds rmqttd alone, where no other member lends its dependencies features.
cargo check -p rmqttd --bin rmqttd --locked

step "the JavaScript runtime: its contract tests, natively (build.rs builds it for wasm32)"
(cd guest-sdk/js && cargo test --locked)

step "example modules: native unit tests, then wasm32 builds"
(cd examples && cargo test --locked)
(cd examples && cargo build --release --locked --target wasm32-unknown-unknown)
(cd examples && cargo build --release --locked --target wasm32-wasip1)

step "tests"
# The integration tests in two halves by name (a glob and its complement, so that none is
# left out), about equal in time; every unit test goes with the first. Both halves are
# built first, then run at once: much of a test's time is spent waiting on Kafka, so two
# at a time finish well before one after the other. Package selection stays --workspace
# in every call, so the features (and the build) are the same for all.
first=(--lib --bins --test '[a-gt]*')
second=(--test '[!a-gt]*')
cargo test --workspace --locked --no-run "${first[@]}"
cargo test --workspace --locked --no-run "${second[@]}"
logs=$(mktemp -d)
cargo test --workspace --locked "${first[@]}" >"$logs/first" 2>&1 &
first_pid=$!
cargo test --workspace --locked "${second[@]}" >"$logs/second" 2>&1 &
second_pid=$!
failed=0
wait "$first_pid" || failed=1
cat "$logs/first"
wait "$second_pid" || failed=1
cat "$logs/second"
[ "$failed" -eq 0 ] || { echo "tests failed (output above)" >&2; exit 1; }
cargo test --workspace --locked --doc
cargo test -p rmqtt-kafka-transform --features json --locked

step "all tests passed"
