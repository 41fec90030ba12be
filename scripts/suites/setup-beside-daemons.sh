#!/usr/bin/env bash
# The set-up scripts and representative interop tests beside daemons a
# machine may already run, as Debian runs them once installed:
# - decoys: copies of `sleep` named bird, etcd, frr, zebra, bgpd, staticd,
#   watchfrr, gobgpd (what a script that stopped daemons by name would hit;
#   every process this script starts is stopped by its PID);
# - real daemons on the distribution's default paths and ports: etcd on
#   127.0.0.1:2379/2380 and GoBGP on 127.0.0.1:179 / API 50051 in the host
#   namespace, BIRD on /run/bird/bird.ctl and FRR (zebra + bgpd) on the
#   default path space /var/run/frr in a namespace of this script's own.
#   A default path or port that is taken already (a real service running)
#   is left to that service: it serves the same purpose.
# Then runs install-deps.sh (both profiles) and the BGP interop tests
# (BIRD, FRR, GoBGP) and the etcd datastore conformance tests, and checks
# that every decoy and daemon still runs. Everything is stopped by PID.
# Run as root: bash scripts/suites/setup-beside-daemons.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"

W=$(mktemp -d /tmp/ttsetup.XXXXXX)
NS="ttsys$$-h"
declare -A PID_OF=()
CREATED=() # files and folders this script made, removed at the end

cleanup() {
  for name in "${!PID_OF[@]}"; do kill "${PID_OF[$name]}" 2>/dev/null || true; done
  for name in "${!PID_OF[@]}"; do
    for _ in $(seq 100); do kill -0 "${PID_OF[$name]}" 2>/dev/null || break; sleep 0.05; done
  done
  ip netns del "$NS" 2>/dev/null || true
  for f in "${CREATED[@]}"; do rm -rf "$f"; done
  rm -rf "$W"
}
trap cleanup EXIT

fail() {
  echo "setup-beside-daemons: FAIL: $*" >&2
  for log in "$W"/*.log; do [ -e "$log" ] && { echo "--- $log"; tail -20 "$log"; } >&2; done
  exit 1
}

port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }

# Polls until $1 is a file holding a PID (daemons that fork write one).
pid_from_file() {
  for _ in $(seq 200); do
    [ -s "$1" ] && { cat "$1"; return; }
    sleep 0.05
  done
  fail "no pid file $1"
}

mkdir_ours() { # creates a folder only if missing, and removes it afterwards
  [ -e "$1" ] && return 0
  mkdir -p "$1"
  CREATED+=("$1")
}

# Files a daemon will create: none may exist yet (else they are another
# run's and this script leaves them alone); removed at the end.
claim() {
  for f in "$@"; do
    [ -e "$f" ] && fail "$f exists but its daemon does not run (left by an earlier run?)"
    CREATED+=("$f")
  done
}

echo "== decoys"
for n in bird etcd frr zebra bgpd staticd watchfrr gobgpd; do
  cp "$(command -v sleep)" "$W/$n"
  "$W/$n" 3600 &
  PID_OF["decoy $n"]=$!
done

echo "== daemons on default paths and ports"
ip netns add "$NS"
ip -n "$NS" link set lo up
if port_free 2379 && port_free 2380; then
  etcd --name ttsys --data-dir "$W/etcd-data" >"$W/etcd.log" 2>&1 &
  PID_OF[etcd]=$!
else
  echo "   2379/2380 taken: a system etcd runs already"
fi
if port_free 179 && port_free 50051; then
  cat >"$W/gobgpd.toml" <<EOF
[global.config]
  as = 64999
  router-id = "10.255.0.9"
  port = 179
  local-address-list = ["127.0.0.1"]
EOF
  gobgpd -f "$W/gobgpd.toml" -t toml --api-hosts=127.0.0.1:50051 --pprof-disable >"$W/gobgpd.log" 2>&1 &
  PID_OF[gobgpd]=$!
else
  echo "   179/50051 taken: a system BGP daemon runs already"
fi
if ! birdc -s /run/bird/bird.ctl show status >/dev/null 2>&1; then
  mkdir_ours /run/bird
  claim /run/bird/bird.ctl
  printf 'router id 10.255.0.1;\nprotocol device {}\n' >"$W/bird.conf"
  ip netns exec "$NS" bird -c "$W/bird.conf" -s /run/bird/bird.ctl -P "$W/bird.pid"
  PID_OF[bird]=$(pid_from_file "$W/bird.pid")
else
  echo "   /run/bird/bird.ctl answers: a system BIRD runs already"
fi
if ! { [ -s /var/run/frr/zebra.pid ] && kill -0 "$(cat /var/run/frr/zebra.pid)" 2>/dev/null; }; then
  mkdir_ours /var/run/frr
  chown frr:frr /var/run/frr
  claim /var/run/frr/{zserv.api,zebra.pid,zebra.vty,bgpd.pid,bgpd.vty}
  printf 'hostname ttsys\nrouter bgp 64998\n bgp router-id 10.255.0.2\nexit\n' >"$W/frr.conf"
  chmod 644 "$W/frr.conf"
  chmod 755 "$W"
  for d in zebra bgpd; do
    ip netns exec "$NS" "/usr/lib/frr/$d" -d -f "$W/frr.conf" -A 127.0.0.1
    PID_OF["frr $d"]=$(pid_from_file "/var/run/frr/$d.pid")
  done
else
  echo "   /var/run/frr/zebra.pid names a running zebra: a system FRR runs already"
fi

check_all_running() {
  for name in "${!PID_OF[@]}"; do
    kill -0 "${PID_OF[$name]}" 2>/dev/null || fail "$name (pid ${PID_OF[$name]}) stopped $1"
  done
  echo "   all ${#PID_OF[@]} decoys and daemons still run $1"
}
check_all_running "after starting"

echo "== install-deps.sh demo, install-deps.sh test"
./scripts/install-deps.sh demo
./scripts/install-deps.sh test
check_all_running "after install-deps.sh"

echo "== interop tests beside them"
cargo test --locked -q -p tortie-bgp-speaker --test interop -- --include-ignored --test-threads=2
cargo test --locked -q -p tortie-datastore --test conformance -- --include-ignored etcd
check_all_running "after the interop tests"
echo "setup-beside-daemons: OK"
