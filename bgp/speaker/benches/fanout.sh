#!/usr/bin/env bash
# Route reflector fan-out benchmark (issue 13, TESTING.md method): CLIENTS
# iBGP route reflector clients that only connect (never listen), each
# announcing PER /26s, held by one small client process
# (examples/rrclients.rs) from CLIENTS source addresses. The RR is active
# toward its clients, as each of these configures them, so its own connects
# are refused and it must take theirs:
#   tortie  tortie-node --dataplane none (the product), clients as Node
#           resources under a BGPPeer {nodeSelector: all(), peerSelector:
#           route-reflector == 'true'} (Calico's RR recipe);
#   frr     FRR 8 bgpd + zebra, 200 neighbours in a peer group;
#   bird    BIRD 2, one protocol per client.
# Every RR uses ConnectRetryTime 5 s (tortie-node's), BIRD also tortie-node's
# IdleHold as its error wait (1-60 s; its default, 60-300 s, keeps a client
# whose first attempt failed out for minutes); BIRD is poked with a
# CLI request every 50 ms (it may sit on its last UPDATEs while idle,
# TESTING.md). Alternating, ROUNDS
# rounds; per run: setup (clients' start → every session up), failed
# attempts, reflect (first announcement → every client holds every other
# client's prefixes), total, RR CPU; then the medians.
#
# SETTLE > 0 delays the announcements that long after every session is up
# (FRR delays its first UPDATEs to new peers by its coalesce time, 10 s at
# 200 peers): `reflect` then measures propagation alone; `total` still
# counts from the start and includes the wait.
#
#   sudo -E bgp/speaker/benches/fanout.sh [CLIENTS=200] [PER=100] [ROUNDS=3] [KINDS="tortie frr bird"] [SETTLE=0]
set -euo pipefail
CLIENTS=${1:-200}
PER=${2:-100}
ROUNDS=${3:-3}
KINDS=${4:-"tortie frr bird"}
SETTLE=${5:-0}
cd "$(dirname "$0")/../../.."
cargo build --release -q -p tortie-bgp-speaker --example rrclients
cargo build --release -q -p tortie-node -p tortiectl
REL="${CARGO_TARGET_DIR:-target}/release"
P="ttbf$$"
W=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    for f in "/var/run/frr/$P"/*.pid; do [ -f "$f" ] && kill -9 $(cat "$f") 2>/dev/null || true; done
    rm_netns
    rm -rf "/var/run/frr/${P}"; [ -n "${KEEP_WORKDIR:-}" ] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT

(( CLIENTS <= 254 )) || { echo "at most 254 clients" >&2; exit 2; }
src() { echo "10.90.1.$(( 1 + $1 ))"; }
# Fresh namespaces for every run: nothing one RR leaves (FRR's zebra
# routes, sockets) reaches the next.
mk_netns() {
    ip netns add "${P}d"; ip netns add "${P}c"
    ip -n "${P}d" link add eth0 type veth peer name eth0 netns "${P}c"
    ip -n "${P}d" addr add 10.90.0.1/16 dev eth0
    for n in d c; do ip -n "$P$n" link set eth0 up; ip -n "$P$n" link set lo up; done
    for i in $(seq 0 $((CLIENTS - 1))); do echo "addr add $(src "$i")/16 dev eth0"; done | ip -n "${P}c" -batch -
}
rm_netns() {
    ip netns del "${P}d" 2>/dev/null || true
    ip netns del "${P}c" 2>/dev/null || true
}

# tortie-node: the cluster in a SQLite datastore.
{
    cat <<EOF
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 65001, nodeToNodeMeshEnabled: false}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: bench}
spec: {cidr: 10.0.0.0/11, blockSize: 26}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: to-rr}
spec: {nodeSelector: all(), peerSelector: "route-reflector == 'true'"}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: rr, labels: {route-reflector: "true"}}
spec: {bgp: {ipv4Address: 10.90.0.1/16, routeReflectorClusterID: 10.99.0.1}}
EOF
    for i in $(seq 0 $((CLIENTS - 1))); do
        printf -- '---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: c%d}\nspec: {bgp: {ipv4Address: %s/16}}\n' "$i" "$(src "$i")"
    done
} > "$W/cluster.yaml"
# FRR: one peer group of clients.
{
    echo "frr defaults traditional"
    echo "hostname rr"
    echo "router bgp 65001"
    echo " bgp router-id 10.90.0.1"
    echo " bgp cluster-id 10.99.0.1"
    echo " no bgp ebgp-requires-policy"
    echo " no bgp network import-check"
    echo " neighbor C peer-group"
    echo " neighbor C remote-as 65001"
    echo " neighbor C port 17901"
    echo " neighbor C timers 80 240"
    echo " neighbor C timers connect 5"
    for i in $(seq 0 $((CLIENTS - 1))); do echo " neighbor $(src "$i") peer-group C"; done
    echo " address-family ipv4 unicast"
    echo "  neighbor C route-reflector-client"
    echo " exit-address-family"
    echo "exit"
} > "$W/frr.conf"
mkdir -p "$W/$P"; : > "$W/$P/vtysh.conf"
chmod -R a+rX "$W"
# BIRD: one protocol per client.
{
    echo 'router id 10.90.0.1; protocol device { scan time 10; }'
    for i in $(seq 0 $((CLIENTS - 1))); do
        echo "protocol bgp c$i { local 10.90.0.1 port 17901 as 65001; neighbor $(src "$i") port 17901 as 65001; direct;"
        echo "  connect retry time 5; error wait time 1, 60; rr client; rr cluster id 10.99.0.1; hold time 240;"
        echo "  ipv4 { import all; export all; gateway direct; }; }"
    done
} > "$W/bird.conf"

metrics_peers() {
    ip netns exec "${P}d" bash -c 'exec 3<>/dev/tcp/127.0.0.1/9099; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; cat <&3' 2>/dev/null |
        grep -c '^tortie_bgp_peer_state' || true
}
wait_for() { # deadline-seconds command...
    local end=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        (( $(date +%s) < end )) || { echo "timeout: $*" >&2; return 1; }
        sleep 0.05
    done
}
listening() { ip netns exec "${P}d" ss -ltn | grep -q ":17901 "; }
tortie_ready() { listening && [ "$(metrics_peers)" = "$CLIENTS" ]; }
frr_ready() { listening && vtysh -N "$P" --config_dir "$W" -c 'show bgp summary' 2>/dev/null | grep -q "Peers $CLIENTS"; }
bird_ready() { listening && birdc -s "$W/bird.ctl" show status 2>/dev/null | grep -q 'Daemon is up'; }

start_rr() { # kind -> sets RR_PID (the process whose CPU is counted)
    case "$1" in
    tortie)
        rm -f "$W/t.db"
        "$REL/tortiectl" --datastore "sqlite://$W/t.db" apply -f "$W/cluster.yaml" >/dev/null
        ip netns exec "${P}d" env RUST_LOG=warn "$REL/tortie-node" --datastore "sqlite://$W/t.db" \
            --node-name rr --dataplane none --ip-autodetect interface=eth0 --bgp-port 17901 \
            --control-socket "$W/rr.sock" >"$W/node.log" 2>&1 &
        RR_PID=$!; PIDS+=("$RR_PID")
        wait_for 60 tortie_ready ;;
    frr)
        mkdir -p "/var/run/frr/$P"; chown frr:frr "/var/run/frr/$P"
        for d in zebra bgpd; do
            local extra=(); [ "$d" = bgpd ] && extra=(-p 17901)
            ip netns exec "${P}d" "/usr/lib/frr/$d" -d -N "$P" -f "$W/frr.conf" -i "/var/run/frr/$P/$d.pid" -A 127.0.0.1 "${extra[@]}"
        done
        RR_PID=$(cat "/var/run/frr/$P/bgpd.pid")
        wait_for 60 frr_ready ;;
    bird)
        rm -f "$W/bird.ctl"
        ip netns exec "${P}d" bird -f -c "$W/bird.conf" -s "$W/bird.ctl" >/dev/null 2>&1 &
        RR_PID=$!; PIDS+=("$RR_PID")
        wait_for 60 bird_ready ;;
    esac
}

stop_rr() {
    kill -9 "$RR_PID" 2>/dev/null || true
    for f in "/var/run/frr/$P"/*.pid; do [ -f "$f" ] && { kill -9 $(cat "$f") 2>/dev/null || true; rm -f "$f"; }; done
    wait "$RR_PID" 2>/dev/null || true
}

run() { # kind
    mk_netns
    start_rr "$1"
    local out cpu poker=
    if [ "$1" = bird ]; then
        # BIRD 2.0.12 may sit on its last UPDATEs while idle until a CLI
        # request wakes it (TESTING.md): poke it every 50 ms.
        (while :; do birdc -s "$W/bird.ctl" show status >/dev/null 2>&1; sleep 0.05; done) &
        poker=$!
    fi
    out=$(timeout 120 ip netns exec "${P}c" "$REL/examples/rrclients" 10.90.0.1:17901 "$(src 0)" "$CLIENTS" "$PER" "$SETTLE" 2>"$W/rrclients.err") ||
        out="clients=$CLIENTS setup=nan failed=nan reflect=nan total=nan (rrclients: $(grep -m1 -i error "$W/rrclients.err"))"
    cpu=$(awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$RR_PID/stat")
    [ -n "$poker" ] && { kill "$poker" 2>/dev/null || true; wait "$poker" 2>/dev/null || true; }
    stop_rr
    rm_netns
    printf '%-6s %s rr_cpu=%s\n' "$1" "$out" "$cpu" | tee -a "$W/results"
}

for _ in $(seq "$ROUNDS"); do
    for k in $KINDS; do run "$k"; done
done
echo "medians over $ROUNDS rounds ($CLIENTS clients x $PER prefixes):"
for k in $KINDS; do
    for f in setup reflect total rr_cpu; do
        grep "^$k " "$W/results" | tr ' ' '\n' | awk -F= -v f="$f" '$1 == f { print $2 }' | sort -g |
            awk -v k="$k" -v f="$f" '{ v[NR] = $1 } END { m = int((NR + 1) / 2); printf "  %-6s %-7s %s\n", k, f, v[m] }'
    done
done
