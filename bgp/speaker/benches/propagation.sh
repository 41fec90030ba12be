#!/usr/bin/env bash
# Propagation benchmark (TESTING.md method): N IPv4 /32 routes from a sender
# (BIRD, generated `protocol static`) through a DUT to a receiver (BIRD), all
# eBGP, three namespaces on a bridge. DUT = tortie's speakerd or BIRD 2,
# alternating, ROUNDS rounds; prints each run and the medians.
#
#   sudo bgp/speaker/benches/propagation.sh [ROUTES=100000] [ROUNDS=3]
#
# Clock: from the sender's session to the DUT reaching Established until the
# receiver holds all routes (counted every 20 ms). `set-up` is the time from
# the sender's start (connect delay 1 s, connect retry 1 s) to that session
# reaching Established (polled every 20 ms at the sender). Also prints the DUT's RSS
# once every route is through (minus its RSS before the sender came up), and
# the CPU time (utime + stime, 10 ms ticks) the DUT and the receiver used
# while the clock ran: on a loaded machine the time spreads widely, CPU less.
# Needs root, bird2; builds speakerd in release (CARGO_TARGET_DIR honoured).
set -euo pipefail
ROUTES=${1:-100000}
ROUNDS=${2:-3}
cd "$(dirname "$0")/../../.."
cargo build --release -q -p tortie-bgp-speaker --example speakerd
SPEAKERD="${CARGO_TARGET_DIR:-target}/release/examples/speakerd"
P="ttbp$$"
W=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    for n in d s r; do ip netns del "$P$n" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT

