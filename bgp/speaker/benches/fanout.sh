#!/usr/bin/env bash
# Reflection fan-out benchmark (TESTING.md method): CLIENTS iBGP route
# reflector clients, each announcing PER /26s, held by one small client
# process (examples/rrclients.rs) from CLIENTS source addresses; the RR is
# tortie's speakerd or BIRD 2, alternating, ROUNDS rounds; prints each run
# (time from the first announcement until every client holds every other
# client's prefixes) and the medians.
#
#   sudo -E bgp/speaker/benches/fanout.sh [CLIENTS=200] [PER=100] [ROUNDS=3]
set -euo pipefail
CLIENTS=${1:-200}
PER=${2:-100}
ROUNDS=${3:-3}
cd "$(dirname "$0")/../../.."
cargo build --release -q -p tortie-bgp-speaker --example speakerd --example rrclients
BIN="${CARGO_TARGET_DIR:-target}/release/examples"
P="bf$$"
W=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "${P}d" 2>/dev/null || true
    ip netns del "${P}c" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

ip netns add "${P}d"; ip netns add "${P}c"
ip -n "${P}d" link add eth0 type veth peer name eth0 netns "${P}c"
ip -n "${P}d" addr add 10.90.0.1/16 dev eth0
for n in d c; do ip -n "$P$n" link set eth0 up; ip -n "$P$n" link set lo up; done
# Sources 10.90.1.1 ... 10.90.1.CLIENTS (rrclients counts up from the first).
(( CLIENTS <= 254 )) || { echo "at most 254 clients" >&2; exit 2; }
src() { echo "10.90.1.$(( 1 + $1 ))"; }
for i in $(seq 0 $((CLIENTS - 1))); do echo "addr add $(src "$i")/16 dev eth0"; done | ip -n "${P}c" -batch -

{
    echo '{"speaker": {"asn": 65001, "router_id": "10.90.0.1", "listen": "10.90.0.1:17901", "peers": ['
    for i in $(seq 0 $((CLIENTS - 1))); do
        [ "$i" -gt 0 ] && echo ','
        echo "{\"address\": \"$(src "$i")\", \"asn\": 65001, \"establishment\": \"passive\", \"families\": [\"ipv4\"], \"route_reflector_client\": true, \"timers\": {\"hold_time\": 240}}"
    done
    echo ']}, "options": {"cluster_id": "10.99.0.1", "route_events": false}}'
} > "$W/tortie.json"
{
    echo 'router id 10.90.0.1; protocol device { scan time 10; }'
    for i in $(seq 0 $((CLIENTS - 1))); do
        echo "protocol bgp c$i { local 10.90.0.1 port 17901 as 65001; neighbor $(src "$i") as 65001; passive; direct;"
        echo "  rr client; rr cluster id 10.99.0.1; hold time 240; ipv4 { import all; export all; gateway direct; }; }"
    done
} > "$W/bird.conf"

run() { # rr kind
    rm -f "$W/bird.ctl"
    local rr
    if [ "$1" = tortie ]; then
        ip netns exec "${P}d" env RUST_LOG=warn "$BIN/speakerd" "$W/tortie.json" >"$W/speakerd.log" 2>&1 &
        rr=$!
    else
        ip netns exec "${P}d" bird -f -c "$W/bird.conf" -s "$W/bird.ctl" >/dev/null 2>&1 &
        rr=$!
    fi
    PIDS+=("$rr")
    local end=$(( $(date +%s) + 30 ))
    until ip netns exec "${P}d" ss -ltn | grep -q ":17901 "; do
        (( $(date +%s) < end )) || { echo "RR did not listen" >&2; exit 1; }
        sleep 0.02
    done
    local out
    out=$(timeout 60 ip netns exec "${P}c" "$BIN/rrclients" 10.90.0.1:17901 "$(src 0)" "$CLIENTS" "$PER")
    local cpu; cpu=$(awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$rr/stat")
    kill -9 "$rr" 2>/dev/null || true
    wait "$rr" 2>/dev/null || true
    local secs; secs=$(echo "$out" | awk '{ print $(NF-1) }')
    printf '%-6s %s (RR CPU %s s)\n' "$1" "$out" "$cpu"
    echo "$1 $secs $cpu" >> "$W/results"
}

for _ in $(seq "$ROUNDS"); do
    run tortie
    run bird
done
echo "medians over $ROUNDS rounds ($CLIENTS clients x $PER prefixes):"
for k in tortie bird; do
    awk -v k="$k" '$1 == k { print $2, $3 }' "$W/results" | sort -n |
        awk -v k="$k" '{ t[NR] = $1; c[NR] = $2 } END { m = int((NR + 1) / 2); printf "  %-6s %.3f s (RR CPU %s s)\n", k, t[m], c[m] }'
done
