#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, the end-to-end tests that drive a real daemon
# over its socket, and the real-kernel tests. They need root (namespaces, cgroups, mounts).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: the tests need root (cgroups, namespaces, mounts); run it as root" >&2
  exit 1
fi
./scripts/install-deps.sh
cargo build --workspace --all-targets
# Each criterion bench once, as a smoke test (the numbers come from `cargo bench`).
cargo test -p wasmlet --benches
cargo test --workspace --no-fail-fast
