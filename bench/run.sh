#!/usr/bin/env bash
# Cross-component benchmarks of issue 9 on the lab (root; see bench/README.md).
#   bench/run.sh build            release binaries into $CARGO_TARGET_DIR/release
#   bench/run.sh pod-route [ARGS] pod ADD -> route in the other nodes' FIBs
#   bench/run.sh scale [ARGS]     50-node lab with 2 route reflectors: ready time, RSS
#   bench/run.sh datastore [ARGS] etcd load and agents' CPU, idle and per change, 50-200 nodes
#   bench/run.sh policy latency|scale|iperf [ARGS]
#                                 network policy through the agent (issue 19)
#   bench/run.sh all              build, pod-route /26 and /32, scale
# Every run takes its lab down at the end, also on failure or Ctrl-C.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-bench}"
export TORTIE_BIN_DIR="${TORTIE_BIN_DIR:-$CARGO_TARGET_DIR/release}"
out="${BENCH_OUT:-$CARGO_TARGET_DIR/bench-results}"
mkdir -p "$out"

build() {
  (cd "$root" && cargo build --release -p tortiectl -p tortie-cni -p tortie-node)
}

# Belt and braces: the Python drivers take their labs down in `finally`;
# this also covers a driver killed hard.
# TERM/INT are trapped so that bash first lets the running driver finish
# its own cleanup, then exits (running the EXIT trap), instead of racing it.
labs=()
cleanup() {
  for l in "${labs[@]}"; do
    if [ -e "/run/tortie-lab/$l" ] || ip netns list | grep -q "^$l-"; then
      "$TORTIE_BIN_DIR/tortiectl" lab down --name "$l" || true
    fi
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stamp() { date -u +%Y%m%dT%H%M%SZ; }

case "${1:-all}" in
  build) build ;;
  pod-route)
    shift; labs+=(tbpod)
    python3 "$here/pod_route_latency.py" --name tbpod "$@" ;;
  scale)
    shift; labs+=(tbscale)
    python3 "$here/lab_scale.py" --name tbscale "$@" ;;
  datastore)
    shift; labs+=(tbsync)
    python3 "$here/datastore_load.py" --name tbsync "$@" ;;
  policy)
    shift; what="${1:-}"
    case "$what" in
      latency) labs+=(tbpl) ;;
      scale) labs+=(tbps) ;;
      iperf) labs+=(tbpi) ;;
      *) echo "bench/run.sh policy latency|scale|iperf [ARGS]" >&2; exit 2 ;;
    esac
    python3 "$here/policy_bench.py" "$@" ;;
  all)
    build
    labs+=(tbpod tbscale)
    python3 "$here/pod_route_latency.py" --name tbpod --block 26 --json "$out/pod-route-26-$(stamp).json"
    python3 "$here/pod_route_latency.py" --name tbpod --block 32 --json "$out/pod-route-32-$(stamp).json"
    python3 "$here/pod_route_latency.py" --name tbpod --block 32 --pace none --json "$out/pod-route-32-b2b-$(stamp).json"
    for i in 1 2 3; do
      python3 "$here/lab_scale.py" --name tbscale --json "$out/scale-$(stamp).json"
    done
    python3 "$here/lab_scale.py" --name tbscale --pods-per-node 1 --ping --json "$out/scale-pods-$(stamp).json"
    ;;
  *) sed -n 2,8p "$0"; exit 2 ;;
esac
