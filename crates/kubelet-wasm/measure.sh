#!/bin/bash
# crates/kubelet-wasm/measure.sh [BIN] [N]: idle RSS / PSS / anonymous memory of `wasmlet node` and
# `wasmlet daemon` with 0 and N logger pods (and the shims' PSS), pod start latency through the
# agent, and the time to start and to remove N pods. Needs root; leaves nothing behind.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-$ROOT/target/release/wasmlet}; N=${2:-100}
M=$(mktemp -d /tmp/wlt-meas-XXXX)
mkdir -p $M/manifests
$BIN image import $ROOT/target/wasm-apps/wasm32-wasip1/release/logger.wasm --name localhost/logger:v1 --root $M/r >/dev/null 2>&1
WASMLET_LOG=warn $BIN daemon --socket $M/cri.sock --root $M/r --state $M/s --cni-conf-dir $M/net.d > $M/daemon.log 2>&1 &
DPID=$!
for i in $(seq 100); do [ -S $M/cri.sock ] && break; sleep 0.1; done
sleep 0.5
WASMLET_LOG=warn $BIN node --manifests $M/manifests --endpoint unix://$M/cri.sock --root $M/node --node-name meas --poll-ms 100 --resync-ms 1000 > $M/node.log 2>&1 &
NPID=$!
sleep 3
mem() { # pid → "RSS_kB PSS_kB"
  awk '/^Rss:/{r=$2} /^Pss:/{p=$2} /^Anonymous:/{a=$2} END{print "rss=" r " pss=" p " anon=" a}' /proc/$1/smaps_rollup
}
shims() { # sum of shim PSS (their stderr is a shim.log under $M/s)
  local t=0
  for p in /proc/[0-9]*; do
    l=$(readlink $p/fd/2 2>/dev/null) || continue
    case "$l" in $M/s/*/shim.log) t=$((t + $(awk '/^Pss:/{print $2}' $p/smaps_rollup))) ;; esac
  done; echo $t
}
echo "0 pods: node RSS/PSS kB: $(mem $NPID)   daemon RSS/PSS kB: $(mem $DPID)"
pod() { printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  hostNetwork: true\n  containers:\n  - {name: c, image: "localhost/logger:v1", imagePullPolicy: Never, args: ["%s"]}\n' $1 $2; }
# Start latency: manifest written → Running in the agent's state file, one pod at a time.
for i in 1 2 3 4 5; do
  t0=$(date +%s%N)
  pod lat$i 60000 > $M/manifests/.lat$i.tmp && mv $M/manifests/.lat$i.tmp $M/manifests/lat$i.yaml
  until python3 -c "import json,sys; d=json.load(open('$M/node/status.json')); sys.exit(0 if any(p['pod']['metadata']['name']=='lat$i' and p['pod']['status'].get('phase')=='Running' and p['pod']['status']['containerStatuses'][0]['state'].get('running') for p in d['pods']) else 1)" 2>/dev/null; do sleep 0.01; done
  t1=$(date +%s%N)
  echo "pod lat$i: manifest → Running in status.json: $(( (t1 - t0) / 1000000 )) ms"
  rm $M/manifests/lat$i.yaml
done
sleep 3
t0=$(date +%s%N)
for i in $(seq $N); do pod p$i 10000 > $M/manifests/p$i.yaml; done
until python3 -c "import json,sys; d=json.load(open('$M/node/status.json')); sys.exit(0 if sum(1 for p in d['pods'] if p['pod']['status'].get('phase')=='Running')>=$N else 1)" 2>/dev/null; do sleep 0.2; done
t1=$(date +%s%N)
echo "$N pods written → all Running: $(( (t1 - t0) / 1000000 )) ms"
sleep 10
echo "$N pods: node RSS/PSS kB: $(mem $NPID)   daemon RSS/PSS kB: $(mem $DPID)   shims PSS total kB: $(shims)"
$BIN node pods --root $M/node | head -3
t0=$(date +%s%N)
rm -f $M/manifests/*.yaml
until python3 -c "import json,sys; d=json.load(open('$M/node/status.json')); sys.exit(0 if not d['pods'] else 1)" 2>/dev/null; do sleep 0.2; done
t1=$(date +%s%N)
echo "$N manifests removed → all pods gone: $(( (t1 - t0) / 1000000 )) ms"
kill $NPID; wait $NPID
kill $DPID; wait $DPID
sleep 1
echo "leftover shims: $(for p in /proc/[0-9]*; do readlink $p/fd/2 2>/dev/null; done | grep -c "^$M/s/")"
rm -rf $M
