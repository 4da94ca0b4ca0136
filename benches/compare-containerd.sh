#!/usr/bin/env bash
# Cold start, wasmlet vs containerd + runc, on this machine, in one interleaved run.
#
# Installs Debian's containerd, runc, busybox-static and skopeo (apt-get), starts a containerd with its
# own root, state and socket in a temporary directory (CRI plugin, runc, cgroupfs, no CNI: the
# pods use hostNetwork), imports two tiny images built here from the static busybox — the
# sandbox ("pause") image, whose entrypoint is `sleep 2147483647`, and the workload — starts a
# `wasmlet daemon` on its own socket and root with hello and the same busybox imported, and runs
#   wasmlet bench cold-start --endpoint <wasmlet> --vs <containerd> …
# twice: the Wasm hello pod on wasmlet vs busybox on containerd, then busybox on both; then
#   wasmlet bench exec …   (ExecSync round trips: busybox `true` on both, a Wasm exec on wasmlet)
# Prints the tables; leaves the JSON and the SVG chart in $OUT (default benches/out/).
# Everything it started is stopped and removed on exit.
#
# Usage: benches/compare-containerd.sh [PODS]        (root; default 50 pods per endpoint)
# Env:   OUT=dir  CONCURRENCY=n  NETWORK=host|pod  EXECS=n  SKIP_INSTALL=1  SKIP_BUILD=1
set -euo pipefail

PODS=${1:-50}
CONCURRENCY=${CONCURRENCY:-1}
NETWORK=${NETWORK:-host}
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$REPO/benches/out}
WORK=$(mktemp -d /tmp/wasmlet-vs-containerd.XXXXXX)
CTRD_SOCK=$WORK/containerd/containerd.sock
WL_SOCK=$WORK/wasmlet/wasmlet.sock
PAUSE_REF=localhost/pause:bench
BUSYBOX_REF=localhost/busybox:bench
CTRD_PID=""
CGROUPS_BEFORE=$(echo /sys/fs/cgroup/*/k8s.io)
KUBEPODS_BEFORE=$(echo /sys/fs/cgroup/*/kubepods)
WL_PID=""

log() { printf '== %s\n' "$*" >&2; }