ip netns add "${P}d"; ip netns add "${P}s"; ip netns add "${P}r"
ip -n "${P}d" link add br0 type bridge
ip -n "${P}d" addr add 10.88.0.1/24 dev br0
ip -n "${P}d" link set br0 up
ip -n "${P}d" link set lo up
for pair in s:2 r:3; do
    n=${pair%%:*}; a=${pair##*:}
    ip -n "${P}d" link add "v$n" type veth peer name eth0 netns "$P$n"
    ip -n "${P}d" link set "v$n" master br0 up
    ip -n "$P$n" addr add "10.88.0.$a/24" dev eth0
    ip -n "$P$n" link set eth0 up
    ip -n "$P$n" link set lo up
done

# Sender: N /32s in 100.64.0.0/10, exported to the DUT.
{
    echo 'router id 10.88.0.2; protocol device { scan time 10; }'
    echo 'protocol static st { ipv4;'
    awk -v n="$ROUTES" 'BEGIN { for (i = 0; i < n; i++) printf "route 100.%d.%d.%d/32 blackhole;\n", 64 + int(i / 65536), int(i / 256) % 256, i % 256 }'
    echo '}'
    echo 'protocol bgp dut { local 10.88.0.2 port 17900 as 65002; neighbor 10.88.0.1 port 17901 as 65001;'
    echo '  connect delay time 1; connect retry time 1; error wait time 1, 2;'
    echo '  ipv4 { import none; export all; }; }'
} > "$W/sender.conf"
cat > "$W/receiver.conf" <<EOF
router id 10.88.0.3; protocol device { scan time 10; }
protocol bgp dut { local 10.88.0.3 port 17900 as 65003; neighbor 10.88.0.1 port 17901 as 65001;
  connect delay time 1; connect retry time 1; error wait time 1, 2;
  ipv4 { import all; export none; }; }
EOF
cat > "$W/dut-bird.conf" <<EOF
router id 10.88.0.1; protocol device { scan time 10; }
protocol bgp snd { local 10.88.0.1 port 17901 as 65001; neighbor 10.88.0.2 port 17900 as 65002;
  connect delay time 1; connect retry time 1; error wait time 1, 2; ipv4 { import all; export none; }; }
protocol bgp rcv { local 10.88.0.1 port 17901 as 65001; neighbor 10.88.0.3 port 17900 as 65003;
  connect delay time 1; connect retry time 1; error wait time 1, 2; ipv4 { import none; export all; }; }
EOF
peer() { echo "{\"address\": \"$1\", \"asn\": $2, \"port\": 17900, \"families\": [\"ipv4\"], \"timers\": {\"hold_time\": 90, \"connect_retry\": 1, \"idle_hold_ms\": 200}}"; }
cat > "$W/dut-tortie.json" <<EOF
{"speaker": {"asn": 65001, "router_id": "10.88.0.1", "listen": "10.88.0.1:17901",
  "peers": [$(peer 10.88.0.2 65002), $(peer 10.88.0.3 65003)]},
 "options": {"route_events": false}}
EOF

now() { date +%s.%N; }
bird_start() { # ns conf ctl -> pid
    ip netns exec "$1" bird -f -c "$2" -s "$3" >/dev/null 2>&1 &
    echo $!
}
established() { birdc -s "$1" show protocols "$2" 2>/dev/null | grep -q Established; }
count() { birdc -s "$1" show route count 2>/dev/null | awk '/routes for/ { print $1; exit }'; }
cpu_ms() { awk '{ print ($14 + $15) * 10 }' "/proc/$1/stat"; } # 100 Hz ticks
rss_kb() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
wait_for() { # deadline-seconds command...
    local end=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        (( $(date +%s) < end )) || { echo "timeout: $*" >&2; return 1; }
        sleep 0.02
    done
}
# BIRD 2.0.12 may sit on its last routes for up to 3 s while idle: a CLI
# request wakes it, so the sender (and a BIRD DUT) are polled too (TESTING.md).
full() {
    birdc -s "$W/s.ctl" show status >/dev/null 2>&1 || true
    [ -S "$W/d.ctl" ] && { birdc -s "$W/d.ctl" show status >/dev/null 2>&1 || true; }
    [ "$(count "$W/r.ctl")" = "$ROUTES" ]
}

run() { # dut kind
    rm -f "$W"/*.ctl
    local dut rcv snd ts t0 t1 rss0 rss1 c0 c1 r0 r1
    if [ "$1" = tortie ]; then
        ip netns exec "${P}d" env RUST_LOG=warn "$SPEAKERD" "$W/dut-tortie.json" >"$W/speakerd.log" 2>&1 &
        dut=$!
    else
        dut=$(bird_start "${P}d" "$W/dut-bird.conf" "$W/d.ctl")
    fi
    rcv=$(bird_start "${P}r" "$W/receiver.conf" "$W/r.ctl")
    PIDS+=("$dut" "$rcv")
    wait_for 30 established "$W/r.ctl" dut
    rss0=$(rss_kb "$dut")
    ts=$(now)
    snd=$(bird_start "${P}s" "$W/sender.conf" "$W/s.ctl")
    PIDS+=("$snd")
    wait_for 60 established "$W/s.ctl" dut
    t0=$(now); c0=$(cpu_ms "$dut"); r0=$(cpu_ms "$rcv")
    wait_for 120 full
    t1=$(now); c1=$(cpu_ms "$dut"); r1=$(cpu_ms "$rcv")
    rss1=$(rss_kb "$dut")
    kill -9 "$snd" "$rcv" "$dut" 2>/dev/null || true
    wait "$snd" "$rcv" "$dut" 2>/dev/null || true
    local secs; secs=$(echo "$t1 - $t0" | bc -l)
    local setup; setup=$(echo "$t0 - $ts" | bc -l)
    local bpr; bpr=$(echo "($rss1 - $rss0) * 1024 / $ROUTES" | bc)
    printf '%-6s set-up %5.3f s  %8d routes  %6.3f s  RSS +%d kB (%d B/route)  CPU DUT %d ms, receiver %d ms\n' \
        "$1" "$setup" "$ROUTES" "$secs" "$((rss1 - rss0))" "$bpr" "$((c1 - c0))" "$((r1 - r0))"
    echo "$1 $secs $bpr $setup" >> "$W/results"
}

for _ in $(seq "$ROUNDS"); do
    run tortie
    run bird
done
echo "medians over $ROUNDS rounds ($ROUTES routes):"
for k in tortie bird; do
    awk -v k="$k" '$1 == k { print $2, $3 }' "$W/results" | sort -n |
        awk -v k="$k" '{ t[NR] = $1; b[NR] = $2 } END { m = int((NR + 1) / 2); printf "  %-6s %.3f s, %d B/route", k, t[m], b[m] }'
    awk -v k="$k" '$1 == k { print $4 }' "$W/results" | sort -n |
        awk '{ s[NR] = $1 } END { m = int((NR + 1) / 2); printf ", set-up %.3f s\n", s[m] }'
done
