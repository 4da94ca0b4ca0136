#!/usr/bin/env bash
# Builds wasmlet and the example guests, then runs the hello Wasm pod in the foreground on an
# embedded runtime (no daemon needed), streaming its logs. Extra arguments go to `wasmlet run`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release -p wasmlet -p wasmlet-wasm-apps
exec ./target/release/wasmlet run examples/pods/hello.yaml "$@"