cleanup() {
    local rc=$?
    set +e
    if [[ $rc != 0 && -f $WORK/containerd.log ]]; then
        echo "--- last lines of the containerd log:" >&2
        tail -n "${LOG_LINES:-15}" "$WORK/containerd.log" >&2
        mkdir -p "$OUT" && cp "$WORK/containerd.log" "$WORK/wasmlet.log" "$OUT/" 2>/dev/null
        echo "--- logs kept in $OUT/containerd.log and $OUT/wasmlet.log" >&2
    fi
    if [[ -n $CTRD_PID ]] && kill -0 "$CTRD_PID" 2>/dev/null; then
        # Pods the bench left (after a failure): remove them through the CRI first.
        if command -v crictl >/dev/null; then
            crictl --runtime-endpoint "unix://$CTRD_SOCK" rmp -af >/dev/null 2>&1
        fi
    fi
    for pid in $WL_PID $CTRD_PID; do
        kill "$pid" 2>/dev/null && { timeout 10 tail --pid="$pid" -f /dev/null; kill -9 "$pid" 2>/dev/null; }
    done
    # containerd's shims outlive it, and wasmlet's shims carry the state directory in their
    # title: kill the processes whose command line names our directory.
    for p in /proc/[0-9]*; do
        if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q -- "$WORK"; then kill -9 "${p#/proc/}" 2>/dev/null; fi
    done
    # Mounts left under the work directory (rootfs, shm), deepest first.
    awk -v w="$WORK" '$2 ~ "^"w {print $2}' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    # runc removes each container's cgroup; the k8s.io parents are ours if they were not there before.
    for c in /sys/fs/cgroup/*/k8s.io; do
        [[ " $CGROUPS_BEFORE " == *" $c "* ]] || rmdir "$c" 2>/dev/null
    done
    # wasmlet's kubepods QoS tiers, if this run made them (empty once its pods are gone).
    for c in /sys/fs/cgroup/*/kubepods; do
        [[ " $KUBEPODS_BEFORE " == *" $c "* ]] || rmdir "$c"/burstable "$c"/besteffort "$c" 2>/dev/null
    done
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT INT TERM

[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 1; }

if [[ -z ${SKIP_INSTALL:-} ]]; then
    log "installing containerd, runc, busybox-static"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq containerd runc busybox-static skopeo >/dev/null
fi
BUSYBOX=/bin/busybox   # busybox-static's: no libraries to copy into the image

# --- two docker-archive images from the static busybox ------------------------------------
# image NAME CONFIG_JSON_FRAGMENT: a single-layer image with /bin/busybox and its applets.
make_image() {
    local name=$1 exec_cfg=$2 dir
    dir=$(mktemp -d "$WORK/img.XXXXXX")
    mkdir -p "$dir/rootfs/bin" "$dir/rootfs/tmp" "$dir/rootfs/proc" "$dir/rootfs/sys" "$dir/rootfs/dev" "$dir/rootfs/etc"
    cp "$BUSYBOX" "$dir/rootfs/bin/busybox"
    for a in sh echo sleep true cat ls; do ln -s busybox "$dir/rootfs/bin/$a"; done
    tar --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$dir/rootfs" -cf "$dir/layer.tar" .
    local diff_id
    diff_id=$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)
    cat >"$dir/config.json" <<EOF
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],$exec_cfg,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},"history":[{"created_by":"wasmlet benches/compare-containerd.sh"}]}
EOF
    printf '[{"Config":"config.json","RepoTags":["%s"],"Layers":["layer.tar"]}]\n' "$name" >"$dir/manifest.json"
    tar -C "$dir" -cf "$dir/image.tar" manifest.json config.json layer.tar
    echo "$dir/image.tar"
}

# --- containerd ---------------------------------------------------------------------------
mkdir -p "$WORK/containerd" "$WORK/cni/net.d" "$WORK/cni/bin" "$WORK/logs"
cat >"$WORK/containerd/config.toml" <<EOF
version = 2
root = "$WORK/containerd/root"
state = "$WORK/containerd/state"
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD_SOCK.ttrpc"
[debug]
  level = "${CONTAINERD_LOG_LEVEL:-warn}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_REF"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # Not -998 for the sandbox: lowering oom_score_adj needs CAP_SYS_RESOURCE, which this
  # machine (itself a sandbox) does not grant; runc then fails with "can't get final child's PID".
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$WORK/cni/bin"
    conf_dir = "$WORK/cni/net.d"
EOF
log "starting containerd ($CTRD_SOCK)"
containerd --config "$WORK/containerd/config.toml" >"$WORK/containerd.log" 2>&1 &
CTRD_PID=$!
for _ in $(seq 100); do [[ -S $CTRD_SOCK ]] && break; sleep 0.1; done
[[ -S $CTRD_SOCK ]] || { cat "$WORK/containerd.log" >&2; exit 1; }

log "importing $PAUSE_REF and $BUSYBOX_REF"
PAUSE_TAR=$(make_image "$PAUSE_REF" '"Entrypoint":["/bin/sleep","2147483647"]')
BUSYBOX_TAR=$(make_image "$BUSYBOX_REF" '"Cmd":["sh"]')
for t in "$PAUSE_TAR" "$BUSYBOX_TAR"; do
    ctr --address "$CTRD_SOCK" -n k8s.io images import "$t" >/dev/null
done
ctr --address "$CTRD_SOCK" -n k8s.io images ls -q | grep -q "$BUSYBOX_REF"

# --- wasmlet ------------------------------------------------------------------------------
cd "$REPO"
if [[ -z ${SKIP_BUILD:-} ]]; then
    log "building wasmlet (release)"
    cargo build --release --bin wasmlet -q
    [[ -f target/wasm-apps/wasm32-wasip1/release/hello.wasm ]] || cargo build --release -q -p wasmlet-wasm-apps
