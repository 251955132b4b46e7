#!/usr/bin/env bash
# The benchmark, in one command (docs/benchmarks.md):
#   scripts/bench.sh                          every configuration (a-e) and load
#   scripts/bench.sh --only a,c --loads qos1-256 --duration 3s
# Installs what it needs (scripts/setup.sh), builds the example transforms for wasm32 and
# bridge-bench in release mode, then runs `bridge-bench run` with the arguments given.
# Prints the tables; raw results go to target/bench-results.json, logs to target/bench-logs/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh all

echo "bench: building the example modules (wasm32-unknown-unknown, release)" >&2
# The examples are their own workspace; their modules are expected in examples/target.
(cd examples && env -u CARGO_TARGET_DIR cargo build --release --target wasm32-unknown-unknown --quiet)

echo "bench: building bridge-bench (release)" >&2
exec cargo run --release --quiet -p bridge-bench -- run \
    --tansu "$(scripts/tansu-path.sh)" \
    --modules "$PWD/examples/target/wasm32-unknown-unknown/release" \
    "$@"
