#!/usr/bin/env bash
# The whole test suite, as CI runs it. Run as root on Debian:
#   ./scripts/test-all.sh
# Installs what it needs, checks formatting and lints, then runs every test,
# including the ones that need root, network namespaces, real BIRD/FRR/GoBGP
# peers and a real etcd (they are #[ignore]d in a plain `cargo test`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if [ "$(id -u)" != 0 ]; then
  echo "test-all: run as root (network namespaces, daemons)" >&2
  exit 2
fi

# Installs packages only: a running distribution BIRD, FRR, etcd or GoBGP
# is left running (the tests run their own, in their own namespaces).
./scripts/install-deps.sh test

# Leftovers of an interrupted earlier run (our prefixes only).
./scripts/cleanup-test-netns.sh

export CARGO_TERM_COLOR=never
export RUST_BACKTRACE=1

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo build (binaries used by the labs)"
cargo build --workspace --bins --locked

echo "== cargo test (unit, property, and root/netns/interop tests)"
# Network tests use their own namespaces and ports and may run side by side,
# but each starts daemons; two threads keep a 2-core machine responsive.
# --no-fail-fast: one failing test binary does not hide the others' results.
cargo test --workspace --locked --no-fail-fast -- --include-ignored --test-threads="${TORTIE_TEST_THREADS:-2}"

# Suites that are not cargo tests (e.g. IPIP inside a VM): scripts/suites/*.sh
for suite in scripts/suites/*.sh; do
  [ -e "$suite" ] || continue
  echo "== suite $suite"
  bash "$suite"
done

./scripts/cleanup-test-netns.sh
echo "test-all: OK"
