#!/usr/bin/env bash
# Installs what tortie needs on a fresh Debian 12 machine (run as root):
#   ./scripts/install-deps.sh demo   # build tools and what the demo uses (the default)
#   ./scripts/install-deps.sh test   # that, plus what the test suite uses
# Idempotent: installs only missing packages, and only installs. It never
# stops, disables, kills or reconfigures a service or a process: a
# distribution BIRD, FRR, etcd or GoBGP that runs (as Debian starts them
# when they are installed) keeps running. The tests and the demo start their
# own daemons inside network namespaces of their own, stop them by PID, and
# use their own ports, sockets and folders.
set -euo pipefail

profile=${1:-demo}

# The demo: `cargo build --release`, then `tortiectl lab` (namespaces, veths,
# sysctls, ping; felix's NAT uses nft; ipip mode loads a module).
DEMO_PKGS=(
  build-essential pkg-config ca-certificates
  protobuf-compiler libprotobuf-dev # the etcd client in tortie-datastore is always built
  iproute2 iputils-ping procps kmod nftables
)

# The test suite: real BGP peers and etcd, the reference CNI plugins, a
# container runtime, packet tools, TLS certificates for etcd, the IPIP VM.
TEST_PKGS=(
  "${DEMO_PKGS[@]}"
  git tcpdump curl psmisc sqlite3 python3 python3-venv openssl
  bird2 frr gobgpd
  etcd-server etcd-client
  containernetworking-plugins
  podman runc conmon busybox-static
  qemu-system-x86 cpio
)

case "$profile" in
  demo) PKGS=("${DEMO_PKGS[@]}") ;;
  test) PKGS=("${TEST_PKGS[@]}") ;;
  *)
    echo "usage: $0 [demo|test]" >&2
    exit 2
    ;;
esac

apt_install() {
  echo "install-deps: installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "$@"
}

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt_install "${missing[@]}"
fi

# Rust: the workspace needs 1.85 or newer. Debian 12's `cargo`/`rustc` are
# 1.63; its `cargo-web`/`rustc-web` packages are current enough.
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null 2>&1; then
  tools=(cargo-web rustc-web)
  [ "$profile" = test ] && tools+=(rustfmt-web rust-web-clippy)
  echo "install-deps: no Rust toolchain; installing Debian's ${tools[*]}" >&2
  apt_install "${tools[@]}"
elif [ "$profile" = test ] && [ "$(command -v cargo)" = /usr/bin/cargo ]; then
  cargo fmt --version >/dev/null 2>&1 || apt_install rustfmt-web
  cargo clippy --version >/dev/null 2>&1 || apt_install rust-web-clippy
fi
version=$(rustc --version 2>/dev/null | awk '{print $2}')
if [ -n "$version" ] && ! printf '1.85.0\n%s\n' "$version" | sort -V -C; then
  echo "install-deps: rustc $version is older than 1.85, which the workspace needs;" \
    "install a newer toolchain (Debian 12: apt-get install cargo-web rustc-web, or rustup)" >&2
  exit 1
fi
