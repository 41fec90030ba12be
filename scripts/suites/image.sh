#!/usr/bin/env bash
# The container image, end to end: scripts/build-image.sh builds it into a
# podman storage of this suite's own (the machine's podman storage is never
# touched), then:
#   - (--release) its size is at most 40 MiB;
#   - every binary runs in a container (tortie-node, tortiectl, install-cni
#     --version; tortie and tortie-ipam answer CNI VERSION; ip and nft);
#   - install-cni run with temporary "host" folders mounted at /host/... as
#     the DaemonSet mounts them installs the plugins and 10-tortie.conflist,
#     the installed plugin runs on this host, and a second run writes nothing;
#   - tortie-node from the image runs in a network namespace of the suite's
#     own (host network of that namespace, privileged, as the DaemonSet):
#     it autodetects its address with the image's `ip`, creates the default
#     pool from TORTIE_IPV4POOL_*, programs natOutgoing with the image's
#     `nft`, writes the MTU file, answers /livez and `tortiectl node status`;
#   - `tortie-node --cleanup` from the image then removes the NAT table, the
#     MTU file and what install-cni wrote.
#
#   bash scripts/suites/image.sh            # CI (scripts/test-all.sh): quick
#   bash scripts/suites/image.sh --release  # the image as shipped, size-checked
#
# By default the image is built from the debug binaries the test run already
# has (`build-image.sh --binaries target/debug`: the same script, layout,
# entries, ip/nft and checks, with the binaries' shared libraries instead of
# static linking) so that CI spends seconds, not the ~10 min of the release
# build. --release builds the static `image`-profile binaries as
# `build-image.sh` does by default and checks the size limit and that every
# binary of ours is static (see docs/kubernetes.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"

MAX_MIB=40
RELEASE=0
case "${1:-}" in
  "") ;;
  --release) RELEASE=1 ;;
  *) echo "usage: $0 [--release]" >&2; exit 2 ;;
esac
IMAGE=localhost/tortie
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/tortie-image-suite.XXXXXX")
NS="tt-img$$"
CTR="tt-img$$-node"
printf '[containers]\ndefault_ulimits = []\npids_limit = 0\n' >"$WORK/containers.conf"
export CONTAINERS_CONF="$WORK/containers.conf"
PM=(podman --root "$WORK/storage" --runroot "$WORK/run" --cgroup-manager=cgroupfs)

cleanup() {
  "${PM[@]}" rm -f -t 0 "$CTR" >/dev/null 2>&1 || true
  ip netns del "$NS" 2>/dev/null || true
  # The storage's overlay mounts, deepest first, before removing the folder.
  { findmnt -rn -o TARGET | grep "^$WORK/" | sort -r | while read -r m; do umount -l "$m"; done; } || true
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "image: FAIL: $*" >&2; exit 1; }

start=$(date +%s)
if ((RELEASE)); then
  scripts/build-image.sh --root "$WORK/storage" --runroot "$WORK/run"
else
  cargo build --locked -q -p tortie-node -p tortiectl -p tortie-cni --bins
  scripts/build-image.sh --root "$WORK/storage" --runroot "$WORK/run" \
    --binaries "${CARGO_TARGET_DIR:-$PWD/target}/debug"
fi
built=$(date +%s)
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)

size=$("${PM[@]}" image inspect --format '{{.Size}}' "$IMAGE:latest")
mib=$(awk -v s="$size" 'BEGIN{printf "%.1f", s/1048576}')
if ((RELEASE)); then
  echo "image: $IMAGE:$VERSION is $size bytes ($mib MiB), limit $MAX_MIB MiB"
  ((size <= MAX_MIB * 1048576)) || fail "the image is larger than $MAX_MIB MiB"
else
  echo "image: $IMAGE:$VERSION from the debug binaries is $size bytes ($mib MiB) (the size limit applies to --release)"
fi
[ "$("${PM[@]}" image inspect --format '{{.Id}}' "$IMAGE:$VERSION")" = \
  "$("${PM[@]}" image inspect --format '{{.Id}}' "$IMAGE:latest")" ] || fail ":$VERSION and :latest differ"

run() { "${PM[@]}" run --rm --network none "$@"; }
for b in tortie-node tortiectl install-cni; do
  out=$(run "$IMAGE:latest" "$b" --version)
  [[ "$out" == *"$VERSION"* ]] || fail "$b --version printed: $out"
  echo "image: $b --version: $out"
done
for b in tortie tortie-ipam; do
  out=$(run -e CNI_COMMAND=VERSION "$IMAGE:latest" "$b")
  [[ "$out" == *'"supportedVersions"'* ]] || fail "$b VERSION printed: $out"
done
run "$IMAGE:latest" ip -V >/dev/null || fail "ip does not run in the image"
run "$IMAGE:latest" nft --version >/dev/null || fail "nft does not run in the image"
echo "image: every binary runs in a container"

# install-cni as the DaemonSet's init container runs it.
mkdir -p "$WORK/host/bin" "$WORK/host/net"
install_cni() {
  "${PM[@]}" run --rm --network none \
    -v "$WORK/host/bin:/host/opt/cni/bin" -v "$WORK/host/net:/host/etc/cni/net.d" \
    -e TORTIE_DATASTORE=etcd://10.0.0.10:2379 -e TORTIE_NODENAME=node-1 \
    "$IMAGE:latest" install-cni
}
first=$(install_cni)
echo "$first"
for f in bin/tortie bin/tortie-ipam bin/portmap net/10-tortie.conflist; do
  [ -s "$WORK/host/$f" ] || fail "install-cni did not write $f"
