#!/usr/bin/env bash
# The benchmark, in one command (docs/benchmarks.md):
#   scripts/bench.sh                          every default configuration and load
#   scripts/bench.sh --only a,c --loads qos1-256 --duration 3s
# Installs what it needs (scripts/setup.sh), builds the example transforms for wasm32 and
# bridge-bench (release; with --profile, the `profiling` cargo profile), then runs
# `bridge-bench run` with the arguments given.
# Prints the tables; raw results go to target/bench-results.json, logs to target/bench-logs/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh all

echo "bench: building the example modules (wasm32-unknown-unknown, release)" >&2
# The examples are their own workspace; their modules are expected in examples/target.
(cd examples && env -u CARGO_TARGET_DIR cargo build --release --target wasm32-unknown-unknown --quiet)

# --profile samples call stacks, which need line tables: the `profiling` cargo profile is
# release with them (Cargo.toml); plain release builds leave them out.
profile=release
for arg in "$@"; do
    if [ "$arg" = "--profile" ] || [[ "$arg" == --profile=* ]]; then profile=profiling; fi
done
echo "bench: building bridge-bench (cargo profile $profile)" >&2
exec cargo run --profile "$profile" --quiet -p bridge-bench -- run \
    --tansu "$(scripts/tansu-path.sh)" \
    --modules "$PWD/examples/target/wasm32-unknown-unknown/release" \
    "$@"
