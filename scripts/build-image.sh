#!/usr/bin/env bash
# Builds the OCI image localhost/tortie:latest and localhost/tortie:<version>
# (the workspace version) with podman FROM scratch: no base image is pulled.
#
#   scripts/build-image.sh [--root DIR --runroot DIR] [--output FILE] [--no-build | --binaries DIR]
#
# The image holds:
#   /usr/local/bin/  tortie-node, tortiectl, install-cni
#   /opt/cni/bin/    tortie, tortie-ipam (what install-cni copies to the host),
#                    portmap (Debian's containernetworking-plugins; installed
#                    on a host only when it has none)
#   /usr/sbin/       ip, nft (tortie-node runs them) with exactly the shared
#                    libraries they load (ldd) and the dynamic loader
# tortie, tortie-ipam and install-cni are one executable (`tortie-cni`,
# chosen by the name it runs as): /opt/cni/bin/tortie, with tortie-ipam and
# install-cni as symbolic links to it. Our binaries are built with the
# `image` profile (release code, whole-program LTO, stripped) and linked
# statically (glibc, crt-static), so the plugins install-cni copies run on
# any host whatever its libc.
#
# Options:
#   --root DIR --runroot DIR  podman storage to build into (default: podman's
#                             own, so that `podman run localhost/tortie` and
#                             `tortiectl lab --runtime podman` find it). The
#                             script adds or moves only the two tags above and
#                             removes only its own previous image they left
#                             untagged.
#   --output FILE             also write the image as an OCI archive (for
#                             `ctr -n k8s.io images import FILE` on a node, or
#                             `skopeo copy oci-archive:FILE docker://REGISTRY/...`)
#   --no-build                use the binaries already in target/ (after a
#                             previous run of this script)
#   --binaries DIR            no cargo build: take tortie-node, tortiectl and
#                             tortie-cni from DIR as they are, e.g. the debug
#                             build the tests already made (target/debug), for
#                             a quick image with the same layout and entries.
#                             A dynamically linked one gets exactly the shared
#                             libraries it loads (ldd), as ip and nft do; such
#                             an image is for this machine's tests (the plugins
#                             install-cni copies then need the host's libc) and
#                             is not the size-checked release image.
# Environment: TORTIE_IMAGE (default localhost/tortie), CONTAINERS_CONF (if
# unset, a file of our own with the settings this kernel needs is used).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

