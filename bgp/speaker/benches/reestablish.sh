#!/usr/bin/env bash
# Re-establish benchmark (issue 13): a peer BIRD 2 with default timers
# (connect delay PEER_DELAY s, 5 by default; connect retry 120 s) is killed, stays down DOWN
# seconds (plus a random 0-5 s) and starts again; the DUT must take it back:
#   tortie  tortie-node --dataplane none with a BGPPeer to the peer (the
#           product; ConnectRetryTime 5 s, IdleHold 1-60 s, hold 90 s);
#   bird    BIRD 2 with the same session timers (connect retry time 5,
#           error wait time 1, 60, hold 90).
# Per run: `from_start` (peer process start → Established, as the peer's
# `birdc show protocols` says, polled every 20 ms), `from_peer_syn` (the
# peer's first SYN to the DUT → Established; nan when the DUT's own connect
# made it first) and `dut_syns` (connects the DUT tried meanwhile), from a
# tcpdump in the peer's namespace. Alternating DUTs, ROUNDS rounds, then
# the medians.
#
# With PEER_DELAY=1 the peer's own connect usually comes before the DUT's
# next ConnectRetry: `from_peer_syn` then measures how fast the DUT takes
# a peer's connection.
#
#   sudo -E bgp/speaker/benches/reestablish.sh [DOWN=40] [ROUNDS=3] [PEER_DELAY=5]
set -euo pipefail
DOWN=${1:-40}
ROUNDS=${2:-3}
PEER_DELAY=${3:-5}
cd "$(dirname "$0")/../../.."
cargo build --release -q -p tortie-node -p tortiectl
REL="${CARGO_TARGET_DIR:-target}/release"
P="ttbre$$"
W=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "${P}d" 2>/dev/null || true
    ip netns del "${P}p" 2>/dev/null || true
    [ -n "${KEEP_WORKDIR:-}" ] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT

ip netns add "${P}d"; ip netns add "${P}p"
ip -n "${P}d" link add eth0 type veth peer name eth0 netns "${P}p"
ip -n "${P}d" addr add 10.86.0.1/24 dev eth0
ip -n "${P}p" addr add 10.86.0.2/24 dev eth0
for n in d p; do ip -n "$P$n" link set eth0 up; ip -n "$P$n" link set lo up; done

cat > "$W/cluster.yaml" <<EOF
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: peer}
spec: {peerIP: "10.86.0.2:17986", asNumber: 65002}
EOF
cat > "$W/peer.conf" <<EOF
router id 10.86.0.2; protocol device { scan time 10; }
protocol static st { ipv4; route 10.2.0.0/24 blackhole; }
protocol bgp dut { local 10.86.0.2 port 17986 as 65002; neighbor 10.86.0.1 port 17986 as 64512;
  connect delay time $PEER_DELAY; ipv4 { import all; export all; }; }
EOF
cat > "$W/dut-bird.conf" <<EOF
router id 10.86.0.1; protocol device { scan time 10; }
protocol bgp peer { local 10.86.0.1 port 17986 as 64512; neighbor 10.86.0.2 port 17986 as 65002;
  connect retry time 5; error wait time 1, 60; hold time 90; ipv4 { import all; export none; }; }
EOF

now() { date +%s.%N; }
wait_for() { # deadline-seconds command...
    local end=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        (( $(date +%s) < end )) || { echo "timeout: $*" >&2; return 1; }
        sleep 0.02
    done
}
peer_up() { birdc -s "$W/p.ctl" show protocols dut 2>/dev/null | grep -q Established; }
start_peer() {
    rm -f "$W/p.ctl"
    ip netns exec "${P}p" bird -f -c "$W/peer.conf" -s "$W/p.ctl" >/dev/null 2>&1 &
    PEER=$!; PIDS+=("$PEER")
}

run() { # dut kind
    local dut
    if [ "$1" = tortie ]; then
        rm -f "$W/t.db"
        "$REL/tortiectl" --datastore "sqlite://$W/t.db" apply -f "$W/cluster.yaml" >/dev/null
        ip netns exec "${P}d" env RUST_LOG=${NODE_LOG:-warn} "$REL/tortie-node" --datastore "sqlite://$W/t.db" \
            --node-name dut --dataplane none --ip-autodetect interface=eth0 --bgp-port 17986 \
            --control-socket "$W/dut.sock" >"$W/node.log" 2>&1 &
        dut=$!
    else
        rm -f "$W/d.ctl"
        ip netns exec "${P}d" bird -f -c "$W/dut-bird.conf" -s "$W/d.ctl" >/dev/null 2>&1 &
        dut=$!
    fi
    PIDS+=("$dut")
    start_peer
    wait_for 60 peer_up
    kill -9 "$PEER"; wait "$PEER" 2>/dev/null || true
    # A random extra 0-5 s, so that the restart falls anywhere in the DUT's
    # ConnectRetry cycle (5 s for both).
    local down; down=$(echo "$DOWN + $((RANDOM % 5000)) / 1000" | bc -l)
    sleep "$down"
    ip netns exec "${P}p" tcpdump -i eth0 -n -tt -l --immediate-mode 'tcp port 17986' >"$W/tcp.txt" 2>"$W/tcpdump.err" &
    local td=$!; PIDS+=("$td")
    wait_for 10 grep -q "listening on" "$W/tcpdump.err"
    local t0 t1; t0=$(now)
    start_peer
    wait_for 120 peer_up
    t1=$(now)
    [ -n "${DEBUG:-}" ] && { birdc -s "$W/p.ctl" show protocols all dut | head -8; ip netns exec "${P}p" ss -tn; } >&2
    kill "$td" 2>/dev/null || true; wait "$td" 2>/dev/null || true
    grep 'Flags \[S\],' "$W/tcp.txt" >"$W/syn.txt" || true
    local from_peer_syn dut_syns
    from_peer_syn=$(awk -v t1="$t1" '$3 ~ /^10\.86\.0\.2\./ && $1 <= t1 { printf "%.3f", t1 - $1; exit }' "$W/syn.txt")
    dut_syns=$(awk -v t1="$t1" '$3 ~ /^10\.86\.0\.1\./ && $1 <= t1' "$W/syn.txt" | wc -l)
    kill -9 "$PEER" "$dut" 2>/dev/null || true
    wait "$PEER" "$dut" 2>/dev/null || true
    printf '%-6s down=%.1f from_start=%.3f from_peer_syn=%s dut_syns=%d\n' "$1" "$down" "$(echo "$t1 - $t0" | bc -l)" \
        "${from_peer_syn:-nan}" "$dut_syns" | tee -a "$W/results"
}

for _ in $(seq "$ROUNDS"); do
    for k in ${KINDS:-tortie bird}; do run "$k"; done
done
echo "medians over $ROUNDS rounds (peer down $DOWN-$((DOWN + 5)) s):"
for k in ${KINDS:-tortie bird}; do
    for f in from_start from_peer_syn; do
        grep "^$k " "$W/results" | tr ' ' '\n' | awk -F= -v f="$f" '$1 == f { print $2 }' | sort -g |
            awk -v k="$k" -v f="$f" '{ v[NR] = $1 } END { m = int((NR + 1) / 2); printf "  %-6s %-10s %s s\n", k, f, v[m] }'
    done
done
