#!/bin/sh
# Runs INSIDE the IPIP test VM (Debian kernel with the ipip module loaded).
# Three nodes as namespaces, programmed by tortie's felix (felix-apply):
#
#   pod1 -- n1 [10.10.1.2/24] --+-- br0 (r: 10.10.1.1/24) --+-- n3 [10.10.1.3/24] -- pod3
#                                          r (router, no pod routes)
#   pod2 -- n2 [10.10.2.2/24] ---- r-n2 (r: 10.10.2.1/24)
#
# Pool 192.168.0.0/16 in IPIP CrossSubnet mode. Checks: tunl0 up with its
# address and MTU; pod1 -> pod2 (across subnets) pings through IP-in-IP
# (IP protocol 4 seen on the underlay); pod1 -> pod3 (same subnet) pings
# unencapsulated; IPIP Always makes ECMP routes through tunl0; IPIP off
# removes tunl0's address. Prints "IPIP-TEST: PASS" or "IPIP-TEST: FAIL why".
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
FELIX=${FELIX_BIN:?FELIX_BIN not set}
W=$(mktemp -d /tmp/felix.XXXXXX)
NSS="r n1 n2 n3 pod1 pod2 pod3"
TCPDUMP_PID=""
cleanup() {
    [ -n "$TCPDUMP_PID" ] && kill "$TCPDUMP_PID" 2>/dev/null
    for ns in $NSS; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "IPIP-TEST: FAIL $*"; exit 1; }
sysctl_ns() { ip netns exec "$1" sh -c "echo $3 > /proc/sys/$2"; }

for ns in $NSS; do ip netns add "$ns" || fail "netns $ns"; ip -n "$ns" link set lo up; done
ip -n r link add br0 type bridge && ip -n r addr add 10.10.1.1/24 dev br0 && ip -n r link set br0 up
ip link add eth0 netns n1 type veth peer name r-n1 netns r || fail "veth n1"
ip link add eth0 netns n3 type veth peer name r-n3 netns r || fail "veth n3"
ip link add eth0 netns n2 type veth peer name r-n2 netns r || fail "veth n2"
ip -n r link set r-n1 master br0 up; ip -n r link set r-n3 master br0 up
ip -n r addr add 10.10.2.1/24 dev r-n2; ip -n r link set r-n2 up
sysctl_ns r net/ipv4/ip_forward 1

node() { # node ip gw pod pod_ip
    ip -n "$1" addr add "$2/24" dev eth0; ip -n "$1" link set eth0 up
    ip -n "$1" route add default via "$3"
    ip link add calipod netns "$1" type veth peer name eth0 netns "$4" || fail "veth $4"
    ip -n "$1" link set calipod up
    ip -n "$4" addr add "$5/32" dev eth0; ip -n "$4" link set eth0 up
    ip -n "$4" route add 169.254.1.1 dev eth0 scope link
    ip -n "$4" route add default via 169.254.1.1 dev eth0
}
node n1 10.10.1.2 10.10.1.1 pod1 192.168.1.5
node n2 10.10.2.2 10.10.2.1 pod2 192.168.2.5
node n3 10.10.1.3 10.10.1.1 pod3 192.168.3.5

block() { echo "{\"cidr\": \"$1\", \"nextHops\": [\"$2\"], \"source\": \"Bgp\"}"; }
input() { # name node_ip tunnel_ip block mode remote_blocks_json
    cat <<JSON
{"nodeName": "$1", "nodeIp": "$2/24", "ipipTunnelAddr": "$3",
 "pools": [{"cidr": "192.168.0.0/16", "ipipMode": "$5", "natOutgoing": true}],
 "workloads": [{"interface": "calipod", "addresses": ["${4%.0/26}.5"]}],
 "localBlocks": ["$4"], "remoteBlocks": [$6]}
JSON
}
apply() { # ns json
    echo "$2" >"$W/$1.json"
    out=$("$FELIX" --netns "/run/netns/$1" --mtu-file "$W/$1.mtu" --no-nat "$W/$1.json" 2>&1) || fail "felix-apply $1: $out"
    echo "guest: felix-apply $1: $out"
}
B1=$(block 192.168.1.0/26 10.10.1.2); B2=$(block 192.168.2.0/26 10.10.2.2); B3=$(block 192.168.3.0/26 10.10.1.3)
apply n1 "$(input n1 10.10.1.2 192.168.1.0 192.168.1.0/26 CrossSubnet "$B2, $B3")"
apply n2 "$(input n2 10.10.2.2 192.168.2.0 192.168.2.0/26 CrossSubnet "$B1, $B3")"
apply n3 "$(input n3 10.10.1.3 192.168.3.0 192.168.3.0/26 CrossSubnet "$B1, $B2")"

