#!/usr/bin/env bash
# Installs every system package and toolchain target wasmlet needs to build and test.
# Idempotent; run as root (CI is root). Nothing else has to be installed by hand.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Debian packages:
#   protobuf-compiler  protoc, for the CRI protobuf bindings (k8s-cri's build script)
#   docker-registry    a real OCI registry (distribution 2.8) the image pull tests start on loopback
#   apache2-utils      htpasswd, for the bcrypt password file of the basic-auth registry test
#   skopeo             the reference client the pull timing test compares against
#   busybox-static     /bin/busybox, the payload of the Linux image the pull timing test builds
#   containernetworking-plugins  the CNI plugins (bridge, host-local, loopback, portmap) in /usr/lib/cni
#   iproute2           `ip`, with which the network tests inspect and delete their bridge
#   python3-websockets Python's `websockets`, the independent WebSocket client of the streaming tests
#   libseccomp-dev     libseccomp for youki's libcontainer (seccomp filters of Linux containers)
#   pkg-config         how libseccomp's build script finds it
#   wrk                the HTTP load tool of the wasi:http handler measurement (tests/all/http_handler.rs)
PACKAGES=(protobuf-compiler docker-registry apache2-utils skopeo busybox-static containernetworking-plugins iproute2 libseccomp-dev pkg-config python3-websockets wrk)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Rust targets for the example guests in examples/wasm-apps.
installed=$(rustup target list --installed)
for t in wasm32-wasip1 wasm32-wasip2; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t"
done

# The example guests' one dependency (wasip2, for the wasi:http export of http-handler): they are
# built with --offline by crates/wasm-apps/build.rs, so fetch it once.
cargo fetch --manifest-path "$(dirname "$0")/../examples/wasm-apps/Cargo.toml" --target wasm32-wasip2
