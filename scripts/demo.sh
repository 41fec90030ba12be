#!/usr/bin/env bash
# The main job: a local multi-node tortie cluster in network namespaces on the
# embedded SQLite store. Run as root on Debian:
#   ./scripts/demo.sh            # up, status, ping matrix
#   ./scripts/demo.sh down       # tear it down
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
./scripts/install-deps.sh
cargo build --release --bins
BIN=target/release
if [ "${1:-up}" = down ]; then
  exec "$BIN/tortiectl" lab down
fi
"$BIN/tortiectl" lab up --nodes "${NODES:-4}" --pods-per-node "${PODS:-2}" --mode "${MODE:-vxlan-crosssubnet}"
"$BIN/tortiectl" lab status
"$BIN/tortiectl" lab ping