done
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); assert c["plugins"][0]["nodename"]=="node-1", c' \
  "$WORK/host/net/10-tortie.conflist" || fail "10-tortie.conflist is not what was asked"
CNI_COMMAND=VERSION "$WORK/host/bin/tortie" | grep -q supportedVersions ||
  fail "the installed plugin does not run on this host"
before=$(stat -c '%n %i %Y' "$WORK"/host/bin/* "$WORK"/host/net/*)
second=$(install_cni)
after=$(stat -c '%n %i %Y' "$WORK"/host/bin/* "$WORK"/host/net/*)
[ "$before" = "$after" ] || fail "a second install-cni rewrote files: $second"
[[ "$second" != *installed* && "$second" != *updated* ]] || fail "second install-cni: $second"
echo "image: install-cni installed into the host folders; the rerun wrote nothing"

# tortie-node from the image in a namespace of our own.
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add eth0 type veth peer name eth1
ip -n "$NS" addr add 10.99.0.1/24 dev eth0
ip -n "$NS" link set eth0 up
ip -n "$NS" link set eth1 up
mkdir -p "$WORK/node/run" "$WORK/node/calico" "$WORK/node/db"
modules=()
[ -d /lib/modules ] && modules=(-v /lib/modules:/lib/modules:ro)
"${PM[@]}" run -d --name "$CTR" --network "ns:/var/run/netns/$NS" --privileged \
  -v "$WORK/node/run:/run/tortie" -v "$WORK/node/calico:/var/lib/calico" \
  -v "$WORK/node/db:/var/lib/tortie" "${modules[@]}" \
  -e TORTIE_DATASTORE=sqlite:///var/lib/tortie/tortie.db -e TORTIE_NODENAME=img-node \
  -e TORTIE_IP_AUTODETECT=interface=eth0 -e TORTIE_BGP_PORT=17990 \
  -e TORTIE_IPV4POOL_CIDR=10.98.0.0/16 -e TORTIE_IPV4POOL_NAT_OUTGOING=true \
  "$IMAGE:latest" >/dev/null

status=""
deadline=$(($(date +%s) + 60))
until status=$("${PM[@]}" exec "$CTR" tortiectl node status -o json 2>/dev/null) &&
  ip netns exec "$NS" nft list table ip tortie-nat >/dev/null 2>&1 &&
  [ -s "$WORK/node/calico/mtu" ]; do
  if (($(date +%s) > deadline)); then
    "${PM[@]}" logs "$CTR" >&2 || true
    fail "tortie-node in the image: no status, NAT table or MTU file within 60 s (status: $status)"
  fi
  if [ "$("${PM[@]}" inspect --format '{{.State.Running}}' "$CTR")" != true ]; then
    "${PM[@]}" logs "$CTR" >&2 || true
    fail "tortie-node in the image exited"
  fi
  sleep 0.2
done
python3 - "$status" <<'EOF' || fail "node status: $status"
import json, sys
s = json.loads(sys.argv[1])
assert s["node"] == "img-node" and s["router_id"] == "10.99.0.1", s
EOF
livez=$(ip netns exec "$NS" bash -c 'exec 3<>/dev/tcp/127.0.0.1/9099; printf "GET /livez HTTP/1.0\r\n\r\n" >&3; cat <&3')
[[ "$livez" == *"200 OK"* ]] || fail "/livez: $livez"
pools=$("${PM[@]}" exec "$CTR" tortiectl --datastore sqlite:///var/lib/tortie/tortie.db get ippools -o json)
[[ "$pools" == *10.98.0.0/16* ]] || fail "no default pool: $pools"
"${PM[@]}" stop -t 10 "$CTR" >/dev/null
echo "image: tortie-node ran from the image: address 10.99.0.1 autodetected, default pool created, natOutgoing programmed with nft, MTU file $(cat "$WORK/node/calico/mtu"), /livez and node status answered"

# Removal: tortie-node --cleanup from the image takes off what the agent
# and install-cni put on the "node".
cleanup_out=$("${PM[@]}" run --rm --network "ns:/var/run/netns/$NS" --privileged \
  -v "$WORK/node/run:/run/tortie" -v "$WORK/node/calico:/var/lib/calico" \
  -v "$WORK/node/db:/var/lib/tortie" \
  -v "$WORK/host/bin:/host/opt/cni/bin" -v "$WORK/host/net:/host/etc/cni/net.d" \
  "$IMAGE:latest" tortie-node --cleanup --datastore sqlite:///var/lib/tortie/tortie.db \
  --node-name img-node --cni-bin-dir /host/opt/cni/bin --cni-conf-dir /host/etc/cni/net.d) ||
  fail "tortie-node --cleanup from the image failed: $cleanup_out"
! ip netns exec "$NS" nft list table ip tortie-nat >/dev/null 2>&1 || fail "cleanup left the NAT table"
[ ! -e "$WORK/node/calico/mtu" ] || fail "cleanup left the MTU file"
for f in bin/tortie bin/tortie-ipam net/10-tortie.conflist; do
  [ ! -e "$WORK/host/$f" ] || fail "cleanup left $f"
done
echo "image: tortie-node --cleanup from the image removed the NAT table, the MTU file and install-cni's files"
echo "image: OK ($mib MiB; build $((built - start)) s, checks $(($(date +%s) - built)) s)"