IMAGE=${TORTIE_IMAGE:-localhost/tortie}
ROOT_ARGS=()
OUTPUT=""
BUILD=1
BINARIES=""
while (($#)); do
  case "$1" in
    --root | --runroot)
      [ $# -ge 2 ] || { echo "build-image: $1 needs a folder" >&2; exit 2; }
      case "$2" in /*) ;; *) echo "build-image: $1 $2: must be an absolute path" >&2; exit 2 ;; esac
      ROOT_ARGS+=("$1" "$2"); shift 2 ;;
    --output)
      [ $# -ge 2 ] || { echo "build-image: --output needs a file name" >&2; exit 2; }
      OUTPUT=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --binaries)
      [ $# -ge 2 ] && [ -d "$2" ] || { echo "build-image: --binaries needs a folder" >&2; exit 2; }
      BINARIES=$(cd "$2" && pwd); BUILD=0; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

need_pkgs=()
command -v podman >/dev/null || need_pkgs+=(podman runc)
command -v strip >/dev/null || need_pkgs+=(binutils)
[ -x /usr/lib/cni/portmap ] || need_pkgs+=(containernetworking-plugins)
command -v nft >/dev/null || need_pkgs+=(nftables)
command -v ip >/dev/null || need_pkgs+=(iproute2)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || [ -e /usr/lib/aarch64-linux-gnu/libc.a ] || need_pkgs+=(libc6-dev)
if ((${#need_pkgs[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "build-image: missing ${need_pkgs[*]}; install them (apt-get install ${need_pkgs[*]}) or run as root" >&2
    exit 1
  fi
  echo "build-image: installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi

VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[ -n "$VERSION" ] || { echo "build-image: no version in Cargo.toml [workspace.package]" >&2; exit 1; }
TRIPLE="$(uname -m)-unknown-linux-gnu"
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
BIN_DIR=${BINARIES:-$TARGET_DIR/$TRIPLE/image}

if ((BUILD)); then
  echo "build-image: cargo build --profile image ($TRIPLE, statically linked)"
  # An explicit --target keeps crt-static off build scripts and proc macros
  # (which must stay dynamic).
  triple_var="CARGO_TARGET_$(echo "$TRIPLE" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
  env "$triple_var=-C target-feature=+crt-static" \
    cargo build --profile image --locked --target "$TRIPLE" \
    -p tortie-node -p tortiectl -p tortie-cni --bin tortie-node --bin tortiectl --bin tortie-cni
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tortie-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOTFS="$WORK/rootfs"
mkdir -p "$ROOTFS"/{usr/local/bin,opt/cni/bin,usr/sbin,tmp,run,var/lib/calico,etc/tortie/secrets}
chmod 1777 "$ROOTFS/tmp"

# The shared libraries PROGRAM loads, at the paths the loader looks them up
# by (and the loader itself, at the path in the ELF header).
copy_libs() { # PROGRAM
  local lib
  ldd "$1" | awk '/=> \//{print $3} /^\t\//{print $1}' | while read -r lib; do
    mkdir -p "$ROOTFS$(dirname "$lib")"
    cp -L "$lib" "$ROOTFS$lib"
  done
}

# Our binaries, stripped: statically linked (the release image), or with
# their libraries (--binaries).
place() { # SRC DEST_DIR
  local src=$1 dst=$2/$(basename "$1")
  [ -x "$src" ] || { echo "build-image: $src is missing (run without --no-build)" >&2; exit 1; }
  if readelf -l "$src" | grep -q 'program interpreter' || readelf -d "$src" | grep -q NEEDED; then
    if [ -z "$BINARIES" ]; then
      echo "build-image: $src is dynamically linked; expected a static build" >&2
      exit 1
    fi
    copy_libs "$src"
  fi
  strip -o "$dst" "$src"
}
for b in tortie-node tortiectl; do place "$BIN_DIR/$b" "$ROOTFS/usr/local/bin"; done
place "$BIN_DIR/tortie-cni" "$ROOTFS/opt/cni/bin"
mv "$ROOTFS/opt/cni/bin/tortie-cni" "$ROOTFS/opt/cni/bin/tortie"
ln -s tortie "$ROOTFS/opt/cni/bin/tortie-ipam"
ln -s ../../../opt/cni/bin/tortie "$ROOTFS/usr/local/bin/install-cni"
install -m 0755 /usr/lib/cni/portmap "$ROOTFS/opt/cni/bin/portmap"

# ip and nft with exactly the libraries they load.
copy_with_libs() { # PROGRAM
  local prog
  prog=$(command -v "$1")
  prog=$(readlink -f "$prog")
  install -D -m 0755 "$prog" "$ROOTFS/usr/sbin/$(basename "$prog")"
  copy_libs "$prog"
}
copy_with_libs ip
copy_with_libs nft

cat >"$WORK/Containerfile" <<EOF
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/opt/cni/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL org.opencontainers.image.title="tortie" \\
      org.opencontainers.image.description="tortie-node, tortiectl, install-cni and the tortie CNI plugins" \\
      org.opencontainers.image.version="$VERSION" \\
      org.opencontainers.image.licenses="Apache-2.0"
CMD ["tortie-node"]
EOF

if [ -z "${CONTAINERS_CONF:-}" ]; then
  # This kernel refuses the rlimits podman sets by default (TESTING.md).
  printf '[containers]\ndefault_ulimits = []\npids_limit = 0\n' >"$WORK/containers.conf"
  export CONTAINERS_CONF="$WORK/containers.conf"
fi
pm() { podman "${ROOT_ARGS[@]}" "$@"; }

previous=$(pm image inspect --format '{{.Id}}' "$IMAGE:latest" 2>/dev/null || true)
echo "build-image: podman build $IMAGE:$VERSION $IMAGE:latest"
pm build --quiet --pull=never --timestamp 0 -f "$WORK/Containerfile" \
  -t "$IMAGE:$VERSION" -t "$IMAGE:latest" "$WORK" >/dev/null
current=$(pm image inspect --format '{{.Id}}' "$IMAGE:latest")
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  tags=$(pm image inspect --format '{{len .RepoTags}}' "$previous" 2>/dev/null || echo 1)
  if [ "$tags" = 0 ]; then pm rmi "$previous" >/dev/null || true; fi
fi

size=$(pm image inspect --format '{{.Size}}' "$IMAGE:latest")
echo "build-image: $IMAGE:$VERSION ($IMAGE:latest) ${current:0:12}: $size bytes ($(awk -v s="$size" 'BEGIN{printf "%.1f", s/1048576}') MiB)"
if [ -n "$OUTPUT" ]; then
  rm -f "$OUTPUT"
  pm save --quiet --format oci-archive -o "$OUTPUT" "$IMAGE:$VERSION"
  echo "build-image: wrote $OUTPUT"
fi
