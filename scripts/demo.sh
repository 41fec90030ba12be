#!/usr/bin/env bash
# The main job: a local multi-node tortie cluster in network namespaces on the
# embedded SQLite store. Run as root on Debian:
#   ./scripts/demo.sh            # up, status, ping matrix
#   ./scripts/demo.sh down       # tear it down
# NODES, PODS and MODE (bgp | vxlan | vxlan-crosssubnet | ipip-crosssubnet,
# the last needs the ipip kernel module) change the lab.
# It installs only what the demo needs (build tools, iproute2, nftables, ...),
# stops nothing it did not start, and touches only the namespaces
# tortie-router, tortie-node*, tortie-node*-pod* and /run/tortie-lab/tortie.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
./scripts/install-deps.sh demo
cargo build --release --bins
BIN=target/release
if [ "${1:-up}" = down ]; then
  exec "$BIN/tortiectl" lab down
fi
# A lab left over from an earlier run is replaced.
"$BIN/tortiectl" lab down >/dev/null 2>&1 || true
"$BIN/tortiectl" lab up --nodes "${NODES:-4}" --pods-per-node "${PODS:-2}" --mode "${MODE:-vxlan-crosssubnet}"
"$BIN/tortiectl" lab status
"$BIN/tortiectl" lab ping
