#!/usr/bin/env bash
# Installs everything tortie's build, tests and demo need on a fresh Debian
# machine (run as root). Idempotent: does nothing that is already done.
set -euo pipefail

PKGS=(
  build-essential pkg-config git ca-certificates
  iproute2 iputils-ping nftables tcpdump procps psmisc sqlite3
  bird2 frr gobgpd python3
  etcd-server etcd-client
  protobuf-compiler libprotobuf-dev
  containernetworking-plugins
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The distribution's daemons must not run as services: tests start their own
# copies inside namespaces and stop them by PID.
for svc in bird frr etcd gobgpd; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || true
  pkill -x "$svc" >/dev/null 2>&1 || true
done

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "install-deps: cargo is in ~/.cargo/bin; add it to PATH" >&2
  else
    echo "install-deps: no Rust toolchain; installing Debian's cargo" >&2
    apt-get install -y -qq cargo rustc
  fi
fi