echo "guest: n1 routes:"; ip -n n1 route | sed 's/^/  /'
ip -n n1 -d link show tunl0 | grep -q "mtu 1480" || fail "tunl0 mtu: $(ip -n n1 link show tunl0)"
ip -n n1 link show tunl0 | grep -q "UP" || fail "tunl0 not up"
ip -n n1 addr show tunl0 | grep -q "inet 192.168.1.0/32" || fail "tunl0 address: $(ip -n n1 addr show tunl0)"
[ "$(cat "$W/n1.mtu")" = 1480 ] || fail "mtu file says $(cat "$W/n1.mtu")"
ip -n n1 route show 192.168.2.0/26 | grep -q "via 10.10.2.2 dev tunl0 proto 84 onlink" || fail "cross-subnet route: $(ip -n n1 route show 192.168.2.0/26)"
ip -n n1 route show 192.168.3.0/26 | grep -q "via 10.10.1.3 dev eth0 proto 84" || fail "same-subnet route: $(ip -n n1 route show 192.168.3.0/26)"

capture() { # ns iface filter count
    rm -f "$W/cap.err"
    ip netns exec "$1" tcpdump -Z root -U --immediate-mode -c "$4" -ni "$2" -w "$W/cap.pcap" "$3" 2>"$W/cap.err" &
    TCPDUMP_PID=$!
    i=0; while ! grep -q 'listening on' "$W/cap.err" 2>/dev/null; do i=$((i+1)); [ $i -gt 100 ] && fail "tcpdump did not start"; sleep 0.1; done
}
stop_capture() {
    i=0; while kill -0 "$TCPDUMP_PID" 2>/dev/null && [ $i -lt 50 ]; do i=$((i+1)); sleep 0.1; done
    kill "$TCPDUMP_PID" 2>/dev/null; wait "$TCPDUMP_PID" 2>/dev/null; TCPDUMP_PID=""
    tcpdump -Z root -nr "$W/cap.pcap" 2>&1 | grep -v "^reading from"
    grep -v "listening on" "$W/cap.err" >&2
}

# Across subnets: IP-in-IP on the underlay.
capture r r-n1 'ip proto 4' 4
ip netns exec pod1 ping -c2 -i0.3 -W3 192.168.2.5 >/dev/null || fail "pod1 -> pod2 (cross-subnet) ping"
pc=$(stop_capture); echo "$pc" | sed 's/^/  r-n1: /'
echo "$pc" | grep -q "IP 10.10.1.2 > 10.10.2.2: IP 192.168.1.5 > 192.168.2.5: ICMP echo request" || fail "no IPIP echo request on the underlay"
echo "$pc" | grep -q "IP 10.10.2.2 > 10.10.1.2: IP 192.168.2.5 > 192.168.1.5: ICMP echo reply" || fail "no IPIP echo reply on the underlay"

# Same subnet: plain ICMP between the pods, no protocol 4.
capture r r-n1 'icmp or ip proto 4' 4
ip netns exec pod1 ping -c2 -i0.3 -W3 192.168.3.5 >/dev/null || fail "pod1 -> pod3 (same subnet) ping"
pc=$(stop_capture); echo "$pc" | sed 's/^/  r-n1: /'
echo "$pc" | grep -q "IP 192.168.1.5 > 192.168.3.5: ICMP echo request" || fail "no plain echo request in the subnet"
echo "$pc" | grep -q "ipip\|proto IPIP\|: IP 192.168" && fail "same-subnet traffic was encapsulated"

# IPIP Always with two next hops: ECMP through tunl0.
apply n1 "$(input n1 10.10.1.2 192.168.1.0 192.168.1.0/26 Always "{\"cidr\": \"192.168.2.0/26\", \"nextHops\": [\"10.10.2.2\", \"10.10.1.3\"]}")"
r=$(ip -n n1 route show 192.168.2.0/26)
echo "$r" | grep -q "nexthop via 10.10.1.3 dev tunl0 weight 1 onlink" && echo "$r" | grep -q "nexthop via 10.10.2.2 dev tunl0 weight 1 onlink" || fail "ECMP through tunl0: $r"

# IPIP off (only the same-subnet block: a direct route needs an on-link gateway): tunl0 keeps no address.
apply n1 "$(input n1 10.10.1.2 192.168.1.0 192.168.1.0/26 Never "$B3")"
ip -n n1 addr show tunl0 | grep -q "inet " && fail "tunl0 kept its address with IPIP off"
echo "IPIP-TEST: PASS"
