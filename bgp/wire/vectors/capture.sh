#!/bin/bash
# Captures real BGP sessions with BIRD 2, FRR and GoBGP into hex vectors.
#
# Builds network namespaces (ttcap<pid>-*: a recorder and one per daemon, joined
# by veth pairs), starts each daemon with a few routes (IPv4 /26 and /32, IPv6
# /64, communities, large and extended communities, MED, 4-octet AS paths),
# lets recorder.py peer with them and writes bgp/wire/vectors/<peer>.hex.
# Needs root and the Debian packages bird2, frr, gobgpd, python3.
# Everything it creates is removed on exit (trap), also on failure.
#
# Usage: bgp/wire/vectors/capture.sh [OUT_DIR]   (default: this directory)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE}
PFX="ttcap$$-"
WORK=$(mktemp -d /tmp/ttcap.XXXXXX)
PIDS=()
NSS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for f in "$WORK"/*.pid "/var/run/frr/${PFX}frr"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
    for ns in "${NSS[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK" "/var/run/frr/${PFX}frr"
}
trap cleanup EXIT

# wait_for DESCRIPTION SECONDS COMMAND...: poll COMMAND every 0.1 s until it succeeds.
wait_for() {
    local what=$1 secs=$2
    shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$end" ]; then echo "timed out waiting for $what" >&2; exit 1; fi
        sleep 0.1
    done
}

REC=${PFX}rec
ip netns add "$REC"; NSS+=("$REC")
ip -n "$REC" link set lo up
i=0
for peer in bird frr gobgp; do
    i=$((i + 1))
    ns=${PFX}$peer
    ip netns add "$ns"; NSS+=("$ns")
    ip -n "$REC" link add "v$peer" type veth peer name eth0 netns "$ns"
    ip -n "$REC" addr add "10.99.$i.1/24" dev "v$peer"
    ip -n "$REC" addr add "fd99:$i::1/64" dev "v$peer" nodad
    ip -n "$REC" link set "v$peer" up
    ip -n "$ns" addr add "10.99.$i.2/24" dev eth0
    ip -n "$ns" addr add "fd99:$i::2/64" dev eth0 nodad
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
done

# --- BIRD 2: two sessions, one modern (4-octet AS, ADD-PATH tx, extended
# messages), one legacy (2-octet AS: AS4_PATH/AS4_AGGREGATOR appear).
{
    echo 'router id 10.99.1.2;'
    echo 'protocol device {}'
    echo 'protocol static s4 { ipv4;'
    echo '  route 10.244.1.0/26 blackhole; route 10.244.1.64/26 blackhole;'
    for a in $(seq 0 3); do for b in $(seq 1 250); do echo "  route 10.250.$a.$b/32 blackhole;"; done; done
    echo '}'
    echo 'protocol static s6 { ipv6; route 2001:db8:1::/64 blackhole; route 2001:db8:1:1::/64 blackhole; }'
    cat <<'CONF'
filter out4 { bgp_community.add((65001,100)); bgp_large_community.add((65001,1,2));
  bgp_ext_community.add((rt,65001,7)); bgp_med = 50; accept; }
filter legacy4 { bgp_path.prepend(4200000001); bgp_path.prepend(4200000002);
  accept; }
template bgp rec {
  local 10.99.1.2 as 65001;
  connect delay time 1; connect retry time 2; error wait time 1, 2;
  hold time 90;
}
protocol bgp modern from rec {
  neighbor 10.99.1.1 port 17900 as 65000;
  enable extended messages on;
  ipv4 { import none; export filter out4; add paths tx; };
  ipv6 { import none; export filter out4; next hop address fd99:1::2; add paths tx; };
}
protocol bgp legacy from rec {
  neighbor 10.99.1.1 port 17901 as 65000;
  enable as4 off;
  ipv4 { import none; export filter legacy4; };
  ipv6 { import none; export all; next hop address fd99:1::2; };
}
CONF
} > "$WORK/bird.conf"
ip netns exec "${PFX}bird" bird -c "$WORK/bird.conf" -s "$WORK/bird.ctl" -P "$WORK/bird.pid"

# --- FRR: plain session, route-map attributes, IPv6 over the IPv4 session.
mkdir -p "/var/run/frr/${PFX}frr"
chown frr:frr "/var/run/frr/${PFX}frr"
cat > "$WORK/frr.conf" <<'CONF'
frr defaults traditional
hostname frr
!
router bgp 65002
 bgp router-id 10.99.2.2
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.99.2.1 remote-as 65000
 neighbor 10.99.2.1 port 17900
 neighbor 10.99.2.1 timers connect 1
 neighbor 10.99.2.1 update-source 10.99.2.2
 !
 address-family ipv4 unicast
  network 10.245.0.0/26
  network 10.245.0.64/26
  network 10.245.1.1/32
  neighbor 10.99.2.1 route-map OUT out
 exit-address-family
 address-family ipv6 unicast
  network 2001:db8:2::/64
  neighbor 10.99.2.1 activate
  neighbor 10.99.2.1 route-map OUT6 out
 exit-address-family
!
route-map OUT permit 10
 set community 65002:100 no-export additive
 set large-community 65002:1:2
 set extcommunity rt 65002:7
 set metric 20
 set as-path prepend 65002
!
route-map OUT6 permit 10
 set ipv6 next-hop global fd99:2::2
!
CONF
chmod 644 "$WORK/frr.conf"
touch "$WORK/zebra.conf"; chmod 644 "$WORK/zebra.conf"
chmod 755 "$WORK"
ip netns exec "${PFX}frr" /usr/lib/frr/zebra -d -N "${PFX}frr" -f "$WORK/zebra.conf" -i "/var/run/frr/${PFX}frr/zebra.pid" -A 127.0.0.1
wait_for "zebra" 10 test -S "/var/run/frr/${PFX}frr/zserv.api"
ip netns exec "${PFX}frr" /usr/lib/frr/bgpd -d -N "${PFX}frr" -f "$WORK/frr.conf" -i "/var/run/frr/${PFX}frr/bgpd.pid" -A 127.0.0.1

# --- GoBGP: ADD-PATH send for IPv4, routes added over its API before the session.
cat > "$WORK/gobgp.toml" <<'CONF'
[global.config]
  as = 65003
  router-id = "10.99.3.2"
  port = -1
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.99.3.1"
    peer-as = 65000
  [neighbors.transport.config]
    remote-port = 17900
    local-address = "10.99.3.2"
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 90
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.add-paths.config]
      send-max = 8
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
CONF
ip netns exec "${PFX}gobgp" gobgpd -f "$WORK/gobgp.toml" -t toml --api-hosts=127.0.0.1:50051 --pprof-disable \
    > "$WORK/gobgpd.log" 2>&1 &
PIDS+=($!)
GOBGP=(ip netns exec "${PFX}gobgp" gobgp)
wait_for "gobgpd API" 15 "${GOBGP[@]}" global
"${GOBGP[@]}" global rib add -a ipv4 10.246.0.0/26 nexthop 10.99.3.2 community 65003:100 med 10 large-community 65003:1:2 aspath 65010,65011
"${GOBGP[@]}" global rib add -a ipv4 10.246.0.64/26 nexthop 10.99.3.2 origin incomplete local-pref 200
"${GOBGP[@]}" global rib add -a ipv4 10.246.1.1/32 nexthop 10.99.3.2
"${GOBGP[@]}" global rib add -a ipv6 2001:db8:3::/64 nexthop fd99:3::2 community 65003:6
wait_for "bird control socket" 10 test -S "$WORK/bird.ctl"

VERSIONS="BIRD $(bird --version 2>&1 | awk '{print $3}'), FRR $(/usr/lib/frr/bgpd --version | awk 'NR==1{print $3}'), GoBGP $(gobgpd --version | awk '{print $3}')"
DATE=$(date -u +%Y-%m-%d)
ip netns exec "$REC" python3 "$HERE/recorder.py" --out "$OUT" --timeout 90 \
    --peer "bird,10.99.1.2,17900,modern,BIRD modern session (4-octet AS, ADD-PATH tx, extended messages); $VERSIONS; captured $DATE by capture.sh" \
    --peer "bird-legacy,10.99.1.2,17901,legacy,BIRD legacy session (2-octet AS: AS4_PATH); $VERSIONS; captured $DATE by capture.sh" \
    --peer "frr,10.99.2.2,17900,modern,FRR session; $VERSIONS; captured $DATE by capture.sh" \
    --peer "gobgp,10.99.3.2,17900,modern,GoBGP session (ADD-PATH tx for IPv4); $VERSIONS; captured $DATE by capture.sh" \
    --shutdown-cmd "bird=birdc -s $WORK/bird.ctl 'disable modern \"maintenance window\"'"
echo "wrote $(ls "$OUT"/*.hex | wc -l) vector files to $OUT"
