#!/bin/sh
# Runs INSIDE the IPIP test VM (Debian kernel with the ipip module loaded).
# The whole product in IPIP CrossSubnet mode (issue #9): `tortiectl lab up
# --nodes 3 --pods-per-node 1 --mode ipip-crosssubnet` builds
#
#                        vmlab-router (br1 10.0.1.1/24, br2 10.0.2.1/24)
#                 r-node1 /        r-node2 |            \ r-node3
#   vmlab-node1 10.0.1.11    vmlab-node2 10.0.1.12    vmlab-node3 10.0.2.13
#        └ node1-pod1             └ node2-pod1             └ node3-pod1
#
# with tortie-node in each node namespace on one SQLite file, the pods made
# by the tortie CNI plugin and tortie-ipam, the router without pod routes.
# Checks: every pod reaches every pod (`lab ping -o json`); on node1 the
# block of node3 (other subnet) is routed via 10.0.2.13 dev tunl0 onlink and
# the block of node2 (same subnet) via 10.0.1.12 dev eth0; node3 routes both
# subnet-1 blocks through tunl0; tunl0 is up with an address from the pool;
# pod interfaces have MTU 1480; node1-pod1 -> node3-pod1 crosses the router
# as IP protocol 4 (outer 10.0.1.11 <-> 10.0.2.13), node1-pod1 ->
# node2-pod1 as plain ICMP. The running agent repairs IPIP state (issue
# 14): on node1 the route through tunl0 deleted, tunl0's address flushed
# and tunl0 set down all come back, while a route of FRR's number 186 in
# the pool stays; then `lab down` removes every namespace and the state
# directory. Prints "IPIP-LAB-TEST: PASS" or "IPIP-LAB-TEST: FAIL why".
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
CTL=${TORTIECTL:?TORTIECTL not set}
L=vmlab
W=$(mktemp -d /tmp/lab.XXXXXX)
TCPDUMP_PID=""
UP=""
cleanup() {
    [ -n "$TCPDUMP_PID" ] && kill "$TCPDUMP_PID" 2>/dev/null
    [ -n "$UP" ] && "$CTL" lab down --name "$L" >/dev/null 2>&1
    rm -rf "$W"
}
trap cleanup EXIT
logs() { # the agents' logs, for a failure
    for f in /run/tortie-lab/$L/*.log; do
        [ -e "$f" ] || continue
        echo "guest: --- $f (last 15 lines)"; tail -n 15 "$f" | sed 's/^/  /'
    done
}
fail() { logs; echo "IPIP-LAB-TEST: FAIL $*"; exit 1; }
now() { cut -d' ' -f1 /proc/uptime; }

t=$(now)
UP=1
"$CTL" lab up --name "$L" --nodes 3 --pods-per-node 1 --mode ipip-crosssubnet >"$W/up.out" 2>&1 || {
    sed 's/^/  /' "$W/up.out"; fail "lab up"; }
sed 's/^/  /' "$W/up.out"
echo "guest: lab up took $(echo "$(now) $t" | awk '{printf "%.1f", $1 - $2}') s (VM uptime)"
grep -q "^warning" "$W/up.out" && fail "lab up did not settle: $(grep '^warning' "$W/up.out")"

pod_ip() { ip -n "$L-$1" -4 -o addr show dev eth0 | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p'; }
P1=$(pod_ip node1-pod1); P2=$(pod_ip node2-pod1); P3=$(pod_ip node3-pod1)
echo "guest: pods node1-pod1 $P1, node2-pod1 $P2, node3-pod1 $P3"
[ -n "$P1" ] && [ -n "$P2" ] && [ -n "$P3" ] || fail "a pod has no address"

# Every pod reaches every pod.
t=$(now)
"$CTL" lab ping --name "$L" -o json >"$W/ping.json" 2>"$W/ping.err"; rc=$?
echo "guest: lab ping -o json: $(cat "$W/ping.json") (rc $rc, $(echo "$(now) $t" | awk '{printf "%.1f", $1 - $2}') s)"
[ $rc = 0 ] || fail "lab ping exited $rc: $(cat "$W/ping.err")"
grep -q '"total":6' "$W/ping.json" && grep -q '"ok":6' "$W/ping.json" && grep -q '"failed":\[\]' "$W/ping.json" ||
    fail "not every pod reached every pod: $(cat "$W/ping.json")"

# Routes: the remote subnet's blocks through tunl0 (onlink), the own subnet's directly.
for n in node1 node2 node3; do echo "guest: $n routes:"; ip -n "$L-$n" route | sed 's/^/  /'; done
route_line() { # ns gateway: the route(s) with that gateway
    ip -n "$L-$1" route | grep " via $2 "
}
r=$(route_line node1 10.0.2.13)
echo "$r" | grep -q "dev tunl0 .*onlink" || fail "node1: node3's block not via tunl0 onlink: $r"
r=$(route_line node1 10.0.1.12)
echo "$r" | grep -q "dev eth0" && ! echo "$r" | grep -q tunl0 || fail "node1: node2's block not direct on eth0: $r"
for gw in 10.0.1.11 10.0.1.12; do
    r=$(route_line node3 "$gw")
    echo "$r" | grep -q "dev tunl0 .*onlink" || fail "node3: block of $gw not via tunl0 onlink: $r"
done
ip -n "$L-node1" route get "$P3" | grep -q "via 10.0.2.13 dev tunl0" || fail "node1: route get $P3: $(ip -n "$L-node1" route get "$P3")"
ip -n "$L-node1" route get "$P2" | grep -q "via 10.0.1.12 dev eth0" || fail "node1: route get $P2: $(ip -n "$L-node1" route get "$P2")"
for n in node1 node3; do
    ip -n "$L-$n" link show tunl0 | grep -q "UP" || fail "$n: tunl0 not up: $(ip -n "$L-$n" link show tunl0)"
    ip -n "$L-$n" -4 addr show tunl0 | grep -q "inet 10\.244\." || fail "$n: tunl0 has no pool address: $(ip -n "$L-$n" addr show tunl0)"
done
for p in node1-pod1 node3-pod1; do
    ip -n "$L-$p" link show eth0 | grep -q "mtu 1480 " || fail "$p: eth0 MTU is not 1480: $(ip -n "$L-$p" link show eth0)"
done

capture() { # ns iface filter count
    rm -f "$W/cap.err"
    ip netns exec "$1" tcpdump -Z root -U --immediate-mode -c "$4" -ni "$2" -w "$W/cap.pcap" "$3" 2>"$W/cap.err" &
    TCPDUMP_PID=$!
    i=0; while ! grep -q 'listening on' "$W/cap.err" 2>/dev/null; do i=$((i+1)); [ $i -gt 300 ] && fail "tcpdump did not start"; sleep 0.1; done
}
stop_capture() {
    i=0; while kill -0 "$TCPDUMP_PID" 2>/dev/null && [ $i -lt 50 ]; do i=$((i+1)); sleep 0.1; done
    kill "$TCPDUMP_PID" 2>/dev/null; wait "$TCPDUMP_PID" 2>/dev/null; TCPDUMP_PID=""
    tcpdump -Z root -nr "$W/cap.pcap" 2>&1 | grep -v "^reading from"
    grep -v "listening on" "$W/cap.err" >&2
}

# Across subnets: IP-in-IP between the node addresses, seen on the router.
capture "$L-router" r-node3 'ip proto 4' 4
ip netns exec "$L-node1-pod1" ping -c2 -i0.3 -W3 "$P3" >/dev/null || fail "node1-pod1 -> node3-pod1 (cross-subnet) ping"
pc=$(stop_capture); echo "$pc" | sed 's/^/  r-node3: /'
echo "$pc" | grep -q "IP 10.0.1.11 > 10.0.2.13: IP $P1 > $P3: ICMP echo request" || fail "no IPIP echo request on the router"
echo "$pc" | grep -q "IP 10.0.2.13 > 10.0.1.11: IP $P3 > $P1: ICMP echo reply" || fail "no IPIP echo reply on the router"

# Same subnet: plain ICMP between the pods through the router's bridge, no protocol 4.
capture "$L-router" r-node1 'icmp or ip proto 4' 4
ip netns exec "$L-node1-pod1" ping -c2 -i0.3 -W3 "$P2" >/dev/null || fail "node1-pod1 -> node2-pod1 (same subnet) ping"
pc=$(stop_capture); echo "$pc" | sed 's/^/  r-node1: /'
echo "$pc" | grep -q "IP $P1 > $P2: ICMP echo request" || fail "no plain echo request in the subnet"
echo "$pc" | grep -q "IP $P2 > $P1: ICMP echo reply" || fail "no plain echo reply in the subnet"
echo "$pc" | grep -q "ipip\|proto IPIP\|: IP 10\.244\." && fail "same-subnet traffic was encapsulated"

# The running agent puts back what someone else removes (issue 14).
back() { # what condition: polls up to 10 s
    i=0; while ! eval "$2"; do i=$((i+1)); [ $i -gt 100 ] && fail "$1 did not come back"; sleep 0.1; done
    echo "guest: $1 came back after ~$((i * 100)) ms"
}
N1="$L-node1"
ip -n "$N1" route add 10.244.250.0/26 via 10.0.1.1 proto 186 || fail "adding a foreign route"
tun=$(route_line node1 10.0.2.13)
blk=$(echo "$tun" | cut -d' ' -f1)
ip -n "$N1" route del "$blk" || fail "ip route del $blk"
back "the route through tunl0" '[ "$(route_line node1 10.0.2.13)" = "$tun" ]'
addr=$(ip -n "$N1" -4 -o addr show tunl0 | awk '{print $4}')
ip -n "$N1" addr flush dev tunl0
back "tunl0's address" '[ "$(ip -n "$N1" -4 -o addr show tunl0 | awk "{print \$4}")" = "$addr" ]'
ip -n "$N1" link set tunl0 down
back "tunl0 up" 'ip -n "$N1" link show tunl0 | grep -q "[<,]UP[,>]"'
back "the route through tunl0 after tunl0 went down" '[ "$(route_line node1 10.0.2.13)" = "$tun" ]'
ip -n "$N1" route show 10.244.250.0/26 | grep -q "via 10.0.1.1 dev eth0 proto bgp" ||
    fail "the foreign route went: $(ip -n "$N1" route)"
ip netns exec "$L-node1-pod1" ping -c1 -W3 "$P3" >/dev/null || fail "node1-pod1 -> node3-pod1 after the repairs"

# Down: no namespace and no state left.
t=$(now)
UP=""
"$CTL" lab down --name "$L" >"$W/down.out" 2>&1 || { sed 's/^/  /' "$W/down.out"; fail "lab down"; }
sed 's/^/  /' "$W/down.out"
echo "guest: lab down took $(echo "$(now) $t" | awk '{printf "%.1f", $1 - $2}') s"
left=$(ip netns list | grep "^$L-")
[ -z "$left" ] || fail "namespaces left after lab down: $left"
[ ! -e "/run/tortie-lab/$L" ] || fail "state directory left after lab down"
echo "IPIP-LAB-TEST: PASS"