fi
WASMLET=$REPO/target/release/wasmlet
WL_DIRS=(--root "$WORK/wasmlet/root" --state "$WORK/wasmlet/state" --cni-conf-dir "$WORK/cni/net.d")
mkdir -p "$WORK/wasmlet"
"$WASMLET" image import target/wasm-apps/wasm32-wasip1/release/hello.wasm --name localhost/hello:latest "${WL_DIRS[@]}" --log-level warn >/dev/null
"$WASMLET" image import target/wasm-apps/wasm32-wasip1/release/logger.wasm --name localhost/logger:latest "${WL_DIRS[@]}" --log-level warn >/dev/null
# The same busybox image for wasmlet's Linux containers, as an OCI layout (skopeo converts it).
skopeo copy -q "docker-archive:$BUSYBOX_TAR" "oci:$WORK/busybox-oci:bench"
"$WASMLET" image import "$WORK/busybox-oci" --name "$BUSYBOX_REF" "${WL_DIRS[@]}" --log-level warn >/dev/null
log "starting wasmlet daemon ($WL_SOCK)"
"$WASMLET" daemon --socket "$WL_SOCK" "${WL_DIRS[@]}" --log-level warn >"$WORK/wasmlet.log" 2>&1 &
WL_PID=$!
for _ in $(seq 100); do [[ -S $WL_SOCK ]] && break; sleep 0.1; done
[[ -S $WL_SOCK ]] || { cat "$WORK/wasmlet.log" >&2; exit 1; }

# --- the run ------------------------------------------------------------------------------
mkdir -p "$OUT"
log "cold start: $PODS pods per endpoint, interleaved, concurrency $CONCURRENCY, network $NETWORK"
echo "# $(date -u +%FT%TZ) $(uname -r) nproc=$(nproc) $(containerd --version | cut -d' ' -f3) $(runc --version | head -1)"
"$WASMLET" bench cold-start \
    --endpoint "unix://$WL_SOCK" --image localhost/hello:latest \
    --vs "unix://$CTRD_SOCK" --vs-image "$BUSYBOX_REF" \
    --pods "$PODS" --concurrency "$CONCURRENCY" --network "$NETWORK" \
    --log-dir "$WORK/logs" \
    --json "$OUT/cold-start-vs-containerd.json" --svg "$OUT/cold-start-vs-containerd.svg" \
    --vs-command "sh -c 'echo hi'"
log "wrote $OUT/cold-start-vs-containerd.json and .svg"

log "cold start: busybox (a Linux container) on both, $PODS pods per endpoint, interleaved"
"$WASMLET" bench cold-start \
    --endpoint "unix://$WL_SOCK" --image "$BUSYBOX_REF" --command "sh -c 'echo hi'" \
    --vs "unix://$CTRD_SOCK" \
    --pods "$PODS" --concurrency "$CONCURRENCY" --network "$NETWORK" \
    --log-dir "$WORK/logs" \
    --json "$OUT/cold-start-busybox-vs-containerd.json" --svg "$OUT/cold-start-busybox-vs-containerd.svg"
log "wrote $OUT/cold-start-busybox-vs-containerd.json and .svg"

log "ExecSync round trips: \`true\` in busybox on both; a Wasm exec (the logger module, one tick) on wasmlet"
"$WASMLET" bench exec --endpoint "unix://$WL_SOCK" --image "$BUSYBOX_REF" --command "sleep 3600" --exec true \
    --vs "unix://$CTRD_SOCK" --execs "${EXECS:-100}"
"$WASMLET" bench exec --endpoint "unix://$WL_SOCK" --image localhost/logger:latest --args "60000" --exec "logger 1 1" \
    --vs "unix://$CTRD_SOCK" --vs-image "$BUSYBOX_REF" --vs-command "sleep 3600" --vs-exec true --execs "${EXECS:-100}"
