#!/usr/bin/env bash
# IPAM allocation rate (issue 6): allocations per second on one node with
# SQLite and with etcd, and aggregate with 8 nodes at once on etcd.
# Each allocation is one auto_assign of one IPv4 address with its own handle
# (pools re-read per allocation, as the CNI plugin does); no endpoint writes.
#   ./ipam/bench/alloc-rate.sh [COUNT]        (needs etcd from etcd-server)
# Prints the median of 3 runs of each measure.
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT="${1:-2000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p tortie-ipam-core --bin tortie-ipam-load
LOAD="$CARGO_TARGET_DIR/release/tortie-ipam-load"
WORK=$(mktemp -d)
ETCD_PID=""
cleanup() { [ -n "$ETCD_PID" ] && kill -9 "$ETCD_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_etcd() {
  local cport pport
  cport=$(free_port); pport=$(free_port)
  rm -rf "$WORK/etcd"
  etcd --data-dir "$WORK/etcd" --listen-client-urls "http://127.0.0.1:$cport" \
    --advertise-client-urls "http://127.0.0.1:$cport" --listen-peer-urls "http://127.0.0.1:$pport" \
    >"$WORK/etcd.log" 2>&1 &
  ETCD_PID=$!
  for _ in $(seq 1 200); do
    ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$cport" endpoint health >/dev/null 2>&1 && break
    sleep 0.05  # polling etcd's health with a deadline (200 x 50 ms)
  done
  ETCD_URL="etcd://127.0.0.1:$cport"
}
stop_etcd() { kill -9 "$ETCD_PID" 2>/dev/null || true; wait "$ETCD_PID" 2>/dev/null || true; ETCD_PID=""; }

rate() { sed -n 's/.*"per_second":\([0-9.]*\).*/\1/p'; }
median() { sort -n | sed -n 2p; }

one_node() { # URL -> allocations/s
  "$LOAD" --datastore "$1" --node n1 --count "$COUNT" --prefix "r$RANDOM" --ensure-pool 10.0.0.0/12 | rate
}

eight_nodes() { # URL -> aggregate allocations/s (8 processes started together, wall clock)
  local start end
  "$LOAD" --datastore "$1" --node seed --count 1 --prefix seed --ensure-pool 10.0.0.0/12 >/dev/null
  start=$(date +%s.%N)
  for i in 1 2 3 4 5 6 7 8; do
    "$LOAD" --datastore "$1" --node "n$i" --count "$COUNT" --prefix "p$i" >/dev/null &
  done
  wait
  end=$(date +%s.%N)
  python3 -c "print(round(8*$COUNT/($end-$start),1))"
}

s=(); e=(); a=()
for run in 1 2 3; do
  s+=("$(one_node "sqlite://$WORK/s$run.db")")
  start_etcd; e+=("$(one_node "$ETCD_URL")"); stop_etcd
  start_etcd; a+=("$(eight_nodes "$ETCD_URL")"); stop_etcd
done
echo "count per node: $COUNT"
echo "one node, sqlite: $(printf '%s\n' "${s[@]}" | median) allocations/s  (runs: ${s[*]})"
echo "one node, etcd:   $(printf '%s\n' "${e[@]}" | median) allocations/s  (runs: ${e[*]})"
echo "8 nodes, etcd:    $(printf '%s\n' "${a[@]}" | median) allocations/s aggregate  (runs: ${a[*]})"
