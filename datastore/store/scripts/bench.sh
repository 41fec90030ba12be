#!/usr/bin/env bash
# Datastore benchmarks (docs/benchmarks.md, "Datastore"): write -> watcher
# latency, listing 10,000 values, CAS updates from 8 processes, the wake-ups
# of an idle SQLite watch (5 s); on SQLite and
# on a local etcd started here (killed by PID on exit).
#   datastore/store/scripts/bench.sh [WATCH_WRITES] [LIST_N] [CAS_PROCS] [CAS_EACH]
set -euo pipefail
cd "$(dirname "$0")/../../.."
WATCH_N=${1:-2000}
LIST_N=${2:-10000}
PROCS=${3:-8}
EACH=${4:-250}
ETCD_PORT=${TORTIE_BENCH_ETCD_PORT:-23790}

if [ -n "${TORTIE_BENCH_BIN:-}" ]; then
  B="$TORTIE_BENCH_BIN"   # an already built tortie-store-bench
else
  cargo build --release -q -p tortie-datastore --bin tortie-store-bench
  B="${CARGO_TARGET_DIR:-target}/release/tortie-store-bench"
fi
tmp=$(mktemp -d)
etcd_pid=""
cleanup() {
  if [ -n "$etcd_pid" ]; then kill "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "== sqlite ($(date -u +%FT%TZ), $(nproc) cores)"
"$B" watch "sqlite://$tmp/watch.db" "$WATCH_N"
"$B" list "sqlite://$tmp/list.db" "$LIST_N"
"$B" cas "sqlite://$tmp/cas.db" "$PROCS" "$EACH"
"$B" idle-watch "sqlite://$tmp/idle.db" 5

echo "== etcd $(etcd --version | head -1 | awk '{print $3}') on 127.0.0.1:$ETCD_PORT"
etcd --name bench --data-dir "$tmp/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-cluster "bench=http://127.0.0.1:$((ETCD_PORT + 1))" >"$tmp/etcd.log" 2>&1 &
etcd_pid=$!
deadline=$((SECONDS + 20))
until ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$ETCD_PORT" endpoint health >/dev/null 2>&1; do
  if ((SECONDS > deadline)); then echo "etcd did not become healthy" >&2; cat "$tmp/etcd.log" >&2; exit 1; fi
  sleep 0.1
done
"$B" watch "etcd://127.0.0.1:$ETCD_PORT" "$WATCH_N"
"$B" list "etcd://127.0.0.1:$ETCD_PORT" "$LIST_N"
"$B" cas "etcd://127.0.0.1:$ETCD_PORT" "$PROCS" "$EACH"
