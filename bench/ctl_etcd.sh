#!/usr/bin/env bash
# tortiectl against a real etcd on loopback, two builds alternating in one
# run: `apply` of 100 GlobalNetworkSets (one etcd transaction) and `get
# globalnetworksets -o json` of 1000. It compares two builds of the client
# side (clap, YAML/JSON, etcd-client, tonic/h2/hyper/prost, rustls), e.g.
# the image's tortiectl before and after a change of its opt-levels
# (docs/kubernetes.md, "Image size").
#
#   bench/ctl_etcd.sh BASE_TORTIECTL NEW_TORTIECTL [ROUNDS=30]
#
# Starts its own etcd (temporary data folder, 127.0.0.1:23971/23972),
# stopped by PID and removed on exit. Prints the p50 of each measure per
# build, in microseconds. Needs `etcd` on PATH (etcd-server).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BASE_TORTIECTL NEW_TORTIECTL [ROUNDS]" >&2; exit 2; }
BASE=$1 NEW=$2 ROUNDS=${3:-30}
for b in "$BASE" "$NEW"; do [ -x "$b" ] || { echo "$b: not an executable" >&2; exit 2; }; done
W=$(mktemp -d "${TMPDIR:-/tmp}/tortie-ctl-etcd.XXXXXX")
etcd --data-dir "$W/data" \
  --listen-client-urls http://127.0.0.1:23971 --advertise-client-urls http://127.0.0.1:23971 \
  --listen-peer-urls http://127.0.0.1:23972 --initial-advertise-peer-urls http://127.0.0.1:23972 \
  --initial-cluster default=http://127.0.0.1:23972 >"$W/etcd.log" 2>&1 &
EPID=$!
trap 'kill "$EPID" 2>/dev/null || true; wait "$EPID" 2>/dev/null || true; rm -rf "$W"' EXIT
export TORTIE_DATASTORE=etcd://127.0.0.1:23971
deadline=$(($(date +%s) + 20))
until "$NEW" get globalnetworksets >/dev/null 2>&1; do
  (($(date +%s) < deadline)) || { cat "$W/etcd.log" >&2; echo "etcd did not answer" >&2; exit 1; }
  sleep 0.2
done

# 10 manifests of 100 GlobalNetworkSets (1000 in all).
for m in $(seq 0 9); do
  for i in $(seq 0 99); do
    n=$((m * 100 + i))
    printf -- '---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: set-%d\n  labels: {k: v%d}\nspec:\n  nets: [10.%d.%d.0/24, 10.200.%d.0/24]\n' \
      "$n" "$n" $((n / 256)) $((n % 256)) $((n % 256))
  done >"$W/m$m.yaml"
done
for m in $(seq 0 9); do "$NEW" apply -f "$W/m$m.yaml" >/dev/null; done

us() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(((e - s) / 1000)); }
declare -A apply get
for r in $(seq 1 "$ROUNDS"); do
  for who in base new; do
    bin=$BASE; [ "$who" = new ] && bin=$NEW
    apply[$who]+="$(us "$bin" apply -f "$W/m$((r % 10)).yaml") "
    get[$who]+="$(us "$bin" get globalnetworksets -o json) "
  done
done
p50() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
echo "sets in etcd: $("$NEW" get globalnetworksets -o json | grep -c '"name": "set-')"
for who in base new; do
  echo "$who: apply 100 p50 $(echo "${apply[$who]}" | p50) us; get 1000 -o json p50 $(echo "${get[$who]}" | p50) us ($ROUNDS rounds)"
done
